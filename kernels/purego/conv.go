package purego

import (
	"sync"

	"github.com/clipwasm/clipwasm/kernels"
)

// im2colBudget caps the im2col buffer (in floats, 16 MiB) so that a large
// image is convolved in row chunks instead of materialising the whole
// K²-times-larger matrix.
const im2colBudget = 1 << 22

// colBufs recycles im2col buffers (*[]float32): a ResNet forward runs dozens
// of convolutions with buffers of several MiB each, which would otherwise
// all be garbage.
var colBufs sync.Pool

// Conv2D convolves src [N,H,W,InC] with w [OutC, K*K*InC] into
// dst [N,OH,OW,OutC] as im2col followed by the Linear GEMM: each output
// pixel becomes a row of (kh, kw, c) values, which matches w's column order.
func (b *backend) Conv2D(dst, src []float32, s kernels.ConvShape, w *kernels.Matrix, bias []float32) {
	oh, ow := s.OutSize()
	kk := s.K * s.K * s.InC
	if w.Rows != s.OutC || w.Cols != kk {
		panic("purego: Conv2D weight shape does not match ConvShape")
	}
	if len(src) < s.N*s.H*s.W*s.InC || len(dst) < s.N*oh*ow*s.OutC {
		panic("purego: Conv2D slice too short for its shape")
	}
	rows := s.N * oh * ow
	if rows == 0 || s.OutC == 0 {
		return
	}
	if s.K == 1 && s.Stride == 1 && s.Pad == 0 {
		// Channels-last src already is the [pixels, InC] im2col matrix.
		b.linear(dst, src, rows, w, bias)
		return
	}
	chunk := max(1, min(rows, im2colBudget/kk))
	col := getColBuf(chunk * kk)
	defer colBufs.Put(&col)
	for r0 := 0; r0 < rows; r0 += chunk {
		r1 := min(rows, r0+chunk)
		b.pool.parallelFor(r1-r0, max(1, elemGrain/kk), func(lo, hi int) {
			for r := lo; r < hi; r++ {
				s.Im2colRow(col[r*kk:(r+1)*kk], src, r0+r)
			}
		})
		b.linear(dst[r0*s.OutC:r1*s.OutC], col, r1-r0, w, bias)
	}
}

// getColBuf returns a pooled buffer of n floats. Its contents are stale;
// Im2colRow writes every element it hands to the GEMM.
func getColBuf(n int) []float32 {
	if p, ok := colBufs.Get().(*[]float32); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]float32, n)
}
