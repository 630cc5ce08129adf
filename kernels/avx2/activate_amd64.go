package avx2

import (
	"math"

	"github.com/clipwasm/clipwasm/kernels"
)

// activateChunk is the fewest floats worth a task of their own: each costs
// about a nanosecond, so smaller tasks would mostly pay for the hand-off.
const activateChunk = 1 << 14

// Activate applies act to x in place. QuickGELU, the MLP activation of
// OpenAI's CLIP, runs on a vectorised exp: the portable one costs about
// 10 ns per element, which at batch 1 took as long as a fifth of the
// layer's GEMMs. GELU and ReLU are left to purego.
func (b *backend) Activate(x []float32, act kernels.Activation) {
	if act != kernels.QuickGELU {
		b.Backend.Activate(x, act)
		return
	}
	b.pool.parallel((len(x)+activateChunk-1)/activateChunk, func(t int) {
		c := x[t*activateChunk : min(len(x), (t+1)*activateChunk)]
		n8 := len(c) &^ 7
		if n8 > 0 {
			quickGELU(&c[0], n8)
		}
		for i, v := range c[n8:] {
			c[n8+i] = v / (1 + float32(math.Exp(float64(-1.702*v))))
		}
	})
}
