package purego

import (
	"sync"

	"github.com/clipwasm/clipwasm/kernels"
)

// Quantized weights (SchemeInt8, SchemeQ4) run through the same register
// tile as float32 ones: each task widens the slice of W it is about to use,
// kc columns of ncPanels panels at a time, into the packed float32 panel
// form, and the f32 micro-kernels consume it from cache.
//
// The trade-off: keeping a packed float32 copy of W (as the f32 path does)
// would cost 4 bytes per weight for the lifetime of the model, 4× the int8
// and 8× the q4 storage, which is the memory quantization exists to save.
// Widening per task costs only a scratch buffer of ncPanels·nr·kc floats
// (128 KiB) per running task. The price is time: every task widens its W
// block once, so W is widened once per block of quantRows rows of x. With
// quantRows = 256 that is about one widening per 256·2 flops per weight, a
// few percent of the GEMM for the ViT shapes.

// quantRows is the row extent of one quantized task: larger than mcRows so
// the widening of W is spread over more rows of x.
const quantRows = 256

// panelScratch recycles the per-task widening buffers (*[]float32).
var panelScratch sync.Pool

// linear computes dst = x·wᵀ + bias for any weight scheme; Linear and
// Conv2D both go through it.
func (b *backend) linear(dst, x []float32, m int, w *kernels.Matrix, bias []float32) {
	switch w.Scheme {
	case kernels.SchemeF32, "":
		b.gemm(dst, x, m, packed(w), bias)
	case kernels.SchemeInt8, kernels.SchemeQ4:
		b.gemmQuant(dst, x, m, w, bias)
	default:
		panic("purego: unknown weight scheme " + string(w.Scheme))
	}
}

// gemmQuant is gemm for a quantized w: tasks of quantRows rows × ncPanels
// panels, each widening its panels per k-block into a scratch buffer.
func (b *backend) gemmQuant(dst, x []float32, m int, w *kernels.Matrix, bias []float32) {
	n, k := w.Rows, w.Cols
	np := (n + nr - 1) / nr
	mt := (m + quantRows - 1) / quantRows
	nt := (np + ncPanels - 1) / ncPanels
	grain := max(1, (1<<16)/(min(m, quantRows)*min(n, ncPanels*nr)*max(k, 1)))
	b.pool.parallelFor(mt*nt, grain, func(lo, hi int) {
		buf := getPanelScratch(ncPanels * nr * min(k, kc))
		defer panelScratch.Put(&buf)
		for t := lo; t < hi; t++ {
			tj, ti := t/mt, t%mt
			i0, i1 := ti*quantRows, min(m, (ti+1)*quantRows)
			p0, p1 := tj*ncPanels, min(np, (tj+1)*ncPanels)
			quantTile(dst, x, w, bias, i0, i1, p0, p1, buf)
		}
	})
}

// quantTile computes rows [i0, i1) × panels [p0, p1) of dst, widening the
// panels' weights one k-block at a time into buf.
func quantTile(dst, x []float32, w *kernels.Matrix, bias []float32, i0, i1, p0, p1 int, buf []float32) {
	n, k := w.Rows, w.Cols
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
		kb := k1 - k0
		widenPanels(buf, w, c0, c1, k0, k1)
		for p := p0; p < p1; p++ {
			panel := buf[(p-p0)*kb*nr : (p-p0+1)*kb*nr]
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

// widenPanels writes rows [c0, c1) of w, columns [k0, k1), dequantized into
// buf in packed panel order: panel (c−c0)/nr at offset ((c−c0)/nr)·kb·nr,
// element (kk, j) at kk·nr+j. Rows past c1 in the last panel are zeroed so
// the micro-kernel can always read full panels.
func widenPanels(buf []float32, w *kernels.Matrix, c0, c1, k0, k1 int) {
	kb := k1 - k0
	np := (c1 - c0 + nr - 1) / nr
	buf = buf[:np*kb*nr]
	if (c1-c0)%nr != 0 {
		clear(buf[(np-1)*kb*nr:])
	}
	k := w.Cols
	for c := c0; c < c1; c++ {
		out := buf[((c-c0)/nr)*kb*nr+(c-c0)%nr:]
		switch w.Scheme {
		case kernels.SchemeInt8:
			s := w.Scales[c]
			for kk, q := range w.Q8[c*k+k0 : c*k+k1] {
				out[kk*nr] = s * float32(q)
			}
		case kernels.SchemeQ4:
			// k0 and k1 are multiples of Q4Block (kc is, and so are the
			// Cols of a q4 matrix), so the range covers whole blocks.
			for blk := (c*k + k0) / kernels.Q4Block; blk < (c*k+k1)/kernels.Q4Block; blk++ {
				s := w.Scales[blk]
				q := w.Q4[blk*kernels.Q4Block/2 : (blk+1)*kernels.Q4Block/2]
				o := out[(blk*kernels.Q4Block-c*k-k0)*nr:]
				for j, v := range q {
					o[j*nr] = s * float32(int(v&15)-8)
					o[(j+kernels.Q4Block/2)*nr] = s * float32(int(v>>4)-8)
				}
			}
		}
	}
}

// getPanelScratch returns a pooled buffer of at least n floats; widenPanels
// overwrites every element the kernels read.
func getPanelScratch(n int) []float32 {
	if p, ok := panelScratch.Get().(*[]float32); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]float32, n)
}
