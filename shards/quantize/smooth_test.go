package quantize

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/convert"
	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/purego"
	"github.com/clipwasm/clipwasm/shards"
)

// TestSmoothScales checks the scales: powers of two near
// xmax^α / wmax^(1−α), 1 for a column that is all zeros.
func TestSmoothScales(t *testing.T) {
	xmax := []float32{100, 1, 0, 3, 0.01}
	wmax := []float32{0.04, 1, 2, 0, 0.5}
	for _, alpha := range smoothAlphas {
		got := smoothScales(xmax, wmax, alpha)
		for j, s := range got {
			frac, _ := math.Frexp(float64(s))
			if frac != 0.5 {
				t.Errorf("α %g: scale %g of column %d is not a power of two", alpha, s, j)
			}
			if xmax[j] == 0 || wmax[j] == 0 {
				if s != 1 {
					t.Errorf("α %g: column %d with a zero maximum has scale %g, want 1", alpha, j, s)
				}
				continue
			}
			v := math.Pow(float64(xmax[j]), alpha) / math.Pow(float64(wmax[j]), 1-alpha)
			if r := float64(s) / v; r < 1/math.Sqrt2 || r > math.Sqrt2 {
				t.Errorf("α %g: column %d scale %g, %g before rounding", alpha, j, s, v)
			}
		}
	}
}

// TestSmoothingExact checks that smoothing (here with random power-of-two
// scales on every LayerNorm → Linear pair) leaves the float32 model's
// embeddings bit for bit as they were.
func TestSmoothingExact(t *testing.T) {
	fixtures.Require(t)
	for _, dir := range [][]string{{"hf", "hf_tiny_quickgelu"}, {"openai", "rn_tiny", "rn_tiny.state_dict.pt"}} {
		t.Run(dir[len(dir)-1], func(t *testing.T) {
			m, err := convert.Open(fixtures.Path(dir...))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			rng := rand.New(rand.NewPCG(5, 1))
			sm := &smoothing{byNorm: map[string][]float32{}, byMatrix: map[string][]float32{}}
			pairs := smoothPairs(m.Config)
			for _, p := range pairs {
				s := make([]float32, p.cols)
				for j := range s {
					s[j] = float32(math.Exp2(float64(rng.IntN(9) - 4)))
				}
				sm.byNorm[p.norm], sm.byMatrix[p.matrix] = s, s
			}
			b := purego.New(1)
			images, tokens := RandomInputs(rng, m.Config, 49406, 49407, 2, 3, 0)
			var out [2][2][]float32
			for i, w := range []clip.Weights{m, smoothedWeights{m, sm}} {
				model, err := clip.Build(m.Config, w, b)
				if err != nil {
					t.Fatal(err)
				}
				if out[i][0], err = model.EncodeImage(images, 2); err != nil {
					t.Fatal(err)
				}
				if out[i][1], err = model.EncodeText(tokens); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("%d pairs smoothed", len(pairs))
			for tw, name := range []string{"image", "text"} {
				if !slices.Equal(out[0][tw], out[1][tw]) {
					t.Errorf("%s embeddings changed by smoothing", name)
				}
			}
		})
	}
}

// TestSmoothingNeedsSources checks that a plan with smoothing refuses to
// quantize a smoothed matrix before its Sources have smoothed the
// LayerNorms, and smooths the LayerNorms' values and nothing else.
func TestSmoothingNeedsSources(t *testing.T) {
	s := []float32{2, 0.5}
	p := &Plan{
		opt:      shards.Options{Quant: shards.Int8},
		smooth:   &smoothing{byNorm: map[string][]float32{"ln_1": s}, byMatrix: map[string][]float32{"fc.weight": s}},
		matrices: map[string]*planned{},
	}
	req := shards.MatrixRequest{Name: "fc.weight", Rows: 1, Cols: 2, Values: []float32{1, 1}, Scheme: shards.Int8}
	if _, _, err := p.Quantize(req); err == nil || !strings.Contains(err.Error(), "Sources") {
		t.Errorf("before Sources: err = %v", err)
	}
	vals := func(v ...float32) func() ([]float32, error) { return func() ([]float32, error) { return v, nil } }
	src := p.Sources([]shards.Source{
		{Name: "ln_1.weight", Kind: shards.KindVector, Float32: vals(4, 4)},
		{Name: "ln_1.bias", Kind: shards.KindVector, Float32: vals(1, 1)},
		{Name: "ln_2.weight", Kind: shards.KindVector, Float32: vals(4, 4)},
		{Name: "fc.weight", Kind: shards.KindMatrix, Float32: vals(1, 1)},
	})
	for i, want := range [][]float32{{2, 8}, {0.5, 2}, {4, 4}, {1, 1}} {
		got, err := src[i].Float32()
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: %v, %v; want %v", src[i].Name, got, err, want)
		}
	}
	p.matrices["fc.weight"] = &planned{m: kernels.QuantizeInt8(1, 2, []float32{2, 0.5}), hash: hashValues([]float32{2, 0.5})}
	if _, _, err := p.Quantize(req); err != nil {
		t.Errorf("after Sources: %v", err)
	}
}
