//go:build js && wasm

package wasmsimd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/purego"
)

// backends returns a backend per kernel set that passed the self-test.
func backends(t *testing.T) map[string]kernels.Backend {
	t.Helper()
	out := map[string]kernels.Backend{}
	for _, s := range passing(t) {
		b, err := NewSet(s)
		if err != nil {
			t.Fatal(err)
		}
		out[s] = b
	}
	return out
}

// near fails if got differs from want by more than floatTol times
// max(1, max|want|).
func near(t *testing.T, name string, got, want []float32) {
	t.Helper()
	w := make([]float64, len(want))
	for i, v := range want {
		w[i] = float64(v)
	}
	if err := closeTo(name, got, len(got), 1, len(got), w); err != nil {
		t.Error(err)
	}
}

func TestNew(t *testing.T) {
	b, err := New()
	if err != nil {
		t.Fatal(err)
	}
	want := "wasmsimd-" + Selected()
	if Selected() == SetGo {
		want = "purego"
	}
	if b.Name() != want {
		t.Errorf("New().Name() = %q, want %q", b.Name(), want)
	}
	if _, err := NewSet("avx512"); err == nil {
		t.Error("NewSet accepted an unknown set")
	}
}

func TestLinearF32(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 1))
	ref := purego.New(1)
	for set, b := range backends(t) {
		for _, s := range [][3]int{{1, 1, 1}, {3, 5, 7}, {50, 96, 768}, {7, 33, 64}} {
			m, n, k := s[0], s[1], s[2]
			x, w, bias := randFloats(rng, m*k), kernels.NewMatrix(n, k, randFloats(rng, n*k)), randFloats(rng, n)
			got, want := make([]float32, m*n), make([]float32, m*n)
			b.Linear(got, x, m, w, bias)
			ref.Linear(want, x, m, w, bias)
			near(t, fmt.Sprintf("%s Linear f32 %v", set, s), got, want)
		}
	}
}

// quantMatrix returns w [n, k] quantized to scheme.
func quantMatrix(t *testing.T, scheme kernels.Scheme, n, k int, w []float32) *kernels.Matrix {
	t.Helper()
	if scheme == kernels.SchemeInt8 {
		return kernels.QuantizeInt8(n, k, w)
	}
	q, err := kernels.QuantizeQ4(n, k, w)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestLinearQuant checks Linear on int8 and q4 weights bit for bit against
// the plain Go definition of its pipeline (quantize the activations per
// row, integer GEMM, scale), and its closeness to float32 math on the
// dequantized weights: the cosine of the outputs, logged per set, shows
// what the relaxed set's 7-bit activations cost against the simd128 set's
// 8 bits.
func TestLinearQuant(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	ref := purego.New(1)
	for set, b := range backends(t) {
		for _, scheme := range []kernels.Scheme{kernels.SchemeInt8, kernels.SchemeQ4} {
			for _, s := range [][3]int{{1, 1, 32}, {3, 5, 64}, {50, 96, 768}, {5, 7, 3072}} {
				m, n, k := s[0], s[1], s[2]
				x, bias := randFloats(rng, m*k), randFloats(rng, n)
				w := quantMatrix(t, scheme, n, k, randFloats(rng, n*k))
				got := make([]float32, m*n)
				b.Linear(got, x, m, w, bias)

				q8, rs := w.Q8, w.Scales
				if scheme == kernels.SchemeQ4 {
					q8, rs = refQ4ToI8(w.Q4, w.Scales, n, k)
				}
				var want []float32
				if set == SetRelaxed {
					xq, sx, zx := refQuantU7(x, k, m, k)
					want = refGEMMU7(xq, k, sx, zx, q8, k, rs, refRowSums(q8, k, n, k), bias, m, n, k)
				} else {
					xq, sx := refQuantI8(x, k, m, k)
					want = refGEMMI8(xq, k, sx, q8, k, rs, bias, m, n, k)
				}
				name := fmt.Sprintf("%s Linear %s %v", set, scheme, s)
				if err := exact(name, got, n, m, n, want); err != nil {
					t.Error(err)
				}

				f32 := make([]float32, m*n)
				ref.Linear(f32, x, m, kernels.NewMatrix(n, k, w.Dequantize()), bias)
				if c := cosine(got, f32); c < 0.999 {
					t.Errorf("%s: cosine to float32 math %.5f < 0.999", name, c)
				} else if m == 50 {
					t.Logf("%s: cosine to float32 math on the same weights %.6f", name, c)
				}
			}
		}
	}
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

// TestPrepared checks that a quantized matrix's int8 form is made once,
// shared by concurrent first calls, and that another backend's Prepared
// value is left in place (and Linear still right).
func TestPrepared(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 3))
	for set, b := range backends(t) {
		w := quantMatrix(t, kernels.SchemeQ4, 8, 64, randFloats(rng, 8*64))
		x := randFloats(rng, 2*64)
		outs := make([][]float32, 4)
		var wg sync.WaitGroup
		for i := range outs {
			outs[i] = make([]float32, 2*8)
			bi, _ := NewSet(set)
			wg.Add(1)
			go func() {
				defer wg.Done()
				bi.Linear(outs[i], x, 2, w, nil)
			}()
		}
		wg.Wait()
		p, ok := w.Prepared.(*quantWeights)
		if !ok {
			t.Fatalf("%s: Prepared = %T, want *quantWeights", set, w.Prepared)
		}
		for i := range outs {
			if err := exact(set+" concurrent first calls", outs[i], 16, 1, 16, outs[0]); err != nil {
				t.Error(err)
			}
		}
		b.Linear(outs[0], x, 2, w, nil)
		if w.Prepared != p {
			t.Errorf("%s: Prepared replaced on a later call", set)
		}

		foreign := "another backend's"
		w2 := quantMatrix(t, kernels.SchemeQ4, 8, 64, w.Dequantize())
		w2.Prepared = foreign
		got := make([]float32, 16)
		b.Linear(got, x, 2, w2, nil)
		if w2.Prepared != foreign {
			t.Errorf("%s: replaced a foreign Prepared value", set)
		}
		if err := exact(set+" with foreign Prepared", got, 16, 1, 16, outs[0]); err != nil {
			t.Error(err)
		}
	}
}

func TestLayerNormActivateAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 4))
	ref := purego.New(1)
	for set, b := range backends(t) {
		m, n := 5, 768
		x, gamma, beta := randFloats(rng, m*n), randFloats(rng, n), randFloats(rng, n)
		for i := range x {
			x[i] = x[i]*3 + 20
		}
		got, want := make([]float32, m*n), make([]float32, m*n)
		b.LayerNorm(got, x, m, n, gamma, beta, 1e-5)
		ref.LayerNorm(want, x, m, n, gamma, beta, 1e-5)
		near(t, set+" LayerNorm", got, want)

		copy(got, x)
		b.LayerNorm(got, got, m, n, gamma, beta, 1e-5)
		near(t, set+" LayerNorm in place", got, want)

		for _, act := range []kernels.Activation{kernels.QuickGELU, kernels.GELU, kernels.ReLU} {
			copy(got, x[:1001])
			copy(want, x[:1001])
			for i := range 1001 {
				got[i] -= 20
				want[i] -= 20
			}
			b.Activate(got[:1001], act)
			ref.Activate(want[:1001], act)
			near(t, fmt.Sprintf("%s Activate %s", set, act), got[:1001], want[:1001])
		}

		copy(got, x)
		copy(want, x)
		b.Add(got[:1003], x[7:])
		ref.Add(want[:1003], x[7:])
		near(t, set+" Add", got, want)
	}
}

