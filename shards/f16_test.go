package shards

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// keepNamed is an F16Policy keeping f32 the matrices it names.
type keepNamed map[string]bool

func (k keepNamed) KeepF32(name string) string {
	if k[name] {
		return "kept f32 by the test"
	}
	return ""
}

// TestF16Forms writes an f16 bundle with a matrix binary16 holds, a
// row-scaled one (a BatchNorm fold of binary16 weights), one whose factors
// do not give its values back, and two inexact ones of which the policy
// keeps one f32, and reads each back in the form the writer chose.
func TestF16Forms(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const rows, cols = 24, 36
	half := func() []float32 {
		v := make([]float32, rows*cols)
		for i := range v {
			v[i] = RoundF16(float32(rng.NormFloat64() * 0.05))
		}
		return v
	}
	scale := make([]float32, rows)
	for i := range scale {
		scale[i] = float32(math.Exp(rng.NormFloat64()))
	}
	base, folded := half(), make([]float32, rows*cols)
	for i, b := range base {
		folded[i] = b * scale[i/cols]
	}
	wrongScale := slices.Clone(scale)
	wrongScale[5] *= 1.001
	inexact := func() []float32 {
		v := make([]float32, rows*cols)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.05)
		}
		return v
	}
	for _, tc := range []struct {
		name      string
		vals      []float32
		rowScaled func() ([]float32, []float32, error)
		scheme    Scheme
		scales    bool // stored with row scales
		exact     bool // read back bit for bit
	}{
		{"exact", half(), nil, F16, false, true},
		{"folded", folded, func() ([]float32, []float32, error) { return base, scale, nil }, F16, true, true},
		{"misfactored", folded, func() ([]float32, []float32, error) { return base, wrongScale, nil }, F16, false, false},
		{"kept", inexact(), nil, F32, false, true},
		{"rounded", inexact(), nil, F16, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "b")
			vals := tc.vals
			src := []Source{{Name: tc.name + ".weight", Shape: []int{rows, cols}, Kind: KindMatrix, RowScaled: tc.rowScaled,
				Float32: func() ([]float32, error) { return slices.Clone(vals), nil }}}
			res, err := Write(dir, testConfig(), tok(t), src, Options{Quant: F16, F16Policy: keepNamed{"kept.weight": true}})
			if err != nil {
				t.Fatal(err)
			}
			e := res.Manifest.Tensors[0]
			if e.Scheme != tc.scheme || (e.ScaleDType == DTypeF32) != tc.scales || (e.Fallback != "") != (tc.scheme != F16) {
				t.Fatalf("stored as %s, scale dtype %q, fallback %q", e.Scheme, e.ScaleDType, e.Fallback)
			}
			b, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			got, err := b.Tensor(e.Name, rows, cols)
			if err != nil {
				t.Fatal(err)
			}
			same := slices.Equal(got, vals)
			if same != tc.exact {
				t.Errorf("read back exactly: %v, want %v", same, tc.exact)
			}
			if rel := res.Tensors[0].RelError; (rel == 0) != tc.exact || rel > 1e-3 {
				t.Errorf("relative error %g", rel)
			}
		})
	}
}

// TestRowScaledManifest: row scales are F32 only, on f16 matrices only.
func TestRowScaledManifest(t *testing.T) {
	for _, tc := range []struct {
		shape  []int
		scheme Scheme
		scale  DType
		err    string
	}{
		{[]int{4, 8}, F16, DTypeF32, ""},
		{[]int{4, 8}, F16, DTypeF16, "no scales"},
		{[]int{4, 8}, F32, DTypeF32, "no scales"},
		{nil, F16, DTypeF32, "no scales"},
	} {
		l, err := layoutOf(tc.shape, tc.scheme, tc.scheme.dtype(), tc.scale)
		switch {
		case tc.err == "" && (err != nil || l.rowScales != 4):
			t.Errorf("%v %s %s: %v, %d scale bytes a row", tc.shape, tc.scheme, tc.scale, err, l.rowScales)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v %s %s: error %v, want %q", tc.shape, tc.scheme, tc.scale, err, tc.err)
		}
	}
}
