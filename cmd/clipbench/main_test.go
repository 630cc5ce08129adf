package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/clipwasm/clipwasm/checkpoint"
	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/internal/npy"
	"github.com/clipwasm/clipwasm/internal/randweights"
	"github.com/clipwasm/clipwasm/kernels/purego"
)

// The selection tests follow lib/npy.mjs's needMoreRuns and selectRuns.
func TestNeedMore(t *testing.T) {
	q := quiet{maxBusy: 0.3, maxFactor: 3}
	runs := func(busy ...float64) []timedRun {
		var r []timedRun
		for _, b := range busy {
			r = append(r, timedRun{ms: 1, busy: b})
		}
		return r
	}
	for _, tc := range []struct {
		all  []timedRun
		want bool
	}{
		{nil, true},
		{runs(0, 0.3), false},             // two clean runs (0.3 counts as clean)
		{runs(0, 0.31), true},             // one clean, room for more
		{runs(1, 1, 1, 1, 1, 0.5), false}, // 3·2 runs made
	} {
		if got := q.needMore(tc.all, 2); got != tc.want {
			t.Errorf("needMore(%v, 2) = %v, want %v", tc.all, got, tc.want)
		}
	}
}

func TestSelectRuns(t *testing.T) {
	q := quiet{maxBusy: 0.3, maxFactor: 3}
	all := []timedRun{{10, 0.5}, {20, 0.1}, {30, 0.9}, {40, 0.2}}
	s := q.selectRuns(all, 2)
	if !slices.Equal(s.times, []float64{20, 40}) || s.othersMean != 0.15 || s.discarded != 2 {
		t.Errorf("clean runs: got %+v", s)
	}
	s = q.selectRuns(all, 3) // too few clean: the 3 least disturbed
	if !slices.Equal(s.times, []float64{20, 40, 10}) || s.othersMean != 0.27 || s.discarded != 1 {
		t.Errorf("least disturbed: got %+v", s)
	}
	if !slices.Equal(s.allBusy, []float64{0.5, 0.1, 0.9, 0.2}) || len(s.allTimes) != 4 {
		t.Errorf("all runs: got %+v", s)
	}
	if m := median([]float64{3, 1, 2, 10}); m != 2.5 {
		t.Errorf("median = %v, want 2.5", m)
	}
}

func TestSnapshot(t *testing.T) {
	a, err := snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for x := 0.0; x < 1e7; x++ { // spend some CPU time
		_ = math.Sqrt(x)
	}
	b, err := snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if b.busy < a.busy || b.own < a.own || b.steal < a.steal {
		t.Errorf("CPU counters went backwards: %+v then %+v", a, b)
	}
	if busy := busyOthers(a, b); busy < 0 || math.IsNaN(busy) {
		t.Errorf("busyOthers = %v", busy)
	}
}

// tinyConfig is a small ViT-shaped CLIP that takes the kit's inputs
// (224×224 images, 77-token rows of CLIP's vocabulary).
func tinyConfig() clip.Config {
	return clip.Config{EmbedDim: 32, ImageResolution: 224, VisionLayers: []int{1}, VisionWidth: 64,
		VisionPatchSize: 32, TextWidth: 64, TextLayers: 1}
}

