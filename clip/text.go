package clip

import (
	"fmt"
	"slices"

	"github.com/clipwasm/clipwasm/kernels"
)

// textTransformer is CLIP's text tower.
type textTransformer struct {
	vocab, context, width int
	eosTokenID            int
	tokenEmbedding        rowTable  // [vocab, W], possibly quantized
	positional            []float32 // [context, W]
	transformer           transformer
	lnFinal               layerNorm
	proj                  *kernels.Matrix // [E, W]: text_projection transposed
}

// pooledIndex returns the row encode_text pools for one row of ids.
func (t *textTransformer) pooledIndex(ids []int) int {
	best := 0
	for i, id := range ids {
		if t.eosTokenID != 0 {
			if id == t.eosTokenID {
				return i
			}
		} else if id > ids[best] {
			best = i
		}
	}
	return best
}

// pooledRows checks token rows (each at most context long, as
// clip.tokenize makes them) and returns the position each one pools.
func (t *textTransformer) pooledRows(tokens [][]int) ([]int, error) {
	pooled := make([]int, len(tokens))
	for i, ids := range tokens {
		if len(ids) == 0 || len(ids) > t.context {
			return nil, fmt.Errorf("clip: token row %d has %d ids, want 1..%d", i, len(ids), t.context)
		}
		for j, id := range ids {
			if id < 0 || id >= t.vocab {
				return nil, fmt.Errorf("clip: token row %d position %d: id %d outside the vocabulary [0, %d)", i, j, id, t.vocab)
			}
		}
		pooled[i] = t.pooledIndex(ids)
	}
	return pooled, nil
}

// encode maps checked token rows, with the positions they pool, to
// embeddings [n,E].
//
// The causal mask means no position attends to a later one, so the pooled
// row depends only on the rows up to it: the batch runs over the first
// max(pooled)+1 positions only. Same numbers, a fraction of the work.
func (t *textTransformer) encode(p *pass, tokens [][]int, pooled []int) []float32 {
	n, w := len(tokens), t.width
	seq := 1
	for _, at := range pooled {
		seq = max(seq, at+1)
	}

	// x = token_embedding[ids] + positional_embedding   [n, seq, W]; rows past
	// a short input's end hold token 0, as clip.tokenize's zero padding.
	x := make([]float32, n*seq*w)
	for i, ids := range tokens {
		for j := 0; j < seq; j++ {
			id := 0
			if j < len(ids) {
				id = ids[j]
			}
			row := x[(i*seq+j)*w : (i*seq+j+1)*w]
			t.tokenEmbedding.Row(id, row)
			p.b.Add(row, t.positional[j*w:(j+1)*w])
		}
	}
	p.emit("text0_embed", x, seq, w)
	t.transformer.forward(p, x, n, seq, true, "text0_")

	// ln_final is per row, so normalising only the pooled rows is exact.
	rows := make([]float32, n*w) // [n, W]
	for i := range tokens {
		copy(rows[i*w:(i+1)*w], x[(i*seq+pooled[i])*w:])
	}
	p.norm(rows, t.lnFinal)
	p.emit("text0_ln_final_pooled", rows, w)

	out := make([]float32, n*t.proj.Rows) // rows @ text_projection   [n, E]
	p.b.Linear(out, rows, n, t.proj, nil)
	p.emit("text0_final", out, t.proj.Rows)
	return out
}

// Text batches are run in groups of rows of similar length (see
// lengthGroups): a group runs up to its own longest row, so one long
// prompt no longer makes every short one run to its length.
const (
	maxGroupRows = 64   // bounds a group's activations (64·77·4W floats at most)
	groupSlack   = 1.25 // a group's longest row is at most this × its shortest, plus groupPad
	groupPad     = 4
)

// lengthOrder returns row indices ordered by pooled position, stable.
func lengthOrder(pooled []int) []int {
	order := make([]int, len(pooled))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return pooled[a] - pooled[b] })
	return order
}

// lengthGroups orders rows by pooled position and cuts that order into
// groups of at most maxGroupRows whose lengths differ little. It returns
// the groups as lists of row indices.
func lengthGroups(pooled []int) [][]int {
	order := lengthOrder(pooled)
	var groups [][]int
	for start := 0; start < len(order); {
		shortest := float64(pooled[order[start]] + 1)
		end := start + 1
		for end < len(order) && end-start < maxGroupRows && float64(pooled[order[end]]+1) <= groupSlack*shortest+groupPad {
			end++
		}
		groups = append(groups, order[start:end])
		start = end
	}
	return groups
}

// rowTable is a matrix read only by row, stored as consecutive blocks of
// rows (one block unless the weights split it; see RowBlocks).
type rowTable []*kernels.Matrix

// Row writes row r, dequantized, to dst.
func (t rowTable) Row(r int, dst []float32) {
	for _, b := range t {
		if r < b.Rows {
			b.Row(r, dst)
			return
		}
		r -= b.Rows
	}
	panic("clip: row past the end of the table")
}
