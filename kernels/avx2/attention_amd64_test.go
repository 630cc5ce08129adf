package avx2

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/purego"
)

// TestAttention compares against purego on separate and fused (column
// views of one qkv projection) inputs, causal and not, with head sizes
// and sequence lengths around the 6×16 tile, and the CLIP shapes.
func TestAttention(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	ref := purego.New(1)
	cases := []struct {
		batch, seqQ, seqK, heads, dim int
		causal, fused                 bool
	}{
		{1, 1, 1, 1, 1, false, false},
		{1, 1, 1, 1, 1, true, true},
		{2, 3, 5, 1, 7, false, false},
		{1, 5, 5, 2, 3, true, false},
		{3, 7, 7, 4, 8, true, true},
		{2, 4, 9, 3, 5, false, true},
		{1, 17, 33, 2, 17, false, false},
		{2, 13, 13, 3, 40, true, true},
		{2, 50, 50, 12, 64, false, true},
		{2, 77, 77, 8, 64, true, true},
	}
	for _, c := range cases {
		width := c.heads * c.dim
		s := kernels.AttentionShape{Batch: c.batch, SeqQ: c.seqQ, SeqK: c.seqK, Heads: c.heads, HeadDim: c.dim,
			LDQ: width, LDKV: width, Causal: c.causal}
		var q, k, v []float32
		if c.fused {
			rows := c.batch * max(c.seqQ, c.seqK)
			qkv := randSlice(rng, rows*3*width)
			q, k, v = qkv, qkv[width:], qkv[2*width:]
			s.LDQ, s.LDKV = 3*width, 3*width
		} else {
			q = randSlice(rng, c.batch*c.seqQ*width)
			k = randSlice(rng, c.batch*c.seqK*width)
			v = randSlice(rng, c.batch*c.seqK*width)
		}
		want := make([]float32, c.batch*c.seqQ*width)
		ref.Attention(want, q, k, v, s)
		for _, th := range []int{1, 2} {
			dst := randSlice(rng, len(want)) // stale values must be overwritten
			newTest(t, th).Attention(dst, q, k, v, s)
			checkClose(t, fmt.Sprintf("%+v t%d", c, th), dst, want, 1e-5)
		}
	}
}
