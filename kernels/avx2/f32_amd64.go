package avx2

import "github.com/clipwasm/clipwasm/kernels"

// f32Panels is a float32 matrix packed for sgemm6x16: ceil(rows/16) panels
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

// linearF32 is Linear for float32 weights. The kernel reads x in place; only
// a last sliver of fewer than mr rows is copied into a zero-padded buffer,
// since the kernel reads all six rows.
func (b *backend) linearF32(dst, x []float32, m int, w *kernels.Matrix, bias []float32) {
	n, k := w.Rows, w.Cols
	pw := prepared(w, packF32)
	mFull := m - m%mr
	var tail []float32
	if mFull < m && k > 0 {
		tail = make([]float32, mr*k)
		copy(tail, x[mFull*k:m*k])
	}
	b.gemm(dst, m, n, k, kcF32, bias, func(c *float32, ldc, i, p, k0, k1 int) {
		a := x[i*k:]
		if i >= mFull {
			a = tail
		}
		sgemm6x16(k1-k0, &a[k0], k, &pw.data[(p*k+k0)*nr], c, ldc)
	})
}
