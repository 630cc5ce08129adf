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
	"github.com/clipwasm/clipwasm/shards/quantize"
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
}

var fixtureModels = []fixtureModel{
	{"vit_tiny", []string{"openai", "vit_tiny", "vit_tiny.state_dict.pt"}, []string{"openai", "vit_tiny"},
		"images.npy", "tokens.npy", "image_features.npy", "text_features.npy", false},
	{"rn_tiny", []string{"openai", "rn_tiny", "rn_tiny.state_dict.pt"}, []string{"openai", "rn_tiny"},
		"images.npy", "tokens.npy", "image_features.npy", "text_features.npy", false},
	{"hf_tiny_quickgelu", []string{"hf", "hf_tiny_quickgelu"}, []string{"hf", "hf_tiny_quickgelu"},
		"pixel_values.npy", "input_ids_zero_pad.npy", "image_embeds.npy", "text_embeds_zero_pad.npy", true},
	{"hf_tiny_gelu_fp16", []string{"hf", "hf_tiny_gelu_fp16"}, []string{"hf", "hf_tiny_gelu_fp16"},
		"pixel_values.npy", "input_ids_zero_pad.npy", "image_embeds.npy", "text_embeds_zero_pad.npy", true},
}

func (f fixtureModel) npy(t *testing.T, file string) *npy.Array {
	return fixtures.LoadNpy(t, append(append([]string{}, f.dir...), file)...)
}

// tokenRows reads a fixture's token ids as rows.
func (f fixtureModel) tokenRows(t *testing.T) [][]int {
	rows, err := f.npy(t, f.tokens).TokenRows()
	if err != nil {
		t.Fatal(err)
	}
	return rows
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

// TestRoundTrip converts every fixture model in every scheme as the
// command does (calibrated under int8 and q4; with 1 MiB shards, so the
// larger tables are split) and runs the bundle on the fixture inputs: f32
// and f16 bundles must reproduce the goldens (f16 stores exactly what
// binary16 holds, and keeps f32 the matrices whose rounding calibration
// measures as too large); each scheme must reach its cosine bar against
// the float32 model.
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
			tokens := fx.tokenRows(t)
			refImg, refTxt, err := embed(ref, images, tokens)
			if err != nil {
				t.Fatal(err)
			}
			d := m.Config.EmbedDim
			for _, q := range []shards.Scheme{shards.F32, shards.F16, shards.Int8, shards.Q4} {
				t.Run(string(q), func(t *testing.T) {
					dir := filepath.Join(t.TempDir(), "bundle")
					res, _, err := writeBundle(dir, m, tok, shards.Options{Quant: q, ShardSize: 1 << 20}, &quantize.Options{Budget: -1})
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("bundle: %d bytes of shards", res.Manifest.TotalSize())
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
					for i, tower := range []string{"image", "text"} {
						if cos[i] < minCosine[q] {
							t.Errorf("%s cosine %.7f below %g", tower, cos[i], minCosine[q])
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
						d := fixtures.AssertClose(t, c.name, c.got, c.want, goldenRel)
						t.Logf("%s: max |Δ| = %.3g·max|golden|", c.name, d/fixtures.MaxAbs(c.want))
					}
				})
			}
		})
	}
}
