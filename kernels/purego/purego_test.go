package purego

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/clipwasm/clipwasm/kernels"
)

// relTol is the accepted error relative to the largest reference magnitude:
// float32 accumulation over a few thousand terms against a float64 reference.
const relTol = 1e-5

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// checkClose fails if got differs from want by more than relTol times the
// largest |want| (absolute for all-zero wants).
func checkClose(t *testing.T, name string, got []float32, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: len %d, want %d", name, len(got), len(want))
	}
	scale := 1.0
	for _, w := range want {
		scale = max(scale, math.Abs(w))
	}
	for i := range want {
		if d := math.Abs(float64(got[i]) - want[i]); d > relTol*scale || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s: [%d] = %v, want %v (scale %v)", name, i, got[i], want[i], scale)
		}
	}
}

func refLinear(x []float32, m int, w *kernels.Matrix, bias []float32) []float64 {
	n, k := w.Rows, w.Cols
	out := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			if bias != nil {
				s = float64(bias[j])
			}
			for p := range k {
				s += float64(x[i*k+p]) * float64(w.F32[j*k+p])
			}
			out[i*n+j] = s
		}
	}
	return out
}

// threadCounts are the pool sizes every test runs with: inline, two
// workers, and more threads than the machine has cores.
var threadCounts = []int{1, 2, 5}

func TestLinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct{ m, n, k int }{
		{1, 1, 1}, {1, 7, 5}, {3, 4, 1}, {4, 4, 4}, {5, 9, 3}, {7, 1, 13},
		{mr + 1, nr + 1, kc + 1}, {mr - 1, nr - 1, kc - 1}, {2*mr + 3, 3*nr + 2, 2*kc + 7},
		{mcRows + 3, ncPanels*nr + 5, 33}, {130, 260, 300}, {50, 96, 768},
	}
	for _, c := range cases {
		x := randSlice(rng, c.m*c.k)
		w := kernels.NewMatrix(c.n, c.k, randSlice(rng, c.n*c.k))
		bias := randSlice(rng, c.n)
		for _, withBias := range []bool{false, true} {
			bs := bias
			if !withBias {
				bs = nil
			}
			want := refLinear(x, c.m, w, bs)
			for _, th := range threadCounts {
				name := fmt.Sprintf("m%d n%d k%d bias%v t%d", c.m, c.n, c.k, withBias, th)
				dst := make([]float32, c.m*c.n)
				New(th).Linear(dst, x, c.m, w, bs)
				checkClose(t, name, dst, want)
			}
		}
	}
}

// TestLinearThreadsAgree checks that the result does not depend on the
// thread count: tiles, not threads, decide the summation order.
func TestLinearThreadsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m, n, k := 150, 200, 600
	x := randSlice(rng, m*k)
	w := kernels.NewMatrix(n, k, randSlice(rng, n*k))
	d1, d2 := make([]float32, m*n), make([]float32, m*n)
	New(1).Linear(d1, x, m, w, nil)
	New(2).Linear(d2, x, m, w, nil)
	for i := range d1 {
		if d1[i] != d2[i] {
			t.Fatalf("[%d]: 1 thread %v, 2 threads %v", i, d1[i], d2[i])
		}
	}
}

// TestLinearConcurrentFirstUse makes many goroutines hit an unpacked matrix
// at once; run with -race to check the lazy packing.
func TestLinearConcurrentFirstUse(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	m, n, k := 9, 13, 21
	x := randSlice(rng, m*k)
	w := kernels.NewMatrix(n, k, randSlice(rng, n*k))
	want := refLinear(x, m, w, nil)
	be := New(2)
	var wg sync.WaitGroup
	dsts := make([][]float32, 8)
	for g := range dsts {
		dsts[g] = make([]float32, m*n)
		wg.Go(func() { be.Linear(dsts[g], x, m, w, nil) })
	}
	wg.Wait()
	for g, d := range dsts {
		checkClose(t, fmt.Sprintf("goroutine %d", g), d, want)
	}
	if _, ok := w.Prepared.(*packedW); !ok {
		t.Fatalf("Prepared = %T, want *packedW", w.Prepared)
	}
}