// writeModelDir writes c's seed-0 random weights and a kit-style
// manifest.json describing manifestConfig into a new folder.
func writeModelDir(t *testing.T, c clip.Config, manifestConfig clip.Config) string {
	t.Helper()
	dir := t.TempDir()
	tensors, err := randweights.Generate(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	specs, err := randweights.Specs(c)
	if err != nil {
		t.Fatal(err)
	}
	var list []*checkpoint.Tensor
	for _, s := range specs {
		raw := make([]byte, 4*s.Len())
		for i, v := range tensors[s.Name].Data {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
		}
		ct, err := checkpoint.NewTensor(s.Name, checkpoint.F32, s.Shape, raw)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, ct)
	}
	if err := checkpoint.WriteSafetensors(filepath.Join(dir, "weights.safetensors"), list, nil); err != nil {
		t.Fatal(err)
	}
	mc := manifestConfig
	mc.Normalize()
	man := map[string]any{"arch": "tiny", "seed": 0, "config": map[string]any{
		"embed_dim": mc.EmbedDim, "image_resolution": mc.ImageResolution, "vision_layers": mc.VisionLayers[0],
		"vision_width": mc.VisionWidth, "vision_patch_size": mc.VisionPatchSize, "context_length": mc.ContextLength,
		"vocab_size": mc.VocabSize, "transformer_width": mc.TextWidth, "transformer_heads": mc.TextHeads,
		"transformer_layers": mc.TextLayers,
	}}
	raw, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestEngineContract runs the command as run.sh would on a tiny model and
// the kit's inputs, and checks results.jsonl and the outputs.
func TestEngineContract(t *testing.T) {
	inputs := filepath.Join(fixtures.SharedDir(), "peers", "inputs")
	if _, err := os.Stat(inputs); err != nil {
		t.Fatalf("the peers kit is part of the shared data: %v", err)
	}
	c := tinyConfig()
	model := writeModelDir(t, c, c)
	out := filepath.Join(t.TempDir(), "go")
	// QUIET_MAX_FACTOR=1: exactly --runs timed runs, however busy the machine.
	env := func(k string) string { return map[string]string{"ENGINE_NAME": "go", "QUIET_MAX_FACTOR": "1"}[k] }
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, enc := range []string{"image", "text"} {
		args := []string{"--model-dir", model, "--inputs-dir", inputs, "--out-dir", out, "--threads", "2",
			"--encoder", enc, "--warmup", "1", "--runs", "2"}
		if err := run(args, env, io.Discard); err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
	}

	ref, err := randweights.Model(c, 0, purego.New(1))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(out, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var seen []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("results.jsonl line %q: %v", sc.Text(), err)
		}
		seen = append(seen, r.Task)
		if r.Peer != "go" || r.Arch != "tiny" || string(r.Seed) != "0" || r.Threads != 2 || r.Warmup != 1 || r.Runs != 2 {
			t.Errorf("%s: header fields %+v", r.Task, r)
		}
		if !strings.HasPrefix(r.PeerVersion, "clipwasm ") || !strings.HasSuffix(r.PeerVersion, " f32)") {
			t.Errorf("%s: peer_version %q", r.Task, r.PeerVersion)
		}
		if len(r.TimesMs) < 2 || r.MedianMs <= 0 || r.MinMs > r.MedianMs || r.LoadMs <= 0 || r.PeakRSSMB <= 0 ||
			len(r.AllTimesMs) != len(r.AllBusy) || len(r.AllTimesMs) != 2 || len(r.AllTimesMs) != len(r.TimesMs)+r.Discarded {
			t.Errorf("%s: timing fields %+v", r.Task, r)
		}
		i := slices.IndexFunc(tasks, func(k task) bool { return k.name == r.Task })
		if i < 0 || r.Output != r.Task+"_t2.npy" || r.Batch != tasks[i].batch {
			t.Fatalf("%s: task fields %+v", r.Task, r)
		}
		got, err := npy.ReadFile(filepath.Join(out, r.Output))
		if err != nil {
			t.Fatal(err)
		}
		encode, err := encoder(ref, tasks[i], filepath.Join(inputs, tasks[i].input))
		if err != nil {
			t.Fatal(err)
		}
		want, err := encode()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Shape, []int{r.Batch, c.EmbedDim}) {
			t.Errorf("%s: output shape %v", r.Task, got.Shape)
		}
		fixtures.AssertClose(t, r.Task, got.F32, want, 1e-5)
	}
	if !slices.Equal(seen, []string{"image_b1", "image_b8", "text_80"}) {
		t.Errorf("results.jsonl tasks %v", seen)
	}
}

func TestErrors(t *testing.T) {
	inputs := filepath.Join(fixtures.SharedDir(), "peers", "inputs")
	c := tinyConfig()
	wrong := c
	wrong.EmbedDim = 48
	mismatched := writeModelDir(t, c, wrong)
	good := writeModelDir(t, c, c)
	noWeights := t.TempDir()
	man, err := os.ReadFile(filepath.Join(good, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(noWeights, "manifest.json"), man, 0o644); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no encoder", []string{"--model-dir", "m", "--inputs-dir", "i", "--out-dir", "o"}, "--encoder must be image or text"},
		{"no dirs", []string{"--encoder", "image"}, "are required"},
		{"bad flag", []string{"--thread", "2"}, "usage: clipbench"},
		{"bad quant", []string{"--model-dir", "m", "--inputs-dir", "i", "--out-dir", "o", "--encoder", "text", "--quant", "q3"}, "--quant must be"},
		{"no threads", []string{"--model-dir", "m", "--inputs-dir", "i", "--out-dir", "o", "--encoder", "text", "--threads", "0"}, "--threads ≥ 1"},
		{"missing model", []string{"--model-dir", filepath.Join(t.TempDir(), "none"), "--inputs-dir", inputs,
			"--out-dir", t.TempDir(), "--encoder", "image"}, "manifest.json"},
		{"config mismatch", []string{"--model-dir", mismatched, "--inputs-dir", inputs,
			"--out-dir", t.TempDir(), "--encoder", "image"}, "manifest.json describes tiny"},
		{"missing weights", []string{"--model-dir", noWeights, "--inputs-dir", inputs,
			"--out-dir", t.TempDir(), "--encoder", "image"}, "weights.safetensors"},
		{"missing inputs", []string{"--model-dir", good, "--inputs-dir", t.TempDir(),
			"--out-dir", t.TempDir(), "--encoder", "text"}, "tokens.npy"},
	} {
		err := run(tc.args, noEnv, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}
