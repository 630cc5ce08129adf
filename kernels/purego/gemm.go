package purego

import (
	"sync"

	"github.com/clipwasm/clipwasm/kernels"
)

// Register tile and cache blocking of the GEMM y = x·Wᵀ.
//
// W is packed once into panels of nr output columns, k-major inside a panel
// (element (kk, j) at kk*nr+j), so the micro-kernel streams one contiguous
// slice of W while holding an mr×nr block of dst in local variables.
const (
	mr = 4 // rows of x per micro-kernel call
	nr = 4 // columns of W per packed panel

	// kc bounds the k extent per pass so an nr×kc panel of W (kc*nr*4 bytes)
	// stays in L1 while it meets every row block of x.
	kc = 256
	// mcRows and ncPanels size one parallel task: mcRows rows of x
	// (mcRows*kc*4 bytes, in L2) against ncPanels panels of W.
	mcRows   = 64
	ncPanels = 32
)

// packedW is the panel form of a weight matrix, cached in Matrix.Prepared.
type packedW struct {
	rows, cols int
	data       []float32 // ceil(rows/nr) panels of cols*nr floats, zero padded
}

// preparedMu guards Matrix.Prepared, which is a plain field: without it, two
// goroutines making the first call on the same matrix would race on it.
var preparedMu sync.Mutex

// packed returns the panel form of w, packing and caching it on first use.
// A Prepared value owned by another backend is left alone (the matrix may be
// shared between backends), at the cost of packing on every call.
func packed(w *kernels.Matrix) *packedW {
	preparedMu.Lock()
	prep := w.Prepared
	preparedMu.Unlock()
	if p, ok := prep.(*packedW); ok && p.rows == w.Rows && p.cols == w.Cols {
		return p
	}
	p := packW(w)
	if prep != nil {
		return p
	}
	preparedMu.Lock()
	defer preparedMu.Unlock()
	if q, ok := w.Prepared.(*packedW); ok && q.rows == w.Rows && q.cols == w.Cols {
		return q // another goroutine won the race; share its copy
	}
	if w.Prepared == nil {
		w.Prepared = p
	}
	return p
}

// packW interleaves each group of nr rows of w column by column.
func packW(w *kernels.Matrix) *packedW {
	n, k := w.Rows, w.Cols
	np := (n + nr - 1) / nr
	data := make([]float32, np*k*nr)
	for r := range n {
		row := w.F32[r*k : r*k+k]
		panel := data[(r/nr)*k*nr:]
		j := r % nr
		for kk, v := range row {
			panel[kk*nr+j] = v
		}
	}
	return &packedW{rows: n, cols: k, data: data}
}

// Linear computes dst[m, w.Rows] = x[m, w.Cols]·wᵀ + bias.
func (b *backend) Linear(dst, x []float32, m int, w *kernels.Matrix, bias []float32) {
	n, k := w.Rows, w.Cols
	if len(x) < m*k || len(dst) < m*n || (bias != nil && len(bias) < n) {
		panic("purego: Linear slice too short for its shape")
	}
	if m == 0 || n == 0 {
		return
	}
	b.linear(dst, x, m, w, bias)
}

// gemm splits dst into mcRows×(ncPanels*nr) tiles and runs them in parallel.
func (b *backend) gemm(dst, x []float32, m int, pw *packedW, bias []float32) {
	n, k := pw.rows, pw.cols
	np := (n + nr - 1) / nr
	mt := (m + mcRows - 1) / mcRows
	nt := (np + ncPanels - 1) / ncPanels
	// One task of less than ~64k multiply-adds is not worth a hand-off.
	grain := max(1, (1<<16)/(min(m, mcRows)*min(n, ncPanels*nr)*max(k, 1)))
	b.pool.parallelFor(mt*nt, grain, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			// Consecutive tasks share a column block of W, so threads that
			// run neighbouring tasks reuse the same W panels from L3.
			tj, ti := t/mt, t%mt
			i0, i1 := ti*mcRows, min(m, (ti+1)*mcRows)
			p0, p1 := tj*ncPanels, min(np, (tj+1)*ncPanels)
			gemmTile(dst, x, n, k, pw.data, bias, i0, i1, p0, p1)
		}
	})
}