func TestAttention(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 5))
	ref := purego.New(1)
	shapes := []kernels.AttentionShape{
		{Batch: 1, SeqQ: 1, SeqK: 1, Heads: 1, HeadDim: 4},
		{Batch: 2, SeqQ: 5, SeqK: 7, Heads: 3, HeadDim: 8},
		{Batch: 1, SeqQ: 50, SeqK: 50, Heads: 12, HeadDim: 64},
		{Batch: 2, SeqQ: 9, SeqK: 9, Heads: 2, HeadDim: 6, Causal: true},
		{Batch: 1, SeqQ: 77, SeqK: 77, Heads: 8, HeadDim: 64, Causal: true},
	}
	for set, b := range backends(t) {
		for _, s := range shapes {
			width := s.Heads * s.HeadDim
			// q, k and v as column slices of one fused [rows, 3·width]
			// projection, as the model passes them.
			for _, fused := range []bool{false, true} {
				s.LDQ, s.LDKV = width, width
				var q, k, v []float32
				if fused {
					s.LDQ, s.LDKV = 3*width, 3*width
					qkv := randFloats(rng, s.Batch*max(s.SeqQ, s.SeqK)*3*width)
					q, k, v = qkv, qkv[width:], qkv[2*width:]
				} else {
					q = randFloats(rng, s.Batch*s.SeqQ*width)
					k = randFloats(rng, s.Batch*s.SeqK*width)
					v = randFloats(rng, s.Batch*s.SeqK*width)
				}
				got, want := make([]float32, s.Batch*s.SeqQ*width), make([]float32, s.Batch*s.SeqQ*width)
				b.Attention(got, q, k, v, s)
				ref.Attention(want, q, k, v, s)
				near(t, fmt.Sprintf("%s Attention %+v", set, s), got, want)
			}
		}
	}
}

func TestConvAndPool(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 6))
	ref := purego.New(1)
	shapes := []kernels.ConvShape{
		{N: 1, H: 7, W: 6, InC: 3, OutC: 5, K: 3, Stride: 2, Pad: 1},
		{N: 2, H: 5, W: 5, InC: 4, OutC: 8, K: 1, Stride: 1, Pad: 0},
		{N: 1, H: 64, W: 64, InC: 3, OutC: 16, K: 32, Stride: 32, Pad: 0},
		{N: 1, H: 9, W: 9, InC: 2, OutC: 3, K: 3, Stride: 1, Pad: 2},
	}
	for set, b := range backends(t) {
		for _, s := range shapes {
			oh, ow := s.OutSize()
			src := randFloats(rng, s.N*s.H*s.W*s.InC)
			w := kernels.NewMatrix(s.OutC, s.K*s.K*s.InC, randFloats(rng, s.OutC*s.K*s.K*s.InC))
			bias := randFloats(rng, s.OutC)
			got, want := make([]float32, s.N*oh*ow*s.OutC), make([]float32, s.N*oh*ow*s.OutC)
			b.Conv2D(got, src, s, w, bias)
			ref.Conv2D(want, src, s, w, bias)
			near(t, fmt.Sprintf("%s Conv2D %+v", set, s), got, want)
		}
		src := randFloats(rng, 2*7*6*3)
		got, want := make([]float32, 2*3*3*3), make([]float32, 2*3*3*3)
		b.AvgPool2D(got, src, 2, 7, 6, 3, 2)
		ref.AvgPool2D(want, src, 2, 7, 6, 3, 2)
		near(t, set+" AvgPool2D", got, want)
	}
}

// TestConvQuant checks that Conv2D runs quantized weights with float32
// activations (see convGEMM): the result equals a float32 convolution on the
// dequantized weights, for a patch-embedding shape and a padded 3×3 one
// with more output channels than one widened block.
func TestConvQuant(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 7))
	ref := purego.New(1)
	for _, s := range []kernels.ConvShape{
		{N: 1, H: 64, W: 64, InC: 3, OutC: 16, K: 32, Stride: 32},
		{N: 2, H: 9, W: 7, InC: 32, OutC: 80, K: 3, Stride: 1, Pad: 1},
	} {
		oh, ow := s.OutSize()
		kk := s.K * s.K * s.InC
		for _, scheme := range []kernels.Scheme{kernels.SchemeInt8, kernels.SchemeQ4} {
			for set, b := range backends(t) {
				src := randFloats(rng, s.N*s.H*s.W*s.InC)
				bias := randFloats(rng, s.OutC)
				w := quantMatrix(t, scheme, s.OutC, kk, randFloats(rng, s.OutC*kk))
				got, want := make([]float32, s.N*oh*ow*s.OutC), make([]float32, s.N*oh*ow*s.OutC)
				b.Conv2D(got, src, s, w, bias)
				ref.Conv2D(want, src, s, kernels.NewMatrix(s.OutC, kk, w.Dequantize()), bias)
				near(t, fmt.Sprintf("%s Conv2D %s %+v", set, scheme, s), got, want)
			}
		}
	}
}
