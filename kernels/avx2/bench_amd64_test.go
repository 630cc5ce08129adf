package avx2

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/purego"
)

// benchShapes are the GEMMs of ViT-B/32 (50 tokens per image, at batch 1
// and 8) and of the text tower over 80 prompts of 77 tokens.
var benchShapes = []struct {
	name    string
	m, n, k int
}{
	{"vit_b1_qkv", 50, 2304, 768},
	{"vit_b1_proj", 50, 768, 768},
	{"vit_b1_fc1", 50, 3072, 768},
	{"vit_b1_fc2", 50, 768, 3072},
	{"vit_b8_qkv", 400, 2304, 768},
	{"vit_b8_proj", 400, 768, 768},
	{"vit_b8_fc1", 400, 3072, 768},
	{"vit_b8_fc2", 400, 768, 3072},
	{"text80_qkv", 80 * 77, 1536, 512},
	{"text80_fc1", 80 * 77, 2048, 512},
	{"text80_fc2", 80 * 77, 512, 2048},
}

// linearBackends are the backends BenchmarkLinear compares: this one on
// its AVX-512 kernels (skipped on CPUs without), on its AVX2 kernels, and
// the portable one.
var linearBackends = []struct {
	name string
	make func(threads int) (kernels.Backend, error)
}{
	{"avx512", NewAVX512},
	{"avx2", NewAVX2},
	{"purego", func(threads int) (kernels.Backend, error) { return purego.New(threads), nil }},
}

// BenchmarkLinear times Linear per shape, weight scheme and backend; run it
// with -cpu 1,2 to get one and two threads. It reports GFLOP/s counting
// 2·m·n·k per call, whatever the arithmetic, over wall time and, as
// cpu-GFLOP/s, over the process's CPU time (on Linux): the rate per busy
// core, which contention from other processes disturbs far less.
func BenchmarkLinear(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range benchShapes {
		x := randSlice(rng, s.m*s.k)
		wd := randSlice(rng, s.n*s.k)
		bias := randSlice(rng, s.n)
		dst := make([]float32, s.m*s.n)
		q4, err := kernels.QuantizeQ4(s.n, s.k, wd)
		if err != nil {
			b.Fatal(err)
		}
		weights := []*kernels.Matrix{kernels.NewMatrix(s.n, s.k, wd), kernels.QuantizeInt8(s.n, s.k, wd), q4}
		for _, w := range weights {
			for _, backend := range linearBackends {
				b.Run(fmt.Sprintf("%s/%s/%s", s.name, w.Scheme, backend.name), func(b *testing.B) {
					be, err := backend.make(0)
					if err != nil {
						b.Skipf("skipping: %v", err)
					}
					w := *w // each backend its own Prepared
					w.Prepared = nil
					be.Linear(dst, x, s.m, &w, bias) // packs outside the timing
					cpu0 := processCPU()
					for b.Loop() {
						be.Linear(dst, x, s.m, &w, bias)
					}
					flops := 2 * float64(s.m*s.n*s.k) * float64(b.N)
					b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
					if cpu := processCPU() - cpu0; cpu > 0 {
						b.ReportMetric(flops/cpu.Seconds()/1e9, "cpu-GFLOP/s")
					}
				})
			}
		}
	}
}

// BenchmarkOps times the non-GEMM ops of a ViT-B/32 layer at batch 1, the
// case where they weigh most against the GEMMs, on both backends.
func BenchmarkOps(b *testing.B) {
	const tokens, width, hidden = 50, 768, 3072
	rng := rand.New(rand.NewPCG(2, 2))
	qkv := randSlice(rng, tokens*3*width)
	h := randSlice(rng, tokens*hidden)
	x := randSlice(rng, tokens*width)
	gamma, beta := randSlice(rng, width), randSlice(rng, width)
	out := make([]float32, tokens*hidden)
	att := kernels.AttentionShape{Batch: 1, SeqQ: tokens, SeqK: tokens, Heads: 12, HeadDim: 64, LDQ: 3 * width, LDKV: 3 * width}
	ops := []struct {
		name string
		run  func(be kernels.Backend)
	}{
		{"attention", func(be kernels.Backend) { be.Attention(out, qkv, qkv[width:], qkv[2*width:], att) }},
		{"layernorm", func(be kernels.Backend) { be.LayerNorm(out, x, tokens, width, gamma, beta, 1e-5) }},
		// The activations run on a copy so every call sees the same input.
		{"quickgelu", func(be kernels.Backend) { copy(out, h); be.Activate(out, kernels.QuickGELU) }},
		{"gelu", func(be kernels.Backend) { copy(out, h); be.Activate(out, kernels.GELU) }},
	}
	for _, op := range ops {
		for _, backend := range []string{"avx2", "purego"} {
			b.Run(op.name+"/"+backend, func(b *testing.B) {
				var be kernels.Backend
				if backend == "purego" {
					be = purego.New(0)
				} else {
					be = newTest(b, 0)
				}
				for b.Loop() {
					op.run(be)
				}
			})
		}
	}
}
