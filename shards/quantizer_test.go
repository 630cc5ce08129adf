package shards

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/kernels"
)

// stubQuantizer stores "a.weight" f32, "token_embedding.weight" with
// scales that are not at the stored precision when bad is set, and the
// rest by Rounding.
type stubQuantizer struct{ bad bool }

func (s stubQuantizer) Quantize(m MatrixRequest) (*kernels.Matrix, string, error) {
	switch {
	case m.Name == "a.weight":
		return kernels.NewMatrix(m.Rows, m.Cols, m.Values), "kept f32: test", nil
	case m.Name == "token_embedding.weight" && s.bad:
		q := kernels.QuantizeInt8(m.Rows, m.Cols, m.Values)
		q.Scales[0] = 1.0 / 3
		return q, "", nil
	}
	return Rounding{}.Quantize(m)
}

// TestQuantizer writes through a Quantizer: its schemes and reasons reach
// the manifest, and scales finer than the bundle stores are refused.
func TestQuantizer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bundle")
	res := write(t, dir, Options{Quant: Q4, Quantizer: stubQuantizer{}})
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a := b.tensors["a.weight"]
	if a.Scheme != F32 || a.Fallback != "kept f32: test" {
		t.Errorf("a.weight stored %s, fallback %q", a.Scheme, a.Fallback)
	}
	for i, v := range synthModel() {
		if v.name == "a.weight" {
			got, _ := b.Tensor(v.name, v.shape...)
			if d, _ := fixtures.MaxAbsDiff(got, v.vals); d != 0 || res.Tensors[i].RelError != 0 {
				t.Errorf("a.weight: off by %g, reported error %g", d, res.Tensors[i].RelError)
			}
		}
	}
	if e := b.tensors["token_embedding.weight"]; e.Scheme != Q4 || e.Fallback != "" {
		t.Errorf("token_embedding.weight stored %s, fallback %q", e.Scheme, e.Fallback)
	}
	_, err = Write(filepath.Join(t.TempDir(), "bad"), testConfig(), tok(t), sources(synthModel()), Options{Quant: Q4, Quantizer: stubQuantizer{bad: true}})
	if err == nil || !strings.Contains(err.Error(), "precision") {
		t.Errorf("unrounded scales: err = %v", err)
	}
}