// TestLinearForeignPrepared checks that another backend's cached form is
// neither used nor overwritten.
func TestLinearForeignPrepared(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x := randSlice(rng, 3*5)
	w := kernels.NewMatrix(6, 5, randSlice(rng, 30))
	w.Prepared = "other backend"
	dst := make([]float32, 18)
	New(1).Linear(dst, x, 3, w, nil)
	checkClose(t, "foreign", dst, refLinear(x, 3, w, nil))
	if w.Prepared != "other backend" {
		t.Fatalf("Prepared overwritten with %T", w.Prepared)
	}
}

func TestLayerNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, c := range []struct{ m, n int }{{1, 1}, {1, 768}, {3, 5}, {77, 512}, {400, 768}} {
		x := randSlice(rng, c.m*c.n)
		for i := range x {
			x[i] = x[i]*3 + 10 // a large mean tests the variance's accuracy
		}
		gamma, beta := randSlice(rng, c.n), randSlice(rng, c.n)
		const eps = 1e-5
		want := make([]float64, c.m*c.n)
		for r := range c.m {
			var mean, vr float64
			for _, v := range x[r*c.n : (r+1)*c.n] {
				mean += float64(v)
			}
			mean /= float64(c.n)
			for _, v := range x[r*c.n : (r+1)*c.n] {
				vr += (float64(v) - mean) * (float64(v) - mean)
			}
			vr /= float64(c.n)
			for i := range c.n {
				want[r*c.n+i] = (float64(x[r*c.n+i])-mean)/math.Sqrt(vr+eps)*float64(gamma[i]) + float64(beta[i])
			}
		}
		for _, th := range threadCounts {
			dst := make([]float32, len(x))
			New(th).LayerNorm(dst, x, c.m, c.n, gamma, beta, eps)
			checkClose(t, fmt.Sprintf("m%d n%d t%d", c.m, c.n, th), dst, want)
			inPlace := append([]float32(nil), x...)
			New(th).LayerNorm(inPlace, inPlace, c.m, c.n, gamma, beta, eps)
			checkClose(t, fmt.Sprintf("in place m%d n%d t%d", c.m, c.n, th), inPlace, want)
		}
	}
}

func TestActivate(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	refs := map[kernels.Activation]func(float64) float64{
		kernels.QuickGELU: func(x float64) float64 { return x / (1 + math.Exp(-1.702*x)) },
		kernels.GELU:      func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) },
		kernels.ReLU:      func(x float64) float64 { return max(x, 0) },
	}
	for act, ref := range refs {
		for _, n := range []int{0, 1, 17, 100_000} {
			x := randSlice(rng, n)
			for i := range x {
				x[i] *= 4
			}
			if n > 3 {
				x[0], x[1], x[2] = 0, -100, 100 // saturation and zero
			}
			want := make([]float64, n)
			for i, v := range x {
				want[i] = ref(float64(v))
			}
			for _, th := range threadCounts {
				got := append([]float32(nil), x...)
				New(th).Activate(got, act)
				// Elementwise, so compare each value to its own magnitude.
				for i := range got {
					if d := math.Abs(float64(got[i]) - want[i]); d > relTol*max(1e-3, math.Abs(want[i])) {
						t.Fatalf("%v n%d t%d: f(%v) = %v, want %v", act, n, th, x[i], got[i], want[i])
					}
				}
			}
		}
	}
}

func TestAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, n := range []int{0, 1, 5, 100_003} {
		a, b := randSlice(rng, n), randSlice(rng, n)
		want := make([]float64, n)
		for i := range a {
			want[i] = float64(a[i] + b[i])
		}
		for _, th := range threadCounts {
			dst := append([]float32(nil), a...)
			New(th).Add(dst, b)
			checkClose(t, fmt.Sprintf("n%d t%d", n, th), dst, want)
		}
	}
}

