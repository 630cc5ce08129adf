package avx2

import (
	"sync"

	"github.com/clipwasm/clipwasm/kernels"
)

// f32Panels is a float32 matrix packed for sgemm: ceil(rows/16) panels
// of cols×16 floats, element (kk, j) of panel p at p·cols·16 + kk·16 + j,
// zero past the last row.
type f32Panels struct {
	rows, cols int
	data       []float32
}

func (p *f32Panels) fits(w *kernels.Matrix) bool {
	return p.rows == w.Rows && p.cols == w.Cols && (w.Scheme == kernels.SchemeF32 || w.Scheme == "")
}

func packF32(w *kernels.Matrix) *f32Panels {
	n, k := w.Rows, w.Cols
	np := (n + nr - 1) / nr
	data := make([]float32, np*k*nr)
	for r := range n {
		panel := data[(r/nr)*k*nr:]
		for kk, v := range w.F32[r*k : r*k+k] {
			panel[kk*nr+r%nr] = v
		}
	}
	return &f32Panels{rows: n, cols: k, data: data}
}

// linearF32 is Linear for float32 weights. The kernel reads x in place;
// only a last sliver with fewer rows than its tile is copied, zero padded,
// so that the kernel does not read past x.
func (b *backend) linearF32(dst, x []float32, m int, w *kernels.Matrix, bias []float32) {
	n, k := w.Rows, w.Cols
	pw := prepared(w, packF32)
	// Only one sliver, the last, can hang over m, so one buffer serves.
	var tailOnce sync.Once
	var tail []float32
	b.gemm(dst, m, n, k, kcF32, tilePanels(b.f32Wide), bias, func(c *float32, ldc, i, rows, p, panels, k0, k1 int) {
		a := x[i*k:]
		if i+rows > m {
			tailOnce.Do(func() {
				tail = make([]float32, rows*k)
				copy(tail, x[i*k:m*k])
			})
			a = tail
		}
		bp := &pw.data[(p*k+k0)*nr]
		if panels == 2 {
			sgemm512(rows, k1-k0, &a[k0], k, bp, k*nr, c, ldc)
			return
		}
		sgemm(rows, k1-k0, &a[k0], k, bp, c, ldc)
	})
}
