//go:build js && wasm

package wasmsimd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/clipwasm/clipwasm/kernels"
)

// vitLinears are the GEMMs of a ViT-B/32 image tower block at batch 1
// (50 tokens, width 768): fused QKV, attention output, MLP up and down.
var vitLinears = []struct {
	name    string
	m, n, k int
}{
	{"qkv_50x2304x768", 50, 2304, 768},
	{"out_50x768x768", 50, 768, 768},
	{"fc1_50x3072x768", 50, 3072, 768},
	{"fc2_50x768x3072", 50, 768, 3072},
}

// benchSets returns the sets to compare that passed the self-test, fastest
// first, ending with plain Go.
func benchSets(b *testing.B) []string {
	var out []string
	for _, s := range []string{SetRelaxed, SetSIMD128, SetGo} {
		if err := SelfTest()[s]; err != nil {
			b.Logf("set %s not benchmarked: %v", s, err)
			continue
		}
		out = append(out, s)
	}
	return out
}

// runBest runs f b.N times and reports, besides the mean, the fastest
// single call: on a shared machine the mean follows the load of other
// processes, and the fastest call is the better estimate of what the
// kernel itself costs.
func runBest(b *testing.B, f func()) time.Duration {
	best := time.Duration(math.MaxInt64)
	b.ResetTimer()
	for range b.N {
		t := time.Now()
		f()
		best = min(best, time.Since(t))
	}
	b.ReportMetric(float64(best.Nanoseconds()), "best-ns/op")
	return best
}

// runFlops is runBest for a call of ops floating-point operations (a
// multiply-add counts 2, also for the int8 GEMMs' GOP/s), reported as
// GFLOP/s over the whole run and for the fastest call.
func runFlops(b *testing.B, ops float64, f func()) {
	best := runBest(b, f)
	b.ReportMetric(ops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	b.ReportMetric(ops/best.Seconds()/1e9, "best-GFLOP/s")
}

// BenchmarkLinear times Linear end to end (for int8 and q4: quantizing the
// activations, the integer GEMM and the scaling) on the ViT-B/32 shapes,
// per kernel set and weight scheme. Plain Go runs f32 weights only: its
// quantized Linear is being reworked in package purego.
func BenchmarkLinear(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 1))
	for _, set := range benchSets(b) {
		be, err := NewSet(set)
		if err != nil {
			b.Fatal(err)
		}
		for _, scheme := range []kernels.Scheme{kernels.SchemeF32, kernels.SchemeInt8, kernels.SchemeQ4} {
			if set == SetGo && scheme != kernels.SchemeF32 {
				continue
			}
			for _, s := range vitLinears {
				b.Run(fmt.Sprintf("%s/%s/%s", set, scheme, s.name), func(b *testing.B) {
					wf := randFloats(rng, s.n*s.k)
					w := kernels.NewMatrix(s.n, s.k, wf)
					switch scheme {
					case kernels.SchemeInt8:
						w = kernels.QuantizeInt8(s.n, s.k, wf)
					case kernels.SchemeQ4:
						w, _ = kernels.QuantizeQ4(s.n, s.k, wf)
					}
					x, bias, dst := randFloats(rng, s.m*s.k), randFloats(rng, s.n), make([]float32, s.m*s.n)
					be.Linear(dst, x, s.m, w, bias) // prepare outside the timing
					runFlops(b, 2*float64(s.m*s.n*s.k), func() { be.Linear(dst, x, s.m, w, bias) })
				})
			}
		}
	}
}

