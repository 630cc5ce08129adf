package avx2

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/clipwasm/clipwasm/kernels"
)

// cosine returns the cosine similarity and the relative RMS error of got
// against want.
func cosine(got, want []float32) (cos, relRMS float64) {
	var dot, gg, ww, dd float64
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		dot += g * w
		gg += g * g
		ww += w * w
		dd += (g - w) * (g - w)
	}
	return dot / math.Sqrt(gg*ww), math.Sqrt(dd / ww)
}

// int8ActsLinear simulates the alternative design the kernel does not use:
// activations quantized per row to int8 (±127) instead of int16, times the
// int8 weights, summed exactly.
func int8ActsLinear(x []float32, m int, w *kernels.Matrix) []float32 {
	n, k := w.Rows, w.Cols
	out := make([]float32, m*n)
	qa := make([]int32, k)
	for i := range m {
		row := x[i*k : (i+1)*k]
		var amax float64
		for _, v := range row {
			amax = max(amax, math.Abs(float64(v)))
		}
		sa := amax / 127
		for p, v := range row {
			qa[p] = int32(math.RoundToEven(float64(v) / sa))
		}
		for j := range n {
			var s int64
			for p, q := range w.Q8[j*k : (j+1)*k] {
				s += int64(qa[p]) * int64(q)
			}
			out[i*n+j] = float32(float64(s) * sa * float64(w.Scales[j]))
		}
	}
	return out
}

// TestQuantizedAccuracy measures, on the ViT-B/32 GEMM shapes at batch 1,
// how far int8 and q4 Linear (with dynamic per-token activation
// quantization) are from the float32 product. Activations mimic the
// transformer's: LayerNorm outputs with a few large outlier channels (as in
// trained CLIP) for qkv and fc1, and QuickGELU outputs for proj and fc2.
// Weights are Gaussian. Run with -v to see the figures.
func TestQuantizedAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	be := newTest(t, 0)
	for _, s := range benchShapes[:4] {
		x := randSlice(rng, s.m*s.k)
		if s.name == "vit_b1_qkv" || s.name == "vit_b1_fc1" {
			for i := range s.m {
				x[i*s.k+7] *= 40
				x[i*s.k+300] *= 25
			}
		} else {
			for i, v := range x {
				v *= 2
				x[i] = v / (1 + float32(math.Exp(float64(-1.702*v))))
			}
		}
		wd := randSlice(rng, s.n*s.k)
		for i := range wd {
			wd[i] *= 0.02
		}
		want := make([]float32, s.m*s.n)
		be.Linear(want, x, s.m, kernels.NewMatrix(s.n, s.k, wd), nil)
		for _, scheme := range []kernels.Scheme{kernels.SchemeInt8, kernels.SchemeQ4} {
			w := quantizedMatrix(t, scheme, s.n, s.k, wd)
			got := make([]float32, s.m*s.n)
			be.Linear(got, x, s.m, w, nil)
			cos, rms := cosine(got, want)
			// The same weights in float32: the weight quantization alone.
			deq := make([]float32, s.m*s.n)
			be.Linear(deq, x, s.m, kernels.NewMatrix(s.n, s.k, w.Dequantize()), nil)
			wcos, wrms := cosine(deq, want)
			t.Logf("%-11s %-4s cos %.6f relRMS %.2e   (weights alone: cos %.6f relRMS %.2e)", s.name, scheme, cos, rms, wcos, wrms)
			if floor := map[kernels.Scheme]float64{kernels.SchemeInt8: 0.9999, kernels.SchemeQ4: 0.99}[scheme]; cos < floor {
				t.Errorf("%s %s: cosine %.6f below %v", s.name, scheme, cos, floor)
			}
			if scheme == kernels.SchemeInt8 {
				c8, r8 := cosine(int8ActsLinear(x, s.m, w), want)
				t.Logf("%-11s int8 weights × int8 activations (not used): cos %.6f relRMS %.2e", s.name, c8, r8)
			}
		}
	}
}
