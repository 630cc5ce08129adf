//go:build js && wasm

package main

import (
	"encoding/json"
	"syscall/js"
	"testing"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/wasm/worker"
)

// TestToJS: the page gets from toJS what it got from JSON.parse of
// encoding/json's output: every event type, omitempty, nil and empty
// slices, float32 values by their shortest decimal, the activation by name.
func TestToJS(t *testing.T) {
	cfg := clip.Config{EmbedDim: 512, VisionLayers: []int{2, 2}, Activation: kernels.QuickGELU, LayerNormEps: 1e-5,
		Mean: [3]float32{0.48145466, 0.4578275, 0.40821073}, Std: [3]float32{0.26862954, 0.26130258, 0.27577711}}
	for _, tc := range []struct {
		name string
		v    any
	}{
		{"ready", map[string]any{"type": worker.EventReady, "backend": "simd128", "ensembles": worker.EnsembleNames()}},
		{"progress", worker.Event{ID: 3, Type: worker.EventProgress, Progress: &worker.Progress{Phase: "download", LoadedBytes: 1 << 40, TotalBytes: 7}}},
		{"load", worker.Event{ID: 1, Type: worker.EventResult, Result: &worker.LoadResult{Config: cfg, Quant: "int8", Files: 2}}},
		{"classification", worker.Event{ID: 2, Type: worker.EventResult, Result: &worker.Classification{
			Results: [][]clip.Prediction{{{Label: "a \"cat\"", Prob: 0.1, Logit: 25.3}}, {}}}}},
		{"nil results", worker.Event{ID: 2, Type: worker.EventResult, Result: &worker.Classification{}}},
		{"embeddings", worker.Event{ID: 4, Type: worker.EventResult, Result: &worker.Embeddings{Dim: 2, Data: []float32{1, 2}}}},
		{"cancel", worker.Event{ID: 5, Type: worker.EventResult, Result: &worker.CancelResult{Cancelled: true}}},
		{"stats", worker.Event{ID: 6, Type: worker.EventResult, Result: &worker.Stats{HeapBytes: 1 << 33, NumGC: 4}}},
		{"error", worker.Event{ID: 7, Type: worker.EventError, Error: &worker.Error{Code: worker.CodeProtocol, Message: "bad"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			jsonAPI := js.Global().Get("JSON")
			want := jsonAPI.Call("parse", string(raw))
			want.Set("v", worker.ProtocolVersion)
			wantText := jsonAPI.Call("stringify", want).String()
			if got := jsonAPI.Call("stringify", toJS(tc.v)).String(); got != wantText {
				t.Errorf("toJS gives\n%s\nJSON.parse(json.Marshal) gives\n%s", got, wantText)
			}
		})
	}
}
