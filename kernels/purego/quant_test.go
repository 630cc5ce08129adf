package purego

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/clipwasm/clipwasm/kernels"
)

// quantized returns w [n, k] in the given scheme.
func quantized(t *testing.T, scheme kernels.Scheme, n, k int, w []float32) *kernels.Matrix {
	t.Helper()
	switch scheme {
	case kernels.SchemeInt8:
		return kernels.QuantizeInt8(n, k, w)
	case kernels.SchemeQ4:
		q, err := kernels.QuantizeQ4(n, k, w)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	t.Fatalf("unknown scheme %q", scheme)
	return nil
}

// TestLinearQuantized checks quantized Linear against the float64 product
// with the dequantized weights: widening is exact, so only float32
// summation error remains.
func TestLinearQuantized(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	cases := []struct{ m, n, k int }{
		{1, 1, 32}, {3, 5, 64}, {mr + 1, nr + 1, kc + 32}, {mr - 1, nr - 1, kc - 32},
		{quantRows + 5, ncPanels*nr + 3, 2*kc + 64}, {50, 96, 768}, {7, 9, 1}, {2, 3, 5},
	}
	for _, scheme := range []kernels.Scheme{kernels.SchemeInt8, kernels.SchemeQ4} {
		for _, c := range cases {
			if scheme == kernels.SchemeQ4 && c.k%kernels.Q4Block != 0 {
				continue
			}
			x := randSlice(rng, c.m*c.k)
			w := quantized(t, scheme, c.n, c.k, randSlice(rng, c.n*c.k))
			ref := kernels.NewMatrix(c.n, c.k, w.Dequantize())
			bias := randSlice(rng, c.n)
			want := refLinear(x, c.m, ref, bias)
			for _, th := range threadCounts {
				dst := make([]float32, c.m*c.n)
				New(th).Linear(dst, x, c.m, w, bias)
				checkClose(t, fmt.Sprintf("%s m%d n%d k%d t%d", scheme, c.m, c.n, c.k, th), dst, want)
			}
			if w.Prepared != nil {
				t.Fatalf("%s: Prepared set to %T; quantized weights must not be widened in place", scheme, w.Prepared)
			}
		}
	}
}

// TestConv2DQuantized checks that quantized convolution weights go through
// the quantized GEMM too, for the 1×1 shortcut and the im2col path.
func TestConv2DQuantized(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	for _, s := range []kernels.ConvShape{
		{N: 2, H: 5, W: 7, InC: 32, OutC: 5, K: 1, Stride: 1},
		{N: 1, H: 8, W: 9, InC: 32, OutC: 6, K: 3, Stride: 2, Pad: 1},
		{N: 2, H: 32, W: 32, InC: 2, OutC: 16, K: 8, Stride: 8},
	} {
		kk := s.K * s.K * s.InC
		src := randSlice(rng, s.N*s.H*s.W*s.InC)
		bias := randSlice(rng, s.OutC)
		oh, ow := s.OutSize()
		for _, scheme := range []kernels.Scheme{kernels.SchemeInt8, kernels.SchemeQ4} {
			w := quantized(t, scheme, s.OutC, kk, randSlice(rng, s.OutC*kk))
			want := refConv(src, s, kernels.NewMatrix(s.OutC, kk, w.Dequantize()), bias)
			dst := make([]float32, s.N*oh*ow*s.OutC)
			New(2).Conv2D(dst, src, s, w, bias)
			checkClose(t, fmt.Sprintf("%s %+v", scheme, s), dst, want)
		}
	}
}
