package avx2

import (
	"math"
	"sync"

	"github.com/clipwasm/clipwasm/kernels"
)

// Attention computes softmax(q·kᵀ/√HeadDim [+ causal mask])·v per batch
// item and head, one pair per parallel task. Both products run on the
// float32 GEMM kernel: per head, q (scaled) is copied to a dense block, k
// and v are packed into 16-wide panels, the scores S = q·kᵀ go to a scratch
// block, each row becomes its softmax with the vectorised exp, and P·v is
// added into dst. The packing costs a few percent of the head's arithmetic;
// the portable version, a dot product per score, was 10× slower and took
// about a fifth of a ViT-B/32 layer's time at batch 1.
func (b *backend) Attention(dst, q, k, v []float32, s kernels.AttentionShape) {
	width := s.Heads * s.HeadDim
	if s.Causal && s.SeqQ != s.SeqK {
		panic("avx2: causal attention needs SeqQ == SeqK")
	}
	if s.Batch == 0 || s.SeqQ == 0 || width == 0 {
		return
	}
	if s.SeqK == 0 { // nothing to attend to: the empty sum
		clear(dst[:s.Batch*s.SeqQ*width])
		return
	}
	if len(dst) < s.Batch*s.SeqQ*width ||
		len(q) < (s.Batch*s.SeqQ-1)*s.LDQ+width ||
		len(k) < (s.Batch*s.SeqK-1)*s.LDKV+width ||
		len(v) < (s.Batch*s.SeqK-1)*s.LDKV+width {
		panic("avx2: Attention slice too short for its shape")
	}
	b.pool.Run(s.Batch*s.Heads, func(t int) {
		buf, _ := headBufs.Get().(*headScratch)
		if buf == nil {
			buf = new(headScratch)
		}
		attendHead(dst, q, k, v, s, t/s.Heads, t%s.Heads, buf)
		headBufs.Put(buf)
	})
}

// headScratch holds one head's operands: q scaled, k and v in panels, and
// the scores.
type headScratch struct{ q, k, v, s []float32 }

// headBufs recycles headScratch values between heads and calls.
var headBufs sync.Pool

// zeroed returns s resized to n zeros, reusing its storage if large enough.
func zeroed(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// attendHead handles batch item bi, head h.
func attendHead(dst, q, k, v []float32, s kernels.AttentionShape, bi, h int, buf *headScratch) {
	d, sq, sk := s.HeadDim, s.SeqQ, s.SeqK
	width := s.Heads * d
	skp := (sk + nr - 1) / nr * nr // keys padded to whole panels
	dp := (d + nr - 1) / nr * nr   // head dims padded to whole panels
	mq := (sq + mr - 1) / mr * mr  // rows the last sliver's tile may read
	scale := float32(1 / math.Sqrt(float64(d)))

	// qs [mq, d]: q with the 1/√d folded in; rows past sq stay zero.
	qs := zeroed(buf.q, mq*d)
	for i := range sq {
		src := q[(bi*sq+i)*s.LDQ+h*d:][:d]
		for c, x := range src {
			qs[i*d+c] = x * scale
		}
	}
	// kp: keys as B of q·kᵀ, panels of 16 keys, element (c, j) at c·16+j.
	kp := zeroed(buf.k, skp*d)
	for j := range sk {
		panel := kp[(j/nr)*d*nr+j%nr:]
		for c, x := range k[(bi*sk+j)*s.LDKV+h*d:][:d] {
			panel[c*nr] = x
		}
	}
	// vp: values as B of P·v, panels of 16 head dims, step j at j·16.
	vp := zeroed(buf.v, dp*skp)
	for j := range sk {
		row := v[(bi*sk+j)*s.LDKV+h*d:][:d]
		for p := 0; p < d; p += nr {
			copy(vp[(p/nr)*skp*nr+j*nr:][:nr], row[p:min(d, p+nr)])
		}
	}
	sc := zeroed(buf.s, mq*skp)
	buf.q, buf.k, buf.v, buf.s = qs, kp, vp, sc

	gemmBlock(sc, skp, skp, d, d, 0, sq, 0, skp/nr, 1, func(c *float32, ldc, i, rows, p, _, k0, k1 int) {
		sgemm(rows, k1-k0, &qs[i*d+k0], d, &kp[(p*d+k0)*nr], c, ldc)
	})
	negInf := float32(math.Inf(-1))
	for i := range sq {
		nk := sk
		if s.Causal {
			nk = i + 1
		}
		row := sc[i*skp : (i+1)*skp]
		// The vector max and exp run over whole vectors; the masked and
		// padding keys in them are set to −Inf first (exp gives ~1e-38,
		// below float32's resolution of the sum) and to zeros afterwards.
		n8 := (nk + 7) &^ 7
		for j := nk; j < n8; j++ {
			row[j] = negInf
		}
		mx := rowMax(&row[0], n8)
		inv := 1 / expSub(&row[0], n8, mx)
		clear(row[nk:])
		for j := range row[:nk] {
			row[j] *= inv
		}
	}
	out := dst[bi*sq*width+h*d:]
	for i := range sq {
		clear(out[i*width : i*width+d])
	}
	gemmBlock(out, width, d, skp, skp, 0, sq, 0, dp/nr, 1, func(c *float32, ldc, i, rows, p, _, k0, k1 int) {
		sgemm(rows, k1-k0, &sc[i*skp+k0], skp, &vp[(p*skp+k0)*nr], c, ldc)
	})
}
