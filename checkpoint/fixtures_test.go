package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/clipwasm/clipwasm/internal/fixtures"
)

// modelManifest is the part of openai/<model>/manifest.json that describes
// the checkpoint tensors.
type modelManifest struct {
	Tensors []struct {
		Key    string    `json:"key"`
		DType  string    `json:"dtype"`
		Shape  []int     `json:"shape"`
		Sum    float64   `json:"sum"`
		AbsSum float64   `json:"abs_sum"`
		Min    float64   `json:"min"`
		Max    float64   `json:"max"`
		First  []float64 `json:"first"`
	} `json:"tensors"`
	JITExtras map[string]struct {
		DType string `json:"dtype"`
		Shape []int  `json:"shape"`
		Value int64  `json:"value"`
	} `json:"jit_extra_buffers"`
}

var torchDTypeNames = map[string]DType{"float16": F16, "float32": F32, "int64": I64}

func readManifest(tb testing.TB, model string) modelManifest {
	tb.Helper()
	raw, err := os.ReadFile(fixtures.Path("openai", model, "manifest.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var m modelManifest
	if err := json.Unmarshal(raw, &m); err != nil {
		tb.Fatal(err)
	}
	if len(m.Tensors) == 0 {
		tb.Fatalf("%s manifest lists no tensors", model)
	}
	return m
}

// float64s reads a tensor's values exactly: float16/float32 widen to
// float64 without rounding, and the int64 values here are small.
func float64s(tb testing.TB, t *Tensor) []float64 {
	tb.Helper()
	out := make([]float64, t.Numel())
	if t.DType == I64 {
		for i := range out {
			out[i] = float64(int64(binary.LittleEndian.Uint64(t.Bytes()[8*i:])))
		}
		return out
	}
	v, err := t.Float32()
	if err != nil {
		tb.Fatal(err)
	}
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// TestOpenAIFixtures checks every tensor of both OpenAI checkpoint formats
// against the manifest written by PyTorch, and the two formats against
// each other byte for byte.
func TestOpenAIFixtures(t *testing.T) {
	fixtures.Require(t)
	for _, model := range []string{"vit_tiny", "rn_tiny"} {
		t.Run(model, func(t *testing.T) {
			m := readManifest(t, model)
			opened := map[Format]*Checkpoint{}
			for _, tc := range []struct {
				file   string
				format Format
			}{
				{model + ".state_dict.pt", FormatTorchStateDict},
				{model + ".jit.pt", FormatTorchScript},
			} {
				c, err := Open(fixtures.Path("openai", model, tc.file))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if c.Format != tc.format {
					t.Errorf("%s: format %q, want %q", tc.file, c.Format, tc.format)
				}
				if len(c.Tensors) != len(m.Tensors) {
					t.Errorf("%s: %d tensors, manifest has %d", tc.file, len(c.Tensors), len(m.Tensors))
				}
				for _, want := range m.Tensors {
					got := c.Tensors[want.Key]
					if got == nil {
						t.Errorf("%s: tensor %q missing", tc.file, want.Key)
						continue
					}
					if got.Name != want.Key || got.DType != torchDTypeNames[want.DType] || !slices.Equal(got.Shape, want.Shape) {
						t.Errorf("%s: %q is %q %s %v, want %s %v", tc.file, want.Key, got.Name, got.DType, got.Shape, want.DType, want.Shape)
						continue
					}
					v := float64s(t, got)
					var sum, abs float64
					lo, hi := math.Inf(1), math.Inf(-1)
					for _, x := range v {
						sum += x
						abs += math.Abs(x)
						lo, hi = min(lo, x), max(hi, x)
					}
					// min, max and the first values are exact; sums are
					// exact up to float64 summation order.
					tol := 1e-12 * max(1, want.AbsSum)
					if lo != want.Min || hi != want.Max || math.Abs(sum-want.Sum) > tol || math.Abs(abs-want.AbsSum) > tol {
						t.Errorf("%s: %q sum/abs/min/max = %v %v %v %v, want %v %v %v %v",
							tc.file, want.Key, sum, abs, lo, hi, want.Sum, want.AbsSum, want.Min, want.Max)
					}
					if !slices.Equal(v[:len(want.First)], want.First) {
						t.Errorf("%s: %q starts %v, want %v", tc.file, want.Key, v[:len(want.First)], want.First)
					}
				}
				opened[c.Format] = c
			}

			sd, jit := opened[FormatTorchStateDict], opened[FormatTorchScript]
			if sd == nil || jit == nil {
				t.Fatal("a format failed to open")
			}
			if !slices.Equal(sd.Names(), jit.Names()) {
				t.Errorf("tensor names differ:\n state dict %v\n jit        %v", sd.Names(), jit.Names())
			}
			for name, a := range sd.Tensors {
				if b := jit.Tensors[name]; b == nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
					t.Errorf("%q: state dict and TorchScript bytes differ", name)
				}
			}
			if len(m.JITExtras) != 3 {
				t.Fatalf("manifest lists %d JIT extras, want 3", len(m.JITExtras))
			}
			for name, want := range m.JITExtras {
				if got, ok := jit.Extras[name]; !ok || got != want.Value {
					t.Errorf("JIT extra %q = %v (%T), want %d", name, got, got, want.Value)
				}
				if _, ok := sd.Extras[name]; ok {
					t.Errorf("state dict has JIT extra %q", name)
				}
			}
		})
	}
}

// TestHFFixtures opens both Hugging Face folders and checks the shapes the
// config implies.
func TestHFFixtures(t *testing.T) {
	fixtures.Require(t)
	for _, tc := range []struct {
		folder string
		dtype  DType
		count  int
	}{
		{"hf_tiny_quickgelu", F32, 78},
		{"hf_tiny_gelu_fp16", F16, 110},
	} {
		t.Run(tc.folder, func(t *testing.T) {
			dir := fixtures.Path("hf", tc.folder)
			c, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Format != FormatHFSafetensors {
				t.Errorf("format %q, want %q", c.Format, FormatHFSafetensors)
			}
			cfgBytes, err := os.ReadFile(dir + "/config.json")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(c.Config, cfgBytes) || c.OpenCLIPConfig != nil {
				t.Errorf("Config not returned as stored (OpenCLIPConfig %q)", c.OpenCLIPConfig)
			}
			if meta, _ := c.Extras["__metadata__"].(map[string]string); meta["format"] != "pt" {
				t.Errorf("__metadata__ = %v", c.Extras["__metadata__"])
			}
			if len(c.Tensors) != tc.count {
				t.Errorf("%d tensors, want %d", len(c.Tensors), tc.count)
			}
			for _, tt := range c.Tensors {
				if tt.DType != tc.dtype || len(tt.Bytes()) != tt.Numel()*tc.dtype.Size() {
					t.Errorf("%q: %s, %d bytes for %v", tt.Name, tt.DType, len(tt.Bytes()), tt.Shape)
				}
			}
			var cfg struct {
				Projection int `json:"projection_dim"`
				Text       struct {
					Hidden int `json:"hidden_size"`
					Vocab  int `json:"vocab_size"`
					Ctx    int `json:"max_position_embeddings"`
				} `json:"text_config"`
				Vision struct {
					Hidden int `json:"hidden_size"`
					Patch  int `json:"patch_size"`
					Image  int `json:"image_size"`
				} `json:"vision_config"`
			}
			if err := json.Unmarshal(c.Config, &cfg); err != nil {
				t.Fatal(err)
			}
			grid := cfg.Vision.Image / cfg.Vision.Patch
			for name, shape := range map[string][]int{
				"logit_scale": {},
				"text_model.embeddings.token_embedding.weight":      {cfg.Text.Vocab, cfg.Text.Hidden},
				"text_model.embeddings.position_embedding.weight":   {cfg.Text.Ctx, cfg.Text.Hidden},
				"vision_model.embeddings.patch_embedding.weight":    {cfg.Vision.Hidden, 3, cfg.Vision.Patch, cfg.Vision.Patch},
				"vision_model.embeddings.position_embedding.weight": {grid*grid + 1, cfg.Vision.Hidden},
				"visual_projection.weight":                          {cfg.Projection, cfg.Vision.Hidden},
				"text_projection.weight":                            {cfg.Projection, cfg.Text.Hidden},
			} {
				if got := c.Tensors[name]; got == nil || !slices.Equal(got.Shape, shape) {
					t.Errorf("%q: got %v, want shape %v", name, got, shape)
				}
			}
			ls, err := c.Tensors["logit_scale"].Float32()
			if err != nil || math.Abs(float64(ls[0])-math.Log(50)) > 1e-3 {
				t.Errorf("logit_scale = %v, %v; want log(50)", ls, err)
			}
		})
	}
}

// TestPortableSource reads a TorchScript fixture through the plain-read
// source that js/wasm and Windows use, and compares it with Open's.
func TestPortableSource(t *testing.T) {
	fixtures.Require(t)
	path := fixtures.Path("openai", "vit_tiny", "vit_tiny.jit.pt")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	src, err := openFileSource(f)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	format, tensors, extras, err := readTorchZip(src)
	if err != nil {
		t.Fatal(err)
	}
	c := mustOpen(t, path)
	if format != c.Format || len(extras) != len(c.Extras) {
		t.Errorf("format %q extras %v, Open gave %q %v", format, extras, c.Format, c.Extras)
	}
	sameTensors(t, tensors, c.Tensors)
}
