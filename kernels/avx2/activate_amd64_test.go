package avx2

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/clipwasm/clipwasm/kernels"
)

// TestActivate checks every activation (QuickGELU is this backend's own)
// against float64, each value relative to its own magnitude, over the range
// where exp overflows or underflows, and on a dense sweep.
func TestActivate(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	refs := map[kernels.Activation]func(float64) float64{
		kernels.QuickGELU: func(x float64) float64 { return x / (1 + math.Exp(-1.702*x)) },
		kernels.GELU:      func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) },
		kernels.ReLU:      func(x float64) float64 { return max(x, 0) },
	}
	for act, ref := range refs {
		for _, n := range []int{0, 1, 7, 8, 17, activateChunk + 9, 100_000} {
			x := randSlice(rng, n)
			for i := range x {
				x[i] *= 8
			}
			special := []float32{0, -100, 100, -60, 60, 1e-30, -1e-30, float32(math.Inf(1)), 51.3, -51.3}
			copy(x, special)
			if n == 100_000 {
				// A dense sweep through the branch points of erf (|x| = √2
				// and 2√2) and the range where exp under- and overflows.
				for i := range x {
					x[i] = -100 + 200*float32(i)/float32(n)
				}
			}
			for _, th := range []int{1, 2} {
				got := append([]float32(nil), x...)
				newTest(t, th).Activate(got, act)
				for i, v := range x {
					want := ref(float64(v))
					if math.IsInf(float64(v), 1) {
						if got[i] != v {
							t.Fatalf("%v(+Inf) = %v", act, got[i])
						}
						continue
					}
					if d := math.Abs(float64(got[i]) - want); !(d <= 2e-6*max(1e-3, math.Abs(want))) {
						t.Fatalf("%v n%d t%d: f(%v) = %v, want %v", act, n, th, v, got[i], want)
					}
				}
			}
		}
	}
}
