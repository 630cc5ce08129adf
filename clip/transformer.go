package clip

import (
	"fmt"

	"github.com/clipwasm/clipwasm/kernels"
)

// transformer is CLIP's stack of pre-norm residual attention blocks, shared
// by the ViT image tower and the text tower.
type transformer struct {
	width, heads, mlpWidth int
	blocks                 []block
}

// block is one ResidualAttentionBlock.
type block struct {
	ln1, ln2 layerNorm
	inProj   linear // [3W, W]: q, k and v rows, in that order
	outProj  linear // [W, W]
	fc, proj linear // [mlp, W] and [W, mlp]
}

// scratch holds the buffers a forward pass reuses across blocks, and a
// model across passes.
type scratch struct {
	h, qkv, attn, hidden []float32
}

// fit sizes the buffers for rows rows of a transformer, reallocating only
// those too small.
func (s *scratch) fit(rows, width, mlpWidth int) *scratch {
	size := func(buf *[]float32, n int) {
		if cap(*buf) < n {
			*buf = make([]float32, n)
		}
		*buf = (*buf)[:n]
	}
	size(&s.h, rows*width)
	size(&s.qkv, rows*3*width)
	size(&s.attn, rows*width)
	size(&s.hidden, rows*mlpWidth)
	return s
}

// forward runs every block over x [batch·seq, width] in place, tracing each
// block's output as prefix+"block{i}".
func (t *transformer) forward(p *pass, x []float32, batch, seq int, causal bool, prefix string) {
	s := p.scratch.fit(batch*seq, t.width, t.mlpWidth)
	for i := range t.blocks {
		t.blocks[i].forward(p, s, x, batch, seq, t.heads, causal)
		p.emit(fmt.Sprintf("%sblock%d", prefix, i), x, seq, t.width)
	}
}

// forward is x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)).
func (blk *block) forward(p *pass, s *scratch, x []float32, batch, seq, heads int, causal bool) {
	copy(s.h, x)
	p.norm(s.h, blk.ln1)
	p.b.Add(x, blk.attention(p, s, batch, seq, heads, causal))
	copy(s.h, x)
	p.norm(s.h, blk.ln2)
	p.b.Add(x, blk.mlp(p, s))
}

// attention is multi-head self-attention over s.h, the normed input.
func (blk *block) attention(p *pass, s *scratch, batch, seq, heads int, causal bool) []float32 {
	rows, w := batch*seq, len(blk.ln1.g)
	p.linear(s.qkv, s.h, rows, blk.inProj) // [rows, 3W]
	p.b.Attention(s.attn, s.qkv, s.qkv[w:], s.qkv[2*w:], kernels.AttentionShape{
		Batch: batch, SeqQ: seq, SeqK: seq, Heads: heads, HeadDim: w / heads,
		LDQ: 3 * w, LDKV: 3 * w, Causal: causal,
	})
	p.linear(s.h, s.attn, rows, blk.outProj)
	return s.h
}

// mlp is c_proj(act(c_fc(x))) over s.h.
func (blk *block) mlp(p *pass, s *scratch) []float32 {
	rows := len(s.h) / len(blk.ln2.g)
	p.linear(s.hidden, s.h, rows, blk.fc)
	p.b.Activate(s.hidden, p.act)
	p.linear(s.h, s.hidden, rows, blk.proj)
	return s.h
}
