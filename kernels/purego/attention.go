package purego

import (
	"math"

	"github.com/clipwasm/clipwasm/kernels"
)

// Attention computes softmax(q·kᵀ/√HeadDim [+ causal mask])·v for every
// (batch item, head) pair, one pair per parallel task.
func (b *backend) Attention(dst, q, k, v []float32, s kernels.AttentionShape) {
	width := s.Heads * s.HeadDim
	if s.Causal && s.SeqQ != s.SeqK {
		panic("purego: causal attention needs SeqQ == SeqK")
	}
	if s.Batch == 0 || s.SeqQ == 0 || width == 0 {
		return
	}
	if len(dst) < s.Batch*s.SeqQ*width ||
		len(q) < (s.Batch*s.SeqQ-1)*s.LDQ+width ||
		len(k) < (s.Batch*s.SeqK-1)*s.LDKV+width ||
		len(v) < (s.Batch*s.SeqK-1)*s.LDKV+width {
		panic("purego: Attention slice too short for its shape")
	}
	scale := float32(1 / math.Sqrt(float64(s.HeadDim)))
	pairWork := s.SeqQ * s.SeqK * s.HeadDim
	b.pool.parallelFor(s.Batch*s.Heads, max(1, (1<<16)/max(pairWork, 1)), func(lo, hi int) {
		scores := make([]float32, s.SeqK)
		for t := lo; t < hi; t++ {
			attendHead(dst, q, k, v, s, t/s.Heads, t%s.Heads, scale, scores)
		}
	})
}

// attendHead handles one batch item and head, a query row at a time: the
// scores of a row fit in a small buffer, and q, k, v and dst are each read
// along contiguous HeadDim-long runs, four keys or values at a time.
func attendHead(dst, q, k, v []float32, s kernels.AttentionShape, bi, h int, scale float32, scores []float32) {
	d := s.HeadDim
	width := s.Heads * d
	kAt := func(j int) []float32 { return k[(bi*s.SeqK+j)*s.LDKV+h*d:][:d] }
	vAt := func(j int) []float32 { return v[(bi*s.SeqK+j)*s.LDKV+h*d:][:d] }
	for i := range s.SeqQ {
		qi := q[(bi*s.SeqQ+i)*s.LDQ+h*d:][:d]
		nk := s.SeqK
		if s.Causal {
			nk = i + 1
		}
		sc := scores[:nk]
		j := 0
		for ; j+4 <= nk; j += 4 {
			sc[j], sc[j+1], sc[j+2], sc[j+3] = dot4(qi, kAt(j), kAt(j+1), kAt(j+2), kAt(j+3))
		}
		for ; j < nk; j++ {
			sc[j] = dot(qi, kAt(j))
		}
		maxv := float32(math.Inf(-1))
		for j := range sc {
			sc[j] *= scale
			maxv = max(maxv, sc[j])
		}
		var sum float32
		for j, x := range sc {
			e := expf(x - maxv)
			sc[j] = e
			sum += e
		}
		out := dst[(bi*s.SeqQ+i)*width+h*d:][:d]
		clear(out)
		j = 0
		for ; j+4 <= nk; j += 4 {
			axpy4(out, vAt(j), vAt(j+1), vAt(j+2), vAt(j+3), sc[j], sc[j+1], sc[j+2], sc[j+3])
		}
		for ; j < nk; j++ {
			axpy(out, vAt(j), sc[j])
		}
		inv := 1 / sum
		for c := range out {
			out[c] *= inv
		}
	}
}

// dot returns Σ a[i]·b[i] with four partial sums, which breaks the add
// dependency chain so the CPU can overlap the multiplies.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// dot4 returns the dot products of q with four keys at once, so each
// element of q is loaded once per four products.
func dot4(q, k0, k1, k2, k3 []float32) (s0, s1, s2, s3 float32) {
	n := len(q)
	k0, k1, k2, k3 = k0[:n], k1[:n], k2[:n], k3[:n]
	for i, x := range q {
		s0 += x * k0[i]
		s1 += x * k1[i]
		s2 += x * k2[i]
		s3 += x * k3[i]
	}
	return
}

// axpy4 computes y += a0·x0 + a1·x1 + a2·x2 + a3·x3, one load and store of
// y per four value rows.
func axpy4(y, x0, x1, x2, x3 []float32, a0, a1, a2, a3 float32) {
	n := len(y)
	x0, x1, x2, x3 = x0[:n], x1[:n], x2[:n], x3[:n]
	for i := range y {
		y[i] += a0*x0[i] + a1*x1[i] + a2*x2[i] + a3*x3[i]
	}
}

// axpy computes y += alpha·x.
func axpy(y, x []float32, alpha float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += alpha * x[i]
	}
}
