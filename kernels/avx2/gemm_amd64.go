package avx2

import (
	"sync"

	"github.com/clipwasm/clipwasm/kernels"
)

// Register tile and cache blocking, shared by the float32 and integer GEMMs.
//
// The 6×16 tile keeps 12 YMM accumulators plus two B registers and the
// broadcast A value: all 16 YMM registers, and 12 independent FMA chains,
// more than the 2 FMA units × 4 cycles of latency need to stay busy.
const (
	mr = 6  // rows of x per micro-kernel call (4 or 5 for the last ones)
	nr = 16 // output columns per packed panel: two YMM registers

	// kcF32 bounds the k extent of one pass so that the 16×kc B sliver
	// (16 KiB) stays in the 32 KiB L1 while it meets every row sliver of
	// the task, next to the 6×kc A sliver being streamed from L2.
	kcF32 = 256
	// kcInt is the integer kernel's k extent per pass: a B sliver of 8 KiB,
	// and small enough that int32 sums cannot overflow: 512 products of
	// |a| ≤ 32767 and |w| ≤ 128 stay below 2³¹.
	kcInt = 512

	// mcRows and ncPanels size one parallel task: an A block of mcRows×kc
	// (120 KiB of float32 at kc=256) and ncPanels B slivers (128 KiB) both
	// fit the 512 KiB L2 of one core.
	mcRows   = 20 * mr
	ncPanels = 8
)

// tileFunc accumulates into the rows×(panels·nr) block of C at c (row
// stride ldc) the product of rows [i, i+rows) of A and panels [p,
// p+panels) of B over k in [k0, k1), rows being 4, 5 or 6 and panels 1 or
// the kernel set's tilePanels. Rows at or past m must read as zeros or be
// discarded; only the last sliver of A has any.
type tileFunc func(c *float32, ldc, i, rows, p, panels, k0, k1 int)

// maxTilePanels is the widest tile in panels: the AVX-512 kernels' 6×32.
const maxTilePanels = 2

// sliverRows returns the kernel rows for the next sliver when rem rows of a
// row block are left. Six, except near the end: the last 7–11 rows go as
// 4+3, 4+4, 4+5, 6+4 and 6+5, since tiles of 4 and 5 rows run at full
// speed where a 6-row tile over 1–3 rows wastes half or more of its work.
// Fewer than 4 rows run in a 4-row tile over padding.
func sliverRows(rem int) int {
	switch {
	case rem == mr || rem >= 10:
		return mr
	case rem >= 7:
		return 4
	}
	return max(4, rem)
}

// gemm computes dst[m, n] = bias + A·Bᵀ, with A and B known only to tile,
// in tasks of mcRows × ncPanels·nr spread over the pool, in tiles of up to
// tilePanels panels.
func (b *backend) gemm(dst []float32, m, n, k, kcb, tilePanels int, bias []float32, tile tileFunc) {
	np := (n + nr - 1) / nr
	mt := (m + mcRows - 1) / mcRows
	nt := (np + ncPanels - 1) / ncPanels
	b.pool.Run(mt*nt, func(t int) {
		// Consecutive tasks share a column block of B, so threads running
		// neighbouring tasks read the same panels from L3.
		tj, ti := t/mt, t%mt
		i0, i1 := ti*mcRows, min(m, (ti+1)*mcRows)
		p0, p1 := tj*ncPanels, min(np, (tj+1)*ncPanels)
		c0, c1 := p0*nr, min(n, p1*nr)
		for i := i0; i < i1; i++ {
			row := dst[i*n+c0 : i*n+c1]
			if bias != nil {
				copy(row, bias[c0:c1])
			} else {
				clear(row)
			}
		}
		gemmBlock(dst, n, n, k, kcb, i0, i1, p0, p1, tilePanels, tile)
	})
}

// gemmBlock adds A·Bᵀ to rows [i0, i1) and panels [p0, p1) of C (row
// stride ldc, n columns) on the calling goroutine, in tiles of tilePanels
// panels (one for the last if fewer are left). The k loop is outermost so
// that each B sliver, once loaded into L1, meets all the row slivers.
func gemmBlock(c []float32, ldc, n, k, kcb, i0, i1, p0, p1, tilePanels int, tile tileFunc) {
	var edge [mr * maxTilePanels * nr]float32
	for k0 := 0; k0 < k; k0 += kcb {
		k1 := min(k, k0+kcb)
		for p, panels := p0, 0; p < p1; p += panels {
			panels = tilePanels
			if p+panels > p1 {
				panels = 1
			}
			width := panels * nr
			cols := min(width, n-p*nr)
			for i, rows := i0, 0; i < i1; i += rows {
				rows = sliverRows(i1 - i)
				if i+rows <= i1 && cols == width {
					tile(&c[i*ldc+p*nr], ldc, i, rows, p, panels, k0, k1)
					continue
				}
				// A partial tile goes through a scratch tile, since the
				// kernel writes all of its rows×width outputs. Its outputs
				// are copied in and back rather than added, so that each
				// sees the kernel's arithmetic exactly as in a full tile
				// (the integer kernel's scaling FMA rounds once with C).
				clear(edge[:])
				valid := min(rows, i1-i)
				for r := range valid {
					copy(edge[r*width:][:cols], c[(i+r)*ldc+p*nr:])
				}
				tile(&edge[0], width, i, rows, p, panels, k0, k1)
				for r := range valid {
					copy(c[(i+r)*ldc+p*nr:][:cols], edge[r*width:])
				}
			}
		}
	}
}

// preparedForm is a backend-specific form of a Matrix cached in Prepared.
type preparedForm interface {
	// fits reports whether the form was made from a matrix of w's shape
	// and scheme.
	fits(w *kernels.Matrix) bool
}

// preparedMu guards Matrix.Prepared, a plain field that concurrent first
// calls on the same matrix would otherwise race on.
var preparedMu sync.Mutex

// prepared returns w's cached form of type T, making and caching it with
// build on first use. A Prepared value of another type or shape (another
// backend's) is left in place, at the cost of rebuilding on every call.
func prepared[T preparedForm](w *kernels.Matrix, build func(*kernels.Matrix) T) T {
	preparedMu.Lock()
	prep := w.Prepared
	preparedMu.Unlock()
	if p, ok := prep.(T); ok && p.fits(w) {
		return p
	}
	p := build(w)
	if prep != nil {
		return p
	}
	preparedMu.Lock()
	defer preparedMu.Unlock()
	if q, ok := w.Prepared.(T); ok && q.fits(w) {
		return q // another goroutine won the race; share its copy
	}
	if w.Prepared == nil {
		w.Prepared = p
	}
	return p
}
