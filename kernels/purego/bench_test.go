package purego

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/clipwasm/clipwasm/kernels"
)

// benchThreads are the thread counts the benchmarks compare.
var benchThreads = []int{1, 2}

// BenchmarkLinear times the GEMM shapes of the CLIP towers and reports
// GFLOP/s (2·m·n·k per call).
func BenchmarkLinear(b *testing.B) {
	shapes := []struct {
		name    string
		m, n, k int
	}{
		{"vit_b1_qkv", 50, 2304, 768},
		{"vit_b8_qkv", 400, 2304, 768},
		{"vit_b8_proj", 400, 768, 768},
		{"vit_b8_fc1", 400, 3072, 768},
		{"vit_b8_fc2", 400, 768, 3072},
		{"text80_qkv", 77 * 80, 1536, 512},
		{"text80_fc2", 77 * 80, 512, 2048},
		{"rn50_1x1", 56 * 56, 256, 64},
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range shapes {
		x := randSlice(rng, s.m*s.k)
		w := kernels.NewMatrix(s.n, s.k, randSlice(rng, s.n*s.k))
		bias := randSlice(rng, s.n)
		dst := make([]float32, s.m*s.n)
		for _, th := range benchThreads {
			b.Run(fmt.Sprintf("%s/t%d", s.name, th), func(b *testing.B) {
				be := New(th)
				be.Linear(dst, x, s.m, w, bias) // packs w outside the timing
				for b.Loop() {
					be.Linear(dst, x, s.m, w, bias)
				}
				b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkAttention times ViT-B/32 self-attention at batch 8.
func BenchmarkAttention(b *testing.B) {
	s := kernels.AttentionShape{Batch: 8, SeqQ: 50, SeqK: 50, Heads: 12, HeadDim: 64, LDQ: 3 * 768, LDKV: 3 * 768}
	rng := rand.New(rand.NewPCG(2, 2))
	qkv := randSlice(rng, s.Batch*s.SeqQ*3*768)
	dst := make([]float32, s.Batch*s.SeqQ*768)
	flops := 4 * float64(s.Batch*s.Heads*s.SeqQ*s.SeqK*s.HeadDim)
	for _, th := range benchThreads {
		b.Run(fmt.Sprintf("t%d", th), func(b *testing.B) {
			be := New(th)
			for b.Loop() {
				be.Attention(dst, qkv, qkv[768:], qkv[2*768:], s)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkConv3x3 times a ResNet-50 layer1 3×3 convolution, 56×56×64 → 64.
func BenchmarkConv3x3(b *testing.B) {
	s := kernels.ConvShape{N: 1, H: 56, W: 56, InC: 64, OutC: 64, K: 3, Stride: 1, Pad: 1}
	rng := rand.New(rand.NewPCG(3, 3))
	src := randSlice(rng, s.H*s.W*s.InC)
	w := kernels.NewMatrix(s.OutC, 9*s.InC, randSlice(rng, s.OutC*9*s.InC))
	dst := make([]float32, s.H*s.W*s.OutC)
	flops := 2 * float64(s.H*s.W*s.OutC*9*s.InC)
	for _, th := range benchThreads {
		b.Run(fmt.Sprintf("t%d", th), func(b *testing.B) {
			be := New(th)
			for b.Loop() {
				be.Conv2D(dst, src, s, w, nil)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
