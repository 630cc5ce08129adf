// Package actquant is a portable model of the browser backend's int8 GEMM
// (package kernels/wasmsimd): activations quantized per token (row) at run
// time, multiplied with int8 weights in int32, then scaled back. It
// computes the same integers and the same float32 roundings, in the same
// order, as the WebAssembly kernels quant_i8, quant_u7, q4_to_i8,
// i8_rowsums, i8_gemm and i8_gemm_relaxed, so that the fidelity of a
// bundle in the browser can be measured natively in go test (the wasmsimd
// tests check the kernels against this package bit for bit).
//
// Every float32 operation below is written as its own rounded step
// (explicit float32 conversions), so no compiler may fuse a multiply and an
// add: the wasm kernels round after each one.
package actquant

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/clipwasm/clipwasm/kernels"
)

// Mode is how activations are quantized.
type Mode int

const (
	// Int8 is symmetric 8-bit per row: q = round(x·127/max|x|), the
	// SIMD128 set's quant_i8 + i8_gemm.
	Int8 Mode = iota
	// U7 is 7-bit unsigned with a zero point per row, q in 0..127, the
	// relaxed set's quant_u7 + i8_gemm_relaxed, which the browser uses
	// wherever relaxed SIMD works.
	U7
)

// String names the mode.
func (m Mode) String() string {
	switch m {
	case Int8:
		return "int8"
	case U7:
		return "u7"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// roundEven rounds to the nearest integer, ties to even, like wasm's
// f32.nearest.
func roundEven(v float32) int32 { return int32(math.RoundToEven(float64(v))) }

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// QuantRowsI8 quantizes each row of x [m, k] (row stride ldx) symmetrically
// into dst [m, k] (stride ldd): sx[i] = max|row|/127, q = round(v·127/max|row|).
func QuantRowsI8(dst []int8, ldd int, sx []float32, x []float32, ldx, m, k int) {
	for i := range m {
		row := x[i*ldx : i*ldx+k]
		var amax float32
		for _, v := range row {
			amax = max(amax, abs32(v))
		}
		var inv float32
		if amax > 0 {
			inv = 127 / amax
		}
		sx[i] = amax / 127
		q := dst[i*ldd : i*ldd+k]
		for p, v := range row {
			q[p] = int8(roundEven(float32(v * inv)))
		}
	}
}

// QuantRowsU7 quantizes each row of x [m, k] (stride ldx) to 7 bits with a
// zero point into dst (stride ldd): over the row's range [lo, hi] (which
// includes 0), sx = (hi−lo)/127, zx = round(−lo·127/(hi−lo)) and
// q = clamp(zx + round(v·127/(hi−lo)), 0, 127).
func QuantRowsU7(dst []uint8, ldd int, sx []float32, zx []int32, x []float32, ldx, m, k int) {
	for i := range m {
		row := x[i*ldx : i*ldx+k]
		var lo, hi float32
		for _, v := range row {
			lo, hi = min(lo, v), max(hi, v)
		}
		t := float32(hi - lo)
		var inv float32
		zx[i] = 0
		if t > 0 {
			inv = 127 / t
			zx[i] = roundEven(float32(-lo * inv))
		}
		sx[i] = t / 127
		q := dst[i*ldd : i*ldd+k]
		for p, v := range row {
			q[p] = uint8(min(127, max(0, zx[i]+roundEven(float32(v*inv)))))
		}
	}
}

// Q4ToI8 converts q4 weights [rows, cols] (see kernels.SchemeQ4) to int8
// with one scale per row, as the browser does once per matrix: the row's
// largest block scale s maps to ±127/8, rowScale = 8·s/127, and each code
// (q−8) of a block with scale b becomes round((q−8)·b·127/(8·s)).
func Q4ToI8(q8 []int8, rowScale []float32, q4 []byte, scales []float32, rows, cols int) {
	nb := cols / kernels.Q4Block
	for r := range rows {
		var smax float32
		for _, s := range scales[r*nb : (r+1)*nb] {
			smax = max(smax, abs32(s))
		}
		var inv float32
		if smax > 0 {
			inv = 127 / float32(smax*8)
		}
		rowScale[r] = float32(smax*8) / 127
		for b := range nb {
			f := float32(scales[r*nb+b] * inv)
			blk := q4[(r*nb+b)*16 : (r*nb+b+1)*16]
			out := q8[r*cols+b*32:]
			for j, v := range blk {
				out[j] = int8(roundEven(float32(float32(int(v&15)-8) * f)))
				out[j+16] = int8(roundEven(float32(float32(int(v>>4)-8) * f)))
			}
		}
	}
}

// RowSums writes Σ_p w[j, p] for each of the n rows of w [n, k] (stride
// ldw): the zero-point correction of the U7 GEMM.
func RowSums(dst []int32, w []int8, ldw, n, k int) {
	for j := range n {
		var s int32
		for _, v := range w[j*ldw : j*ldw+k] {
			s += int32(v)
		}
		dst[j] = s
	}
}

// epilogue turns an int32 accumulator into the output, one rounding per
// operation in the kernels' order: (acc·sw)·sx + bias.
func epilogue(acc int32, sw, sx float32, bias []float32, j int) float32 {
	y := float32(float32(acc) * sw)
	y = float32(y * sx)
	if bias != nil {
		y = float32(y + bias[j])
	}
	return y
}

// dot is Σ x[p]·w[p] in int32, for int8 or 7-bit x.
func dot[T int8 | uint8](x []T, w []int8) int32 {
	w = w[:len(x)]
	var a0, a1, a2, a3 int32
	p := 0
	for ; p+4 <= len(x); p += 4 {
		a0 += int32(x[p]) * int32(w[p])
		a1 += int32(x[p+1]) * int32(w[p+1])
		a2 += int32(x[p+2]) * int32(w[p+2])
		a3 += int32(x[p+3]) * int32(w[p+3])
	}
	for ; p < len(x); p++ {
		a0 += int32(x[p]) * int32(w[p])
	}
	return a0 + a1 + a2 + a3
}

// GEMMI8 computes dst[i, j] (stride ldd) = (Σ x[i, p]·w[j, p])·sw[j]·sx[i]
// + bias[j] for int8 activations x [m, k] and int8 weights w [n, k]; bias
// may be nil. It is i8_gemm.
func GEMMI8(dst []float32, ldd int, x []int8, ldx int, sx []float32, w []int8, ldw int, sw, bias []float32, m, n, k int) {
	parallelRows(n, func(j0, j1 int) {
		for i := range m {
			xr := x[i*ldx : i*ldx+k]
			for j := j0; j < j1; j++ {
				dst[i*ldd+j] = epilogue(dot(xr, w[j*ldw:j*ldw+k]), sw[j], sx[i], bias, j)
			}
		}
	})
}

// GEMMU7 is GEMMI8 for 7-bit activations with zero points zx; wsum holds
// RowSums of w. It is i8_gemm_relaxed: the accumulator is
// Σ x·w − zx[i]·wsum[j].
func GEMMU7(dst []float32, ldd int, x []uint8, ldx int, sx []float32, zx []int32, w []int8, ldw int, sw []float32, wsum []int32, bias []float32, m, n, k int) {
	parallelRows(n, func(j0, j1 int) {
		for i := range m {
			xr := x[i*ldx : i*ldx+k]
			for j := j0; j < j1; j++ {
				acc := dot(xr, w[j*ldw:j*ldw+k]) - zx[i]*wsum[j]
				dst[i*ldd+j] = epilogue(acc, sw[j], sx[i], bias, j)
			}
		}
	})
}

// parallelRows splits [0, n) into one range per CPU and runs f on each.
func parallelRows(n int, f func(lo, hi int)) {
	parts := min(runtime.GOMAXPROCS(0), max(1, n/16))
	if parts <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := p*n/parts, (p+1)*n/parts
		wg.Go(func() { f(lo, hi) })
	}
	wg.Wait()
}

// Int8Weights returns the int8 form of a quantized matrix that the GEMMs
// take: Matrix.Q8 and its scales for int8, Q4ToI8's conversion for q4.
func Int8Weights(w *kernels.Matrix) (q8 []int8, scales []float32, err error) {
	if err := w.Validate(); err != nil {
		return nil, nil, err
	}
	switch w.Scheme {
	case kernels.SchemeInt8:
		return w.Q8, w.Scales, nil
	case kernels.SchemeQ4:
		q8, scales = make([]int8, w.Rows*w.Cols), make([]float32, w.Rows)
		Q4ToI8(q8, scales, w.Q4, w.Scales, w.Rows, w.Cols)
		return q8, scales, nil
	}
	return nil, nil, fmt.Errorf("actquant: %s matrix has no int8 form", w.Scheme)
}