func refAttention(q, k, v []float32, s kernels.AttentionShape) []float64 {
	width := s.Heads * s.HeadDim
	out := make([]float64, s.Batch*s.SeqQ*width)
	scale := 1 / math.Sqrt(float64(s.HeadDim))
	for b := range s.Batch {
		for h := range s.Heads {
			for i := range s.SeqQ {
				sc := make([]float64, s.SeqK)
				mx := math.Inf(-1)
				for j := range s.SeqK {
					if s.Causal && j > i {
						sc[j] = math.Inf(-1)
						continue
					}
					var d float64
					for c := range s.HeadDim {
						d += float64(q[(b*s.SeqQ+i)*s.LDQ+h*s.HeadDim+c]) * float64(k[(b*s.SeqK+j)*s.LDKV+h*s.HeadDim+c])
					}
					sc[j] = d * scale
					mx = max(mx, sc[j])
				}
				var sum float64
				for j := range sc {
					sc[j] = math.Exp(sc[j] - mx)
					sum += sc[j]
				}
				for c := range s.HeadDim {
					var o float64
					for j := range sc {
						o += sc[j] * float64(v[(b*s.SeqK+j)*s.LDKV+h*s.HeadDim+c])
					}
					out[(b*s.SeqQ+i)*width+h*s.HeadDim+c] = o / sum
				}
			}
		}
	}
	return out
}

func TestAttention(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	cases := []struct {
		batch, seqQ, seqK, heads, dim int
		causal, fused                 bool
	}{
		{1, 1, 1, 1, 1, false, false},
		{1, 1, 1, 1, 1, true, true},
		{2, 3, 5, 1, 7, false, false},
		{1, 5, 5, 2, 3, true, false},
		{3, 7, 7, 4, 8, true, true},
		{2, 50, 50, 12, 64, false, true},
		{2, 77, 77, 8, 64, true, true},
		{2, 4, 9, 3, 5, false, true},
	}
	for _, c := range cases {
		width := c.heads * c.dim
		s := kernels.AttentionShape{Batch: c.batch, SeqQ: c.seqQ, SeqK: c.seqK, Heads: c.heads, HeadDim: c.dim,
			LDQ: width, LDKV: width, Causal: c.causal}
		var q, k, v []float32
		if c.fused {
			// q, k, v as column views of one [T, 3W] projection; with
			// SeqQ != SeqK the fused buffer has the longer sequence.
			rows := c.batch * max(c.seqQ, c.seqK)
			qkv := randSlice(rng, rows*3*width)
			q, k, v = qkv, qkv[width:], qkv[2*width:]
			s.LDQ, s.LDKV = 3*width, 3*width
		} else {
			q = randSlice(rng, c.batch*c.seqQ*width)
			k = randSlice(rng, c.batch*c.seqK*width)
			v = randSlice(rng, c.batch*c.seqK*width)
		}
		want := refAttention(q, k, v, s)
		for _, th := range threadCounts {
			dst := make([]float32, c.batch*c.seqQ*width)
			New(th).Attention(dst, q, k, v, s)
			checkClose(t, fmt.Sprintf("%+v t%d", c, th), dst, want)
		}
	}
}

func refConv(src []float32, s kernels.ConvShape, w *kernels.Matrix, bias []float32) []float64 {
	oh, ow := s.OutSize()
	out := make([]float64, s.N*oh*ow*s.OutC)
	for n := range s.N {
		for y := range oh {
			for x := range ow {
				for o := range s.OutC {
					var acc float64
					if bias != nil {
						acc = float64(bias[o])
					}
					for kh := range s.K {
						for kw := range s.K {
							iy, ix := y*s.Stride-s.Pad+kh, x*s.Stride-s.Pad+kw
							if iy < 0 || iy >= s.H || ix < 0 || ix >= s.W {
								continue
							}
							for c := range s.InC {
								acc += float64(src[((n*s.H+iy)*s.W+ix)*s.InC+c]) *
									float64(w.F32[o*s.K*s.K*s.InC+(kh*s.K+kw)*s.InC+c])
							}
						}
					}
					out[((n*oh+y)*ow+x)*s.OutC+o] = acc
				}
			}
		}
	}
	return out
}

