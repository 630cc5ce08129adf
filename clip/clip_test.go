package clip_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/convert"

	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/internal/npy"
	"github.com/clipwasm/clipwasm/kernels/purego"
)

// rel is the fixtures' recommended tolerance: max |Δ| ≤ 1e-4·max|want|.
const rel = 1e-4

// rowsOf returns a fixture's token ids as rows; fixtures are well formed.
func rowsOf(a *npy.Array) [][]int {
	rows, err := a.TokenRows()
	if err != nil {
		panic(err)
	}
	return rows
}

var openaiCheckpoints = []struct{ model, file string }{
	{"vit_tiny", "vit_tiny.state_dict.pt"},
	{"vit_tiny", "vit_tiny.jit.pt"},
	{"rn_tiny", "rn_tiny.state_dict.pt"},
	{"rn_tiny", "rn_tiny.jit.pt"},
}

// TestOpenAIGoldens checks features, logits and probs of every OpenAI
// fixture checkpoint against the outputs of OpenAI's own code.
func TestOpenAIGoldens(t *testing.T) {
	fixtures.Require(t)
	for _, tc := range openaiCheckpoints {
		t.Run(tc.file, func(t *testing.T) {
			m, err := convert.Load(fixtures.Path("openai", tc.model, tc.file), purego.New(0))
			if err != nil {
				t.Fatal(err)
			}
			images := fixtures.LoadNpy(t, "openai", tc.model, "images.npy")
			tokens := fixtures.LoadNpy(t, "openai", tc.model, "tokens.npy")
			img, err := m.EncodeImage(images.F32, images.Shape[0])
			if err != nil {
				t.Fatal(err)
			}
			txt, err := m.EncodeText(rowsOf(tokens))
			if err != nil {
				t.Fatal(err)
			}
			fixtures.AssertClose(t, "image_features", img, fixtures.LoadNpy(t, "openai", tc.model, "image_features.npy").F32, rel)
			fixtures.AssertClose(t, "text_features", txt, fixtures.LoadNpy(t, "openai", tc.model, "text_features.npy").F32, rel)
			logits := clip.Logits(img, txt, m.Config.EmbedDim, m.LogitScale)
			fixtures.AssertClose(t, "logits_per_image", logits, fixtures.LoadNpy(t, "openai", tc.model, "logits_per_image.npy").F32, rel)
			nt := tokens.Shape[0]
			var probs []float32
			for i := 0; i < images.Shape[0]; i++ {
				probs = append(probs, clip.Softmax(logits[i*nt:(i+1)*nt])...)
			}
			want := fixtures.LoadNpy(t, "openai", tc.model, "probs.npy").F32
			if d, at := fixtures.MaxAbsDiff(probs, want); d > 1e-4 {
				t.Errorf("probs: max |Δ| %.3g at %d > 1e-4", d, at)
			}
		})
	}
}

// TestOpenAIIntermediates compares every traced intermediate of item 0
// with the per-layer goldens, so a failure names the first layer that
// diverges.
func TestOpenAIIntermediates(t *testing.T) {
	fixtures.Require(t)
	for _, model := range []string{"vit_tiny", "rn_tiny"} {
		t.Run(model, func(t *testing.T) {
			m, err := convert.Load(fixtures.Path("openai", model, model+".state_dict.pt"), purego.New(0))
			if err != nil {
				t.Fatal(err)
			}
			dir := fixtures.Path("openai", model, "intermediates")
			seen := map[string]bool{}
			m.Trace = func(name string, x []float32, shape []int) {
				path := filepath.Join(dir, name+".npy")
				if strings.HasSuffix(name, "_pooled") {
					return // checked through text0_final
				}
				want, err := npy.ReadFile(path)
				if err != nil {
					t.Errorf("trace %s: no golden: %v", name, err)
					return
				}
				seen[name] = true
				got := x
				if len(shape) == 3 && len(want.Shape) == 3 && want.Shape[0] == shape[2] {
					got = chwFromHWC(x, shape[0], shape[1], shape[2]) // feature maps: HWC → CHW
				}
				w := want.F32
				if len(got) < len(w) {
					w = w[:len(got)] // the text tower runs only up to the pooled row
				}
				fixtures.AssertClose(t, name, got, w, rel)
			}
			images := fixtures.LoadNpy(t, "openai", model, "images.npy")
			per := images.Len() / images.Shape[0]
			if _, err := m.EncodeImage(images.F32[:per], 1); err != nil {
				t.Fatal(err)
			}
			tokens := rowsOf(fixtures.LoadNpy(t, "openai", model, "tokens.npy"))
			if _, err := m.EncodeText(tokens[:1]); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				name := strings.TrimSuffix(e.Name(), ".npy")
				if !seen[name] && name != "image0_attnpool" && name != "text0_ln_final" {
					t.Errorf("golden %s was never traced", name)
				}
			}
		})
	}
}

