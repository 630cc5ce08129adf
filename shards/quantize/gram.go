package quantize

import (
	"github.com/clipwasm/clipwasm/kernels"
)

// gram accumulates the block-diagonal part of XᵀX for the inputs X
// [rows, cols] of one matrix: for each run of block columns, the
// [n, n] Gram matrix of those columns (n = block, less for a last, shorter
// run). The off-diagonal blocks are dropped: they would cost cols² per
// matrix (ViT-L/14's 4096-wide c_proj alone: 134 MB) and cols³ to
// factorise, and what GPTQ gains from the inputs' correlations is mostly
// within a block (the fixture ViT at q4, lowest image / text cosine with
// the full Hessian 0.9990 / 0.9823, blocks of 128 0.9988 / 0.9815, of 32
// 0.9983 / 0.9727).
type gram struct {
	cols, block int
	rows        int       // input rows accumulated
	h           []float64 // the blocks in order, each row-major [n, n]
}

func newGram(cols, block int) *gram {
	g := &gram{cols: cols, block: block}
	n := 0
	for c := 0; c < cols; c += block {
		b := min(block, cols-c)
		n += b * b
	}
	g.h = make([]float64, n)
	return g
}

// blockAt returns the Gram block of the columns [c, c+n).
func (g *gram) blockAt(c int) (h []float64, n int) {
	n = min(g.block, g.cols-c)
	off := c / g.block * g.block * g.block // full blocks before c
	return g.h[off : off+n*n], n
}

// add accumulates the m rows of x [m, cols]: for each column block, the
// product Xbᵀ·Xb of its [m, n] slice, computed as a Linear on backend b
// (its fastest kernel, in float32) and summed in float64.
func (g *gram) add(b kernels.Backend, x []float32, m int) {
	g.rows += m
	xt := make([]float32, g.block*m)
	prod := make([]float32, g.block*g.block)
	for c := 0; c < g.cols; c += g.block {
		h, n := g.blockAt(c)
		for r := 0; r < m; r++ {
			for i, v := range x[r*g.cols+c : r*g.cols+c+n] {
				xt[i*m+r] = v
			}
		}
		// Linear computes dst = x·wᵀ: with x = w = Xbᵀ [n, m], Xbᵀ·Xb.
		t := kernels.NewMatrix(n, m, xt[:n*m])
		b.Linear(prod[:n*n], xt[:n*m], n, t, nil)
		for i, v := range prod[:n*n] {
			h[i] += float64(v)
		}
	}
}

// im2col returns the input rows a convolution of shape s multiplies by its
// weight [OutC, K·K·InC] (columns in (kh, kw, c) order, zero padding) for
// image i of src, taking every stride-th output position in row-major
// order, and how many rows that is.
func im2col(src []float32, s kernels.ConvShape, i, stride int) ([]float32, int) {
	oh, ow := s.OutSize()
	k := s.K * s.K * s.InC
	n := (oh*ow + stride - 1) / stride
	out := make([]float32, n*k)
	img := src[i*s.H*s.W*s.InC : (i+1)*s.H*s.W*s.InC]
	for r, p := 0, 0; p < oh*ow; r, p = r+1, p+stride {
		oy, ox := p/ow, p%ow
		row := out[r*k : (r+1)*k]
		for kh := 0; kh < s.K; kh++ {
			iy := oy*s.Stride + kh - s.Pad
			if iy < 0 || iy >= s.H {
				continue
			}
			for kw := 0; kw < s.K; kw++ {
				ix := ox*s.Stride + kw - s.Pad
				if ix < 0 || ix >= s.W {
					continue
				}
				copy(row[(kh*s.K+kw)*s.InC:(kh*s.K+kw+1)*s.InC], img[(iy*s.W+ix)*s.InC:])
			}
		}
	}
	return out, n
}
