package avx2

import (
	"sync"

	"github.com/clipwasm/clipwasm/kernels"
)

// im2colBudget caps the im2col buffer at 4M floats (16 MiB): larger images
// are convolved in chunks of output pixels.
const im2colBudget = 1 << 22

// colBufs recycles im2col buffers (*[]float32).
var colBufs sync.Pool

// Conv2D convolves src [N,H,W,InC] with w [OutC, K·K·InC] into
// dst [N,OH,OW,OutC] as im2col followed by Linear, so every weight scheme
// runs on this backend's GEMM kernels.
func (b *backend) Conv2D(dst, src []float32, s kernels.ConvShape, w *kernels.Matrix, bias []float32) {
	oh, ow := s.OutSize()
	kk := s.K * s.K * s.InC
	if w.Rows != s.OutC || w.Cols != kk {
		panic("avx2: Conv2D weight shape does not match ConvShape")
	}
	if len(src) < s.N*s.H*s.W*s.InC || len(dst) < s.N*oh*ow*s.OutC {
		panic("avx2: Conv2D slice too short for its shape")
	}
	rows := s.N * oh * ow
	if rows <= 0 || s.OutC == 0 {
		return
	}
	if s.K == 1 && s.Stride == 1 && s.Pad == 0 {
		// Channels-last src already is the [pixels, InC] im2col matrix.
		b.Linear(dst, src, rows, w, bias)
		return
	}
	chunk := max(1, min(rows, im2colBudget/kk))
	colp, _ := colBufs.Get().(*[]float32)
	if colp == nil || cap(*colp) < chunk*kk {
		colp = new([]float32)
		*colp = make([]float32, chunk*kk)
	}
	defer colBufs.Put(colp)
	col := (*colp)[:chunk*kk]
	const rowsPerTask = 16
	for r0 := 0; r0 < rows; r0 += chunk {
		n := min(chunk, rows-r0)
		b.pool.parallel((n+rowsPerTask-1)/rowsPerTask, func(t int) {
			for r := t * rowsPerTask; r < min(n, (t+1)*rowsPerTask); r++ {
				patch(col[r*kk:(r+1)*kk], src, s, oh, ow, r0+r)
			}
		})
		b.Linear(dst[r0*s.OutC:(r0+n)*s.OutC], col, n, w, bias)
	}
}

// patch writes the K×K×InC input patch of output pixel r, in (kh, kw, c)
// order, into row, with zeros where it hangs over the padding. Each kernel
// row's in-bounds pixels are one contiguous run of src.
func patch(row, src []float32, s kernels.ConvShape, oh, ow, r int) {
	img, pix := r/(oh*ow), r%(oh*ow)
	y0, x0 := pix/ow*s.Stride-s.Pad, pix%ow*s.Stride-s.Pad
	lo, hi := max(0, -x0), min(s.K, s.W-x0) // kw range inside the image
	run := s.K * s.InC
	for kh := range s.K {
		out := row[kh*run : (kh+1)*run]
		y := y0 + kh
		if y < 0 || y >= s.H || lo >= hi {
			clear(out)
			continue
		}
		at := ((img*s.H+y)*s.W + x0) * s.InC
		clear(out[:lo*s.InC])
		copy(out[lo*s.InC:hi*s.InC], src[at+lo*s.InC:at+hi*s.InC])
		clear(out[hi*s.InC:])
	}
}
