package kernels

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// The q4 format is fixed (see SchemeQ4): a block of 32 weights stores one
// scale s and codes q in 0..15 that dequantize to s·(q−8). QuantizeQ4 picks
// ggml's q4_0 scale, peak/−8, which represents the block's largest value
// exactly but spends half of the 16 levels' range on values that rarely
// occur. The functions here choose the scale that minimises the block's
// squared error instead (as llama.cpp's make_qx_quants does for its newer
// formats), and let callers that compute their own codes (error-
// compensating quantizers) pack them into a Matrix.

// q4ScaleSteps is how many candidate scales Q4Scale tries on each side of
// ggml's: inverse scales −(8 + step·0.1)/peak for step in ±q4ScaleSteps.
const q4ScaleSteps = 6

// Q4Code returns the code in 0..15 whose value s·(code−8) is nearest to v.
func Q4Code(v, s float32) uint8 {
	if s == 0 {
		return 8
	}
	return uint8(q4Level(v*(1/s)) + 8)
}

// q4Level rounds x to the nearest level in −8..7 (halves up). It is the one
// rounding of this file, so that a scale is judged by the codes it gets.
func q4Level(x float32) float32 {
	// Plain comparisons: the min and max builtins order NaNs and signed
	// zeros, which costs a third of the search's time.
	if x > 7 {
		x = 7
	} else if x < -8 {
		x = -8
	}
	// Truncation rounds down here: x+8.5 ≥ 0.5.
	return float32(int32(x+8.5)) - 8
}

// Q4Scale returns the scale for one q4 block of values, one that stores it
// with less squared error than ggml's peak/−8 where it can find one: for
// each of a range of inverse scales around −8/peak it rounds the block to
// levels, fits the least-squares scale of those levels, and keeps the
// best fit; that scale, after round (the stored precision; nil keeps
// float32), is returned if the block stored with it and the nearest codes
// beats ggml's scale.
func Q4Scale(blk []float32, round func(float32) float32) float32 {
	if round == nil {
		round = func(s float32) float32 { return s }
	}
	var peak float32
	for _, v := range blk {
		if abs32(v) > abs32(peak) {
			peak = v
		}
	}
	if peak == 0 {
		return 0
	}
	// For levels l, the best scale is Σlv/Σl² and it leaves an error of
	// Σv² − (Σlv)²/Σl²: the best levels maximise (Σlv)²/Σl².
	var fit, fitScore float32
	for step := -q4ScaleSteps; step <= q4ScaleSteps; step++ {
		inv := -(8 + 0.1*float32(step)) / peak
		var sumLV, sumL2 float32
		for _, v := range blk {
			l := q4Level(inv * v)
			sumLV += l * v
			sumL2 += l * l
		}
		if sumL2 > 0 && sumLV*sumLV > fitScore*sumL2 {
			fit, fitScore = sumLV/sumL2, sumLV*sumLV/sumL2
		}
	}
	ggml := round(peak / -8)
	if s := round(fit); s != 0 && q4BlockError(blk, s) < q4BlockError(blk, ggml) {
		return s
	}
	return ggml
}

// q4BlockError is the squared error of blk stored with scale s and the
// nearest codes.
func q4BlockError(blk []float32, s float32) float32 {
	inv := 1 / s
	var e float32
	for _, v := range blk {
		d := v - s*q4Level(v*inv)
		e += d * d
	}
	return e
}

// QuantizeQ4Search is QuantizeQ4 with each block's scale chosen by
// Q4Scale, for scales that will be stored after round (nil: float32).
func QuantizeQ4Search(rows, cols int, w []float32, round func(float32) float32) (*Matrix, error) {
	if cols%Q4Block != 0 {
		return nil, fmt.Errorf("kernels: q4 needs columns divisible by %d, got %d", Q4Block, cols)
	}
	codes := make([]uint8, rows*cols)
	scales := make([]float32, rows*cols/Q4Block)
	// Blocks are independent: split them over the cores.
	parallelFor(len(scales), func(lo, hi int) {
		for b := lo; b < hi; b++ {
			blk := w[b*Q4Block : (b+1)*Q4Block]
			s := Q4Scale(blk, round)
			scales[b] = s
			for j, v := range blk {
				codes[b*Q4Block+j] = Q4Code(v, s)
			}
		}
	})
	return NewQ4(rows, cols, codes, scales)
}

// NewQ4 packs codes (one per weight, 0..15, row-major [rows, cols]) and
// one scale per block of 32 into a q4 Matrix.
func NewQ4(rows, cols int, codes []uint8, scales []float32) (*Matrix, error) {
	if cols%Q4Block != 0 || len(codes) != rows*cols || len(scales) != rows*cols/Q4Block {
		return nil, fmt.Errorf("kernels: q4 [%d, %d] from %d codes and %d scales", rows, cols, len(codes), len(scales))
	}
	m := &Matrix{Rows: rows, Cols: cols, Scheme: SchemeQ4, Q4: make([]byte, len(codes)/2), Scales: scales}
	const half = Q4Block / 2
	for b := range scales {
		c, out := codes[b*Q4Block:(b+1)*Q4Block], m.Q4[b*half:(b+1)*half]
		for j := range out {
			if c[j] > 15 || c[j+half] > 15 {
				return nil, fmt.Errorf("kernels: q4 code above 15 in block %d", b)
			}
			out[j] = c[j] | c[j+half]<<4
		}
	}
	return m, nil
}

func abs32(v float32) float32 { return float32(math.Abs(float64(v))) }

// parallelFor runs f over [0, n) split into one contiguous range per core.
func parallelFor(n int, f func(lo, hi int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { f(w*n/workers, (w+1)*n/workers) })
	}
	wg.Wait()
}