// BenchmarkGEMMKernel times the bare GEMM kernels on the MLP-up shape,
// without Linear's activation quantization: the kernels' own throughput.
func BenchmarkGEMMKernel(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 2))
	const m, n, k = 50, 3072, 768
	x, w, dst := randFloats(rng, m*k), randFloats(rng, n*k), make([]float32, m*n)
	xi, wi := randInt8s(rng, m*k), randInt8s(rng, n*k)
	xu := randU7s(rng, m*k)
	sx, sw, zx, wsum := randFloats(rng, m), randFloats(rng, n), make([]int32, m), refRowSums(wi, k, n, k)
	run := func(name string, set string, f func()) {
		if SelfTest()[set] != nil {
			return
		}
		b.Run(name, func(b *testing.B) { runFlops(b, 2*m*n*k, f) })
	}
	run("f32_gemm", SetSIMD128, func() { gemmF32(false, dst, n, x, k, w, k, nil, m, n, k) })
	run("f32_gemm_relaxed", SetRelaxed, func() { gemmF32(true, dst, n, x, k, w, k, nil, m, n, k) })
	run("i8_gemm", SetSIMD128, func() { gemmI8(dst, n, xi, k, sx, wi, k, sw, nil, m, n, k) })
	run("i8_gemm_relaxed", SetRelaxed, func() { gemmU7(dst, n, xu, k, sx, zx, wi, k, sw, wsum, nil, m, n, k) })
}

// BenchmarkKernelCall times a kernel call that does almost nothing (ReLU
// of 4 floats): the cost of crossing from Go through the JS trampoline
// into the kernel instance and back. Calls are timed 1000 at a time, so
// the fastest batch is above the browser clock's resolution.
func BenchmarkKernelCall(b *testing.B) {
	if SelfTest()[SetSIMD128] != nil {
		b.Skip("simd128 set not available")
	}
	x := []float32{1, -1, 2, -2}
	best := runBest(b, func() {
		for range 1000 {
			reluInPlace(x)
		}
	})
	b.ReportMetric(float64(best.Nanoseconds())/1000, "best-ns/call")
}

// BenchmarkAttention times the attention of one ViT-B/32 image (50 tokens,
// 12 heads of 64) and of one CLIP text (77 tokens, causal, 8 heads of 64),
// q, k and v read from a fused QKV buffer.
func BenchmarkAttention(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, set := range benchSets(b) {
		be, _ := NewSet(set)
		for _, s := range []kernels.AttentionShape{
			{Batch: 1, SeqQ: 50, SeqK: 50, Heads: 12, HeadDim: 64},
			{Batch: 1, SeqQ: 77, SeqK: 77, Heads: 8, HeadDim: 64, Causal: true},
		} {
			width := s.Heads * s.HeadDim
			s.LDQ, s.LDKV = 3*width, 3*width
			qkv := randFloats(rng, s.SeqQ*3*width)
			dst := make([]float32, s.SeqQ*width)
			b.Run(fmt.Sprintf("%s/seq%d_heads%d", set, s.SeqQ, s.Heads), func(b *testing.B) {
				runBest(b, func() { be.Attention(dst, qkv, qkv[width:], qkv[2*width:], s) })
			})
		}
	}
}

// BenchmarkRowOps times the ops between the GEMMs of a ViT-B/32 block:
// LayerNorm over [50, 768], GELU and QuickGELU over [50, 3072], the
// residual Add over [50, 768].
func BenchmarkRowOps(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	x, h0, h := randFloats(rng, 50*768), randFloats(rng, 50*3072), make([]float32, 50*3072)
	gamma, beta, dst := randFloats(rng, 768), randFloats(rng, 768), make([]float32, 50*768)
	for _, set := range benchSets(b) {
		be, _ := NewSet(set)
		b.Run(set+"/layernorm_50x768", func(b *testing.B) {
			runBest(b, func() { be.LayerNorm(dst, x, 50, 768, gamma, beta, 1e-5) })
		})
		for _, act := range []kernels.Activation{kernels.GELU, kernels.QuickGELU} {
			b.Run(fmt.Sprintf("%s/%s_50x3072", set, act), func(b *testing.B) {
				// Fresh inputs each call: repeated application would drift
				// into subnormals, which x86 computes slowly. The copy is
				// timed too (about 3% of GELU's time).
				runBest(b, func() {
					copy(h, h0)
					be.Activate(h, act)
				})
			})
		}
		// Add takes a few µs, below the browser clock's resolution: mean only.
		b.Run(set+"/add_50x768", func(b *testing.B) {
			for range b.N {
				be.Add(dst, x)
			}
		})
	}
}