// gemmTile computes rows [i0, i1) × panels [p0, p1) of dst.
func gemmTile(dst, x []float32, n, k int, w, bias []float32, i0, i1, p0, p1 int) {
	c0, c1 := p0*nr, min(n, p1*nr)
	for i := i0; i < i1; i++ {
		row := dst[i*n+c0 : i*n+c1]
		if bias != nil {
			copy(row, bias[c0:c1])
		} else {
			clear(row)
		}
	}
	for k0 := 0; k0 < k; k0 += kc {
		k1 := min(k, k0+kc)
		for p := p0; p < p1; p++ {
			panel := w[p*k*nr+k0*nr : p*k*nr+k1*nr]
			col := p * nr
			cols := min(nr, n-col)
			i := i0
			for ; i+mr <= i1; i += mr {
				kernel4x4(dst[i*n+col:], n, cols,
					x[i*k+k0:i*k+k1], x[(i+1)*k+k0:(i+1)*k+k1],
					x[(i+2)*k+k0:(i+2)*k+k1], x[(i+3)*k+k0:(i+3)*k+k1], panel)
			}
			for ; i < i1; i++ {
				kernel1x4(dst[i*n+col:], cols, x[i*k+k0:i*k+k1], panel)
			}
		}
	}
}

// kernel4x4 adds the product of four rows of x (a0..a3, each kb long) and
// one packed panel (kb*nr) to a 4×cols block of c with row stride ldc.
//
// The accumulators live in an array rather than sixteen local variables:
// the Go compiler schedules the loop-carried adds last in the loop body, so
// sixteen scalar accumulators plus their products overflow the float
// registers of amd64 and spill on every iteration. Array slots are plain
// stack loads and stores that the CPU forwards cheaply, which measured about
// 1.5–2× faster on amd64 and no slower under wasm. Taking two k steps per
// update halves that load/store traffic (about 10% more).
func kernel4x4(c []float32, ldc, cols int, a0, a1, a2, a3, b []float32) {
	var acc [mr * nr]float32
	kb := len(a0)
	a1, a2, a3 = a1[:kb], a2[:kb], a3[:kb]
	b = b[:kb*nr]
	p := 0
	for ; p+2 <= kb; p += 2 {
		bb := b[p*nr : p*nr+2*nr : p*nr+2*nr]
		x0, x1, x2, x3 := a0[p], a1[p], a2[p], a3[p]
		y0, y1, y2, y3 := a0[p+1], a1[p+1], a2[p+1], a3[p+1]
		acc[0] += x0*bb[0] + y0*bb[4]
		acc[1] += x0*bb[1] + y0*bb[5]
		acc[2] += x0*bb[2] + y0*bb[6]
		acc[3] += x0*bb[3] + y0*bb[7]
		acc[4] += x1*bb[0] + y1*bb[4]
		acc[5] += x1*bb[1] + y1*bb[5]
		acc[6] += x1*bb[2] + y1*bb[6]
		acc[7] += x1*bb[3] + y1*bb[7]
		acc[8] += x2*bb[0] + y2*bb[4]
		acc[9] += x2*bb[1] + y2*bb[5]
		acc[10] += x2*bb[2] + y2*bb[6]
		acc[11] += x2*bb[3] + y2*bb[7]
		acc[12] += x3*bb[0] + y3*bb[4]
		acc[13] += x3*bb[1] + y3*bb[5]
		acc[14] += x3*bb[2] + y3*bb[6]
		acc[15] += x3*bb[3] + y3*bb[7]
	}
	if p < kb { // odd kb
		bb := b[p*nr : p*nr+nr : p*nr+nr]
		for r, x := range [mr]float32{a0[p], a1[p], a2[p], a3[p]} {
			for j := range nr {
				acc[r*nr+j] += x * bb[j]
			}
		}
	}
	for r := range mr {
		row := c[r*ldc : r*ldc+cols]
		for j := range row {
			row[j] += acc[r*nr+j]
		}
	}
}

// kernel1x4 is kernel4x4 for a single row, used for row tails.
func kernel1x4(c []float32, cols int, a, b []float32) {
	var c0, c1, c2, c3 float32
	b = b[:len(a)*nr]
	for p, x := range a {
		bb := b[p*nr : p*nr+nr : p*nr+nr]
		c0 += x * bb[0]
		c1 += x * bb[1]
		c2 += x * bb[2]
		c3 += x * bb[3]
	}
	acc := [nr]float32{c0, c1, c2, c3}
	row := c[:cols]
	for j := range row {
		row[j] += acc[j]
	}
}