func chwFromHWC(x []float32, h, w, c int) []float32 {
	out := make([]float32, len(x))
	for p := 0; p < h*w; p++ {
		for ch := 0; ch < c; ch++ {
			out[ch*h*w+p] = x[p*c+ch]
		}
	}
	return out
}

// TestHuggingFaceGoldens checks both transformers-format fixtures: an F32
// QuickGELU model and an F16 exact-GELU one, with both paddings.
func TestHuggingFaceGoldens(t *testing.T) {
	fixtures.Require(t)
	for _, dir := range []string{"hf_tiny_quickgelu", "hf_tiny_gelu_fp16"} {
		t.Run(dir, func(t *testing.T) {
			m, err := convert.Load(fixtures.Path("hf", dir), purego.New(0))
			if err != nil {
				t.Fatal(err)
			}
			px := fixtures.LoadNpy(t, "hf", dir, "pixel_values.npy")
			img, err := m.EncodeImage(px.F32, px.Shape[0])
			if err != nil {
				t.Fatal(err)
			}
			clip.Normalize(img, m.Config.EmbedDim)
			// transformers' tolerance note: ~1e-5 absolute on embeddings.
			fixtures.AssertClose(t, "image_embeds", img, fixtures.LoadNpy(t, "hf", dir, "image_embeds.npy").F32, rel)
			for _, pad := range []string{"zero_pad", "eot_pad"} {
				ids := fixtures.LoadNpy(t, "hf", dir, "input_ids_"+pad+".npy")
				txt, err := m.EncodeText(rowsOf(ids))
				if err != nil {
					t.Fatal(err)
				}
				clip.Normalize(txt, m.Config.EmbedDim)
				fixtures.AssertClose(t, "text_embeds_"+pad, txt, fixtures.LoadNpy(t, "hf", dir, "text_embeds_"+pad+".npy").F32, rel)
				logits := clip.Logits(img, txt, m.Config.EmbedDim, m.LogitScale)
				want := fixtures.LoadNpy(t, "hf", dir, "logits_per_image_"+pad+".npy").F32
				if d, at := fixtures.MaxAbsDiff(logits, want); d > 1e-3 {
					t.Errorf("logits_%s: max |Δ| %.3g at %d > 1e-3", pad, d, at)
				}
			}
		})
	}
}

func TestNamedConfigsValid(t *testing.T) {
	for _, name := range clip.NamedModels() {
		c, err := clip.Named(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if len(clip.NamedModels()) != 15 {
		t.Errorf("got %d named models, want the 9 of the paper + 6 OpenCLIP", len(clip.NamedModels()))
	}
}

// TestInferConfigMatchesManifest checks build_model-style inference on both
// OpenAI fixtures against the config the generator recorded.
func TestInferConfigMatchesManifest(t *testing.T) {
	fixtures.Require(t)
	for _, model := range []string{"vit_tiny", "rn_tiny"} {
		var man struct {
			Config struct {
				EmbedDim        int             `json:"embed_dim"`
				ImageResolution int             `json:"image_resolution"`
				VisionLayers    json.RawMessage `json:"vision_layers"`
				VisionWidth     int             `json:"vision_width"`
				TextWidth       int             `json:"transformer_width"`
				TextHeads       int             `json:"transformer_heads"`
				TextLayers      int             `json:"transformer_layers"`
			} `json:"config"`
		}
		raw, err := os.ReadFile(fixtures.Path("openai", model, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &man); err != nil {
			t.Fatal(err)
		}
		m, err := convert.Load(fixtures.Path("openai", model, model+".jit.pt"), purego.New(1))
		if err != nil {
			t.Fatal(err)
		}
		c := m.Config
		layers := strings.ReplaceAll(fmt.Sprint(c.VisionLayers), " ", ",")
		if len(c.VisionLayers) == 1 {
			layers = fmt.Sprint(c.VisionLayers[0])
		}
		got := fmt.Sprint(c.EmbedDim, c.ImageResolution, layers, c.VisionWidth, c.TextWidth, c.TextHeads, c.TextLayers)
		mc := man.Config
		want := fmt.Sprint(mc.EmbedDim, mc.ImageResolution, strings.Join(strings.Fields(string(mc.VisionLayers)), ""), mc.VisionWidth, mc.TextWidth, mc.TextHeads, mc.TextLayers)
		if got != want {
			t.Errorf("%s: inferred %s, manifest %s", model, got, want)
		}
	}
}
