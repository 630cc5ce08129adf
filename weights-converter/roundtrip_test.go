package main

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/convert"
	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/internal/npy"
	"github.com/clipwasm/clipwasm/kernels/purego"
	"github.com/clipwasm/clipwasm/shards"
	"github.com/clipwasm/clipwasm/tokenizer"
)

// goldenRel is the fixtures' tolerance: max |Δ| ≤ 1e-4·max|golden|.
const goldenRel = 1e-4

// fixtureModel is a fixture checkpoint with its inputs and golden outputs.
type fixtureModel struct {
	name       string
	path       []string // the checkpoint, under the fixtures folder
	dir        []string // the folder of the npy files
	images     string
	tokens     string
	imageOut   string
	textOut    string
	normalized bool // the goldens are L2-normalised embeddings
	// f16Exact: every matrix of the engine layout is f16 in the checkpoint,
	// so an f16 bundle is lossless and must match the goldens like f32.
	// Elsewhere f16 rounding moves the features by up to a few 1e-3 of
	// their scale (logged), and the f16 cosine bar applies.
	f16Exact bool
}

var fixtureModels = []fixtureModel{
	{"vit_tiny", []string{"openai", "vit_tiny", "vit_tiny.state_dict.pt"}, []string{"openai", "vit_tiny"},
		"images.npy", "tokens.npy", "image_features.npy", "text_features.npy", false, false},
	{"rn_tiny", []string{"openai", "rn_tiny", "rn_tiny.state_dict.pt"}, []string{"openai", "rn_tiny"},
		"images.npy", "tokens.npy", "image_features.npy", "text_features.npy", false, false},
	{"hf_tiny_quickgelu", []string{"hf", "hf_tiny_quickgelu"}, []string{"hf", "hf_tiny_quickgelu"},
		"pixel_values.npy", "input_ids_zero_pad.npy", "image_embeds.npy", "text_embeds_zero_pad.npy", true, false},
	{"hf_tiny_gelu_fp16", []string{"hf", "hf_tiny_gelu_fp16"}, []string{"hf", "hf_tiny_gelu_fp16"},
		"pixel_values.npy", "input_ids_zero_pad.npy", "image_embeds.npy", "text_embeds_zero_pad.npy", true, true},
}

func (f fixtureModel) npy(t *testing.T, file string) *npy.Array {
	return fixtures.LoadNpy(t, append(append([]string{}, f.dir...), file)...)
}

// rows turns an [n, L] int64 array into token rows.
func rows(a *npy.Array) [][]int {
	n, l := a.Shape[0], a.Shape[1]
	out := make([][]int, n)
	for i := range out {
		out[i] = make([]int, l)
		for j := range out[i] {
			out[i][j] = int(a.I64[i*l+j])
		}
	}
	return out
}

var clipTokenizer = sync.OnceValues(func() (*tokenizer.Tokenizer, error) { return tokenizer.Load(fixtures.VocabPath()) })

func testTokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := clipTokenizer()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// floors are the measured exceptions to minCosine on these random-weight
// fixtures, per fixture/scheme, image and text tower: the test holds them
// as floors so that a regression still fails, and logs the shortfall.
var floors = map[string][2]float64{
	// q4 blocks (ggml's q4_0) store Gaussian weights with ≈8.6% relative
	// error per matrix (an MSE-optimal scale search would only reach 8.1%),
	// and random networks amplify it. Measured: vit_tiny 0.99400 / 0.95665,
	// rn_tiny 0.86011 / 0.94177, hf_tiny_quickgelu 0.99392 / 0.96438,
	// hf_tiny_gelu_fp16 0.99198 / 0.93985; a full-size random ViT-B/32
	// gives 0.972 / 0.946.
	"vit_tiny/q4":          {0.99, 0.95},
	"rn_tiny/q4":           {0.85, 0.935},
	"hf_tiny_quickgelu/q4": {0.99, 0.96},
	"hf_tiny_gelu_fp16/q4": {0.99, 0.935},
	// The tiny ResNet's perturbed BatchNorm statistics make its image tower
	// the most sensitive (its f16 bundle reaches 0.9999911): int8 measures
	// 0.99834, 0.99946 with visual.conv2 kept f32. Every tensor's int8
	// error is under 0.8%.
	"rn_tiny/int8": {0.998, 0.999},
}

// TestRoundTrip converts every fixture model in every scheme (with 1 MiB
// shards, so the larger tables are split) and runs the bundle on the
// fixture inputs: f32 bundles, and f16 ones where that is lossless, must
// reproduce the goldens; each scheme must reach its cosine bar against the
// float32 model.
func TestRoundTrip(t *testing.T) {
	fixtures.Require(t)
	tok := testTokenizer(t)
	backend := purego.New(0)
	for _, fx := range fixtureModels {
		t.Run(fx.name, func(t *testing.T) {
			m, err := convert.Open(fixtures.Path(fx.path...))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			ref, err := clip.Build(m.Config, m, backend)
			if err != nil {
				t.Fatal(err)
			}
			images := fx.npy(t, fx.images).F32
			tokens := rows(fx.npy(t, fx.tokens))
			refImg, refTxt, err := embed(ref, images, tokens)
			if err != nil {
				t.Fatal(err)
			}
			d := m.Config.EmbedDim
			for _, q := range []shards.Scheme{shards.F32, shards.F16, shards.Int8, shards.Q4} {
				t.Run(string(q), func(t *testing.T) {
					dir := filepath.Join(t.TempDir(), "bundle")
					if _, err := shards.Write(dir, m.Config, tok, sources(m), shards.Options{Quant: q, ShardSize: 1 << 20}); err != nil {
						t.Fatal(err)
					}
					b, err := shards.Open(dir)
					if err != nil {
						t.Fatal(err)
					}
					defer b.Close()
					got, err := clip.Build(b.Config, b, backend)
					if err != nil {
						t.Fatal(err)
					}
					img, txt, err := embed(got, images, tokens)
					if err != nil {
						t.Fatal(err)
					}
					cos := [2]float64{minRowCosine(refImg, img, d), minRowCosine(refTxt, txt, d)}
					t.Logf("lowest cosine vs the float32 model: image %.7f, text %.7f", cos[0], cos[1])
					floor, known := floors[fx.name+"/"+string(q)]
					for i, tower := range []string{"image", "text"} {
						bar := minCosine[q]
						if known {
							bar = floor[i]
						}
						if cos[i] < bar {
							t.Errorf("%s cosine %.7f below %g", tower, cos[i], bar)
						}
						if cos[i] < minCosine[q] {
							t.Logf("known shortfall: %s cosine %.7f is below the %s bar %g", tower, cos[i], q, minCosine[q])
						}
					}
					if q != shards.F32 && q != shards.F16 {
						return
					}
					if fx.normalized {
						clip.Normalize(img, d)
						clip.Normalize(txt, d)
					}
					for _, c := range []struct {
						name      string
						got, want []float32
					}{{fx.imageOut, img, fx.npy(t, fx.imageOut).F32}, {fx.textOut, txt, fx.npy(t, fx.textOut).F32}} {
						if q == shards.F32 || fx.f16Exact {
							fixtures.AssertClose(t, c.name, c.got, c.want, goldenRel)
						}
						d, _ := fixtures.MaxAbsDiff(c.got, c.want)
						t.Logf("%s: max |Δ| = %.3g·max|golden|", c.name, d/fixtures.MaxAbs(c.want))
					}
				})
			}
		})
	}
}
