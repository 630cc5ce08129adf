//go:build js && wasm

package wasmsimd

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/actquant"
	"github.com/clipwasm/clipwasm/kernels/purego"
)

// TestMatchesActquant holds package actquant, the portable model that
// native fidelity tests run bundles through, to what the browser computes:
// each passing kernel set's quantized Linear, on int8 and q4 weights, must
// give exactly actquant's output in the set's activation mode (8-bit for
// SIMD128, 7-bit with a zero point for the relaxed dot).
func TestMatchesActquant(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 1))
	for _, set := range passing(t) {
		b, err := NewSet(set)
		if err != nil {
			t.Fatal(err)
		}
		mode := actquant.Int8
		if set == SetRelaxed {
			mode = actquant.U7
		}
		ref := actquant.New(purego.New(1), mode)
		for _, s := range [][3]int{{1, 1, 32}, {3, 5, 64}, {7, 13, 96}, {50, 24, 768}, {2, 9, 3072}} {
			m, n, k := s[0], s[1], s[2]
			x, bias, vals := randFloats(rng, m*k), randFloats(rng, n), randFloats(rng, n*k)
			for i := range x {
				if i%k == 5 {
					x[i] *= 50 // an outlier channel
				}
			}
			q4, err := kernels.QuantizeQ4(n, k, vals)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range []*kernels.Matrix{kernels.QuantizeInt8(n, k, vals), q4} {
				want, got := make([]float32, m*n), make([]float32, m*n)
				ref.Linear(want, x, m, w, bias)
				b.Linear(got, x, m, w, bias)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s %s %v: element %d = %g, actquant %s says %g", set, w.Scheme, s, i, got[i], mode, want[i])
					}
				}
			}
		}
	}
}

// TestActivationsF32 checks that the backend honours a matrix's request
// for float32 activations: its result is the float32 GEMM on the widened
// weights (within float rounding), not the int8 GEMM's.
func TestActivationsF32(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 2))
	m, n, k := 5, 24, 256
	x, bias, vals := randFloats(rng, m*k), randFloats(rng, n), randFloats(rng, n*k)
	for _, set := range passing(t) {
		b, err := NewSet(set)
		if err != nil {
			t.Fatal(err)
		}
		w := kernels.QuantizeInt8(n, k, vals)
		quant := make([]float32, m*n)
		b.Linear(quant, x, m, w, bias)
		wide := kernels.NewMatrix(n, k, w.Dequantize())
		want := make([]float32, m*n)
		b.Linear(want, x, m, wide, bias)
		f32 := &kernels.Matrix{Rows: n, Cols: k, Scheme: kernels.SchemeInt8, Q8: w.Q8, Scales: w.Scales, Activations: kernels.ActivationsF32}
		got := make([]float32, m*n)
		b.Linear(got, x, m, f32, bias)
		var dq, dg float64
		for i := range want {
			dq = max(dq, math.Abs(float64(quant[i]-want[i])))
			dg = max(dg, math.Abs(float64(got[i]-want[i])))
		}
		t.Logf("%s: max |Δ| to float32 activations: int8 GEMM %.3g, with Activations f32 %.3g", set, dq, dg)
		if dg > 1e-4 || dq < 100*dg {
			t.Errorf("%s: Activations f32 not honoured: max |Δ| %.3g (int8 GEMM %.3g)", set, dg, dq)
		}
	}
}
