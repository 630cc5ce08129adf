// Package im2col runs a convolution as im2col + GEMM for the CPU backends
// whose GEMM serves every weight scheme (purego, avx2): each output pixel
// becomes a row of its (kh, kw, c) input patch, which matches the weight
// matrix's column order, and the backend's Linear does the rest.
package im2col

import (
	"sync"

	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/internal/workpool"
)

const (
	// budget caps the im2col buffer at 4M floats (16 MiB), so that a large
	// image is convolved in chunks of output pixels instead of
	// materialising the whole K²-times-larger matrix.
	budget = 1 << 22
	// grain is the fewest floats of patch rows worth handing to another
	// thread.
	grain = 1 << 14
)

// colBufs recycles im2col buffers (*[]float32): a ResNet forward runs
// dozens of convolutions with buffers of several MiB each, which would
// otherwise all be garbage.
var colBufs sync.Pool

// Linear is a backend's GEMM: dst[m, w.Rows] = x[m, w.Cols]·wᵀ + bias.
type Linear func(dst, x []float32, m int, w *kernels.Matrix, bias []float32)

// Conv2D convolves src [N,H,W,InC] with w [OutC, K·K·InC] into
// dst [N,OH,OW,OutC], building patch rows on pool and multiplying them with
// linear. Mismatched shapes panic with a message that starts with backend.
func Conv2D(backend string, pool *workpool.Pool, linear Linear, dst, src []float32, s kernels.ConvShape, w *kernels.Matrix, bias []float32) {
	oh, ow := s.OutSize()
	kk := s.K * s.K * s.InC
	if w.Rows != s.OutC || w.Cols != kk {
		panic(backend + ": Conv2D weight shape does not match ConvShape")
	}
	if len(src) < s.N*s.H*s.W*s.InC || len(dst) < s.N*oh*ow*s.OutC {
		panic(backend + ": Conv2D slice too short for its shape")
	}
	rows := s.N * oh * ow
	if rows <= 0 || s.OutC == 0 {
		return
	}
	if s.K == 1 && s.Stride == 1 && s.Pad == 0 {
		// Channels-last src already is the [pixels, InC] im2col matrix.
		linear(dst, src, rows, w, bias)
		return
	}
	chunk := max(1, min(rows, budget/kk))
	colp, _ := colBufs.Get().(*[]float32)
	if colp == nil || cap(*colp) < chunk*kk {
		colp = new([]float32)
		*colp = make([]float32, chunk*kk)
	}
	defer colBufs.Put(colp)
	// Stale contents are fine: Im2colRow writes every element.
	col := (*colp)[:chunk*kk]
	for r0 := 0; r0 < rows; r0 += chunk {
		r1 := min(rows, r0+chunk)
		pool.For(r1-r0, max(1, grain/kk), func(lo, hi int) {
			for r := lo; r < hi; r++ {
				s.Im2colRow(col[r*kk:(r+1)*kk], src, r0+r)
			}
		})
		linear(dst[r0*s.OutC:r1*s.OutC], col, r1-r0, w, bias)
	}
}