func TestConv2D(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	cases := []kernels.ConvShape{
		{N: 1, H: 1, W: 1, InC: 1, OutC: 1, K: 1, Stride: 1},
		{N: 2, H: 5, W: 7, InC: 3, OutC: 5, K: 1, Stride: 1},
		{N: 1, H: 6, W: 5, InC: 4, OutC: 3, K: 1, Stride: 2},
		{N: 2, H: 7, W: 6, InC: 3, OutC: 9, K: 3, Stride: 1, Pad: 1},
		{N: 1, H: 8, W: 9, InC: 5, OutC: 6, K: 3, Stride: 2, Pad: 1},
		{N: 1, H: 9, W: 11, InC: 2, OutC: 4, K: 3, Stride: 1, Pad: 0},
		{N: 2, H: 16, W: 13, InC: 3, OutC: 8, K: 7, Stride: 2, Pad: 3},
		{N: 1, H: 3, W: 4, InC: 2, OutC: 3, K: 7, Stride: 1, Pad: 3},      // kernel wider than the image
		{N: 2, H: 32, W: 32, InC: 3, OutC: 16, K: 8, Stride: 8},           // ViT patch embedding
		{N: 1, H: 30, W: 30, InC: 3, OutC: 10, K: 8, Stride: 8},           // image not a multiple of the patch
		{N: 1, H: 130, W: 128, InC: 32, OutC: 5, K: 3, Stride: 1, Pad: 1}, // im2col in several chunks
	}
	for _, s := range cases {
		kk := s.K * s.K * s.InC
		src := randSlice(rng, s.N*s.H*s.W*s.InC)
		w := kernels.NewMatrix(s.OutC, kk, randSlice(rng, s.OutC*kk))
		bias := randSlice(rng, s.OutC)
		oh, ow := s.OutSize()
		for _, bs := range [][]float32{nil, bias} {
			want := refConv(src, s, w, bs)
			for _, th := range threadCounts {
				dst := make([]float32, s.N*oh*ow*s.OutC)
				New(th).Conv2D(dst, src, s, w, bs)
				checkClose(t, fmt.Sprintf("%+v bias%v t%d", s, bs != nil, th), dst, want)
			}
		}
	}
}

func TestAvgPool2D(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	for _, c := range []struct{ n, h, w, c, k int }{
		{1, 1, 1, 1, 1}, {1, 4, 4, 3, 2}, {2, 7, 5, 4, 2}, {1, 9, 9, 2, 3}, {3, 56, 56, 8, 2},
	} {
		src := randSlice(rng, c.n*c.h*c.w*c.c)
		oh, ow := c.h/c.k, c.w/c.k
		want := make([]float64, c.n*oh*ow*c.c)
		for n := range c.n {
			for y := range oh {
				for x := range ow {
					for ch := range c.c {
						var s float64
						for dy := range c.k {
							for dx := range c.k {
								s += float64(src[((n*c.h+y*c.k+dy)*c.w+x*c.k+dx)*c.c+ch])
							}
						}
						want[((n*oh+y)*ow+x)*c.c+ch] = s / float64(c.k*c.k)
					}
				}
			}
		}
		for _, th := range threadCounts {
			dst := make([]float32, len(want))
			New(th).AvgPool2D(dst, src, c.n, c.h, c.w, c.c, c.k)
			checkClose(t, fmt.Sprintf("%+v t%d", c, th), dst, want)
		}
	}
}
