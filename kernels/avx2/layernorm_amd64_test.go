package avx2

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/clipwasm/clipwasm/kernels/purego"
)

// TestLayerNorm compares against purego, out of place and in place, on
// rows with a large mean (which a one-pass variance would get wrong), at
// widths handled here and one (n%8 != 0) left to purego.
func TestLayerNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	ref := purego.New(1)
	for _, c := range []struct{ m, n int }{{0, 8}, {1, 8}, {3, 16}, {1, 5}, {77, 512}, {50, 768}, {400, 768}, {2, 1024}} {
		x := randSlice(rng, c.m*c.n)
		for i := range x {
			x[i] = x[i]*3 + 1000
		}
		gamma, beta := randSlice(rng, c.n), randSlice(rng, c.n)
		const eps = 1e-5
		want := make([]float32, len(x))
		ref.LayerNorm(want, x, c.m, c.n, gamma, beta, eps)
		for _, th := range []int{1, 2} {
			dst := make([]float32, len(x))
			newTest(t, th).LayerNorm(dst, x, c.m, c.n, gamma, beta, eps)
			checkClose(t, fmt.Sprintf("m%d n%d t%d", c.m, c.n, th), dst, want, 1e-5)
			inPlace := append([]float32(nil), x...)
			newTest(t, th).LayerNorm(inPlace, inPlace, c.m, c.n, gamma, beta, eps)
			checkClose(t, fmt.Sprintf("in place m%d n%d t%d", c.m, c.n, th), inPlace, want, 1e-5)
		}
	}
}
