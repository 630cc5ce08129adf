//go:build js && wasm

package wasmsimd

import (
	"math"
	"unsafe"
)

// The kernels, imported from the host under the module name "clipkernels"
// (glue.mjs forwards each to the kernel instance). Pointers travel as i32
// addresses in Go's linear memory; Go's heap does not move objects, and no
// Go code (so no stack growth) runs while a kernel does, so a pointer stays
// valid for the whole call. The kernels trust their arguments: call them
// only through the checked wrappers below.

//go:wasmimport clipkernels available
func kernelsAvailable() int32

//go:wasmimport clipkernels f32_gemm
//go:noescape
func f32GEMM(dst *float32, ldd int32, x *float32, ldx int32, w *float32, ldw int32, bias *float32, m, n, k int32)

//go:wasmimport clipkernels f32_gemm_relaxed
//go:noescape
func f32GEMMRelaxed(dst *float32, ldd int32, x *float32, ldx int32, w *float32, ldw int32, bias *float32, m, n, k int32)

//go:wasmimport clipkernels f32_gemm_nn
//go:noescape
func f32GEMMNN(dst *float32, ldd int32, x *float32, ldx int32, w *float32, ldw int32, m, n, k int32)

//go:wasmimport clipkernels quant_i8
//go:noescape
func quantI8(dst *int8, ldd int32, sx *float32, x *float32, ldx int32, m, k int32)

//go:wasmimport clipkernels quant_u7
//go:noescape
func quantU7(dst *uint8, ldd int32, sx *float32, zx *int32, x *float32, ldx int32, m, k int32)

//go:wasmimport clipkernels q4_to_i8
//go:noescape
func q4ToI8(dst *int8, rowScale *float32, q4 *byte, scales *float32, rows, cols int32)

//go:wasmimport clipkernels i8_dequant
//go:noescape
func i8Dequant(dst *float32, w *int8, scales *float32, rows, cols int32)

//go:wasmimport clipkernels i8_rowsums
//go:noescape
func i8RowSums(dst *int32, w *int8, ldw, n, k int32)

//go:wasmimport clipkernels i8_gemm
//go:noescape
func i8GEMM(dst *float32, ldd int32, x *int8, ldx int32, sx *float32, w *int8, ldw int32, sw *float32, bias *float32, m, n, k int32)

//go:wasmimport clipkernels i8_gemm_relaxed
//go:noescape
func i8GEMMRelaxed(dst *float32, ldd int32, x *uint8, ldx int32, sx *float32, zx *int32, w *int8, ldw int32, sw *float32, wsum *int32, bias *float32, m, n, k int32)

//go:wasmimport clipkernels layernorm
//go:noescape
func layerNormK(dst, x, gamma, beta *float32, m, n int32, eps float32)

//go:wasmimport clipkernels softmax_rows
//go:noescape
func softmaxRowsK(x *float32, ld, rows, n int32, scale float32, causal int32)

//go:wasmimport clipkernels gelu
//go:noescape
func geluK(x *float32, n int32)

//go:wasmimport clipkernels quickgelu
//go:noescape
func quickGELUK(x *float32, n int32)

//go:wasmimport clipkernels relu
//go:noescape
func reluK(x *float32, n int32)

//go:wasmimport clipkernels add
//go:noescape
func addK(dst, src *float32, n int32)

// Bits of kernelsAvailable: which kernel modules the host linked.
const (
	haveSIMD128 = 1
	haveRelaxed = 2
)

// span is the number of elements a rows×cols matrix with row stride ld
// occupies: the last row need not be followed by padding.
func span(rows, ld, cols int) int {
	if rows == 0 || cols == 0 {
		return 0
	}
	return (rows-1)*ld + cols
}

// check panics with a message naming the kernel when a slice is shorter
// than its shape needs or a dimension does not fit the kernels' i32
// arithmetic: a kernel trusts its pointers, so a wrong length here would
// otherwise read or scribble over unrelated Go memory.
func check(ok bool, kernel string) {
	if !ok {
		panic("wasmsimd: " + kernel + ": slice too short for its shape, or bad dimensions")
	}
}

// dims reports whether every value is non-negative and small enough that
// the kernels' byte offsets stay in i32 range.
func dims(v ...int) bool {
	for _, x := range v {
		if x < 0 || x > math.MaxInt32/4 {
			return false
		}
	}
	return true
}

// ptr returns the address of s's first element (nil for a nil slice).
func ptr[T any](s []T) *T { return unsafe.SliceData(s) }

// gemmF32 computes dst[i·ldd+j] = Σ_p x[i·ldx+p]·w[j·ldw+p] + bias[j] for
// i < m, j < n, p < k; bias may be nil. relaxed selects the fused
// multiply-add kernel.
func gemmF32(relaxed bool, dst []float32, ldd int, x []float32, ldx int, w []float32, ldw int, bias []float32, m, n, k int) {
	check(dims(ldd, ldx, ldw, m, n, k) && ldd >= n && ldx >= k && ldw >= k &&
		len(dst) >= span(m, ldd, n) && len(x) >= span(m, ldx, k) && len(w) >= span(n, ldw, k) &&
		(bias == nil || len(bias) >= n), "f32_gemm")
	if m == 0 || n == 0 {
		return
	}
	if relaxed {
		f32GEMMRelaxed(ptr(dst), int32(ldd), ptr(x), int32(ldx), ptr(w), int32(ldw), ptr(bias), int32(m), int32(n), int32(k))
		return
	}
	f32GEMM(ptr(dst), int32(ldd), ptr(x), int32(ldx), ptr(w), int32(ldw), ptr(bias), int32(m), int32(n), int32(k))
}

// gemmF32NN computes dst[i·ldd+j] = Σ_p x[i·ldx+p]·w[p·ldw+j] for i < m,
// j < n, p < k: W not transposed.
func gemmF32NN(dst []float32, ldd int, x []float32, ldx int, w []float32, ldw int, m, n, k int) {
	check(dims(ldd, ldx, ldw, m, n, k) && ldd >= n && ldx >= k && ldw >= n &&
		len(dst) >= span(m, ldd, n) && len(x) >= span(m, ldx, k) && len(w) >= span(k, ldw, n), "f32_gemm_nn")
	if m == 0 || n == 0 {
		return
	}
	f32GEMMNN(ptr(dst), int32(ldd), ptr(x), int32(ldx), ptr(w), int32(ldw), int32(m), int32(n), int32(k))
}

// quantRowsI8 quantizes each row of x [m, k] (stride ldx) symmetrically to
// int8 into dst (stride ldd) with its scale in sx[i]; see quant_i8 in
// simd128.wat.
func quantRowsI8(dst []int8, ldd int, sx []float32, x []float32, ldx, m, k int) {
	check(dims(ldd, ldx, m, k) && ldd >= k && ldx >= k && len(dst) >= span(m, ldd, k) &&
		len(sx) >= m && len(x) >= span(m, ldx, k), "quant_i8")
	if m == 0 {
		return
	}
	quantI8(ptr(dst), int32(ldd), ptr(sx), ptr(x), int32(ldx), int32(m), int32(k))
}

// quantRowsU7 quantizes each row of x [m, k] (stride ldx) to 7-bit
// unsigned values with a zero point into dst (stride ldd), with scale sx[i]
// and zero point zx[i]; see quant_u7 in simd128.wat.
func quantRowsU7(dst []uint8, ldd int, sx []float32, zx []int32, x []float32, ldx, m, k int) {
	check(dims(ldd, ldx, m, k) && ldd >= k && ldx >= k && len(dst) >= span(m, ldd, k) &&
		len(sx) >= m && len(zx) >= m && len(x) >= span(m, ldx, k), "quant_u7")
	if m == 0 {
		return
	}
	quantU7(ptr(dst), int32(ldd), ptr(sx), ptr(zx), ptr(x), int32(ldx), int32(m), int32(k))
}

// q4Rows converts q4 weights [rows, cols] to int8 with one scale per row;
// see q4_to_i8 in simd128.wat.
func q4Rows(dst []int8, rowScale []float32, q4 []byte, scales []float32, rows, cols int) {
	check(dims(rows, cols) && cols%32 == 0 && len(dst) >= rows*cols && len(rowScale) >= rows &&
		len(q4) >= rows*cols/2 && len(scales) >= rows*cols/32, "q4_to_i8")
	if rows == 0 || cols == 0 {
		return
	}
	q4ToI8(ptr(dst), ptr(rowScale), ptr(q4), ptr(scales), int32(rows), int32(cols))
}

// dequantRows writes the int8 weights w [rows, cols] times their row
// scales to dst [rows, cols] as float32, both dense; see i8_dequant in
// simd128.wat.
func dequantRows(dst []float32, w []int8, scales []float32, rows, cols int) {
	check(dims(rows, cols, rows*cols) && len(dst) >= rows*cols && len(w) >= rows*cols && len(scales) >= rows, "i8_dequant")
	if rows == 0 || cols == 0 {
		return
	}
	i8Dequant(ptr(dst), ptr(w), ptr(scales), int32(rows), int32(cols))
}

// rowSums writes Σ_p w[j·ldw+p] for p < k to dst[j], j < n.
func rowSums(dst []int32, w []int8, ldw, n, k int) {
	check(dims(ldw, n, k) && ldw >= k && len(dst) >= n && len(w) >= span(n, ldw, k), "i8_rowsums")
	if n == 0 {
		return
	}
	i8RowSums(ptr(dst), ptr(w), int32(ldw), int32(n), int32(k))
}

// gemmI8 computes dst[i·ldd+j] = float32(Σ_p x[i·ldx+p]·w[j·ldw+p])·sw[j]·sx[i] + bias[j]
// over int8 x and w; bias may be nil.
func gemmI8(dst []float32, ldd int, x []int8, ldx int, sx []float32, w []int8, ldw int, sw, bias []float32, m, n, k int) {
	check(dims(ldd, ldx, ldw, m, n, k) && ldd >= n && ldx >= k && ldw >= k &&
		len(dst) >= span(m, ldd, n) && len(x) >= span(m, ldx, k) && len(sx) >= m &&
		len(w) >= span(n, ldw, k) && len(sw) >= n && (bias == nil || len(bias) >= n), "i8_gemm")
	if m == 0 || n == 0 {
		return
	}
	i8GEMM(ptr(dst), int32(ldd), ptr(x), int32(ldx), ptr(sx), ptr(w), int32(ldw), ptr(sw), ptr(bias), int32(m), int32(n), int32(k))
}

// gemmU7 computes dst[i·ldd+j] = float32(Σ_p x[i·ldx+p]·w[j·ldw+p] − zx[i]·wsum[j])·sw[j]·sx[i] + bias[j]
// over 7-bit unsigned x (every value < 128: the relaxed dot's requirement,
// which quantRowsU7 guarantees) and int8 w, with the relaxed-SIMD kernel.
func gemmU7(dst []float32, ldd int, x []uint8, ldx int, sx []float32, zx []int32, w []int8, ldw int, sw []float32, wsum []int32, bias []float32, m, n, k int) {
	check(dims(ldd, ldx, ldw, m, n, k) && ldd >= n && ldx >= k && ldw >= k &&
		len(dst) >= span(m, ldd, n) && len(x) >= span(m, ldx, k) && len(sx) >= m && len(zx) >= m &&
		len(w) >= span(n, ldw, k) && len(sw) >= n && len(wsum) >= n && (bias == nil || len(bias) >= n), "i8_gemm_relaxed")
	if m == 0 || n == 0 {
		return
	}
	i8GEMMRelaxed(ptr(dst), int32(ldd), ptr(x), int32(ldx), ptr(sx), ptr(zx), ptr(w), int32(ldw), ptr(sw), ptr(wsum), ptr(bias), int32(m), int32(n), int32(k))
}

// layerNorm normalises each of the m rows of x [m, n] into dst (which may
// equal x).
func layerNorm(dst, x []float32, m, n int, gamma, beta []float32, eps float32) {
	check(dims(m, n) && len(x) >= m*n && len(dst) >= m*n && len(gamma) >= n && len(beta) >= n, "layernorm")
	if m == 0 || n == 0 {
		return
	}
	layerNormK(ptr(dst), ptr(x), ptr(gamma), ptr(beta), int32(m), int32(n), eps)
}

// softmaxRows replaces each of rows rows of x (stride ld) by
// softmax(scale·row) over its first n values, or over the first i+1 of row
// i when causal (zeroing the rest up to n).
func softmaxRows(x []float32, ld, rows, n int, scale float32, causal bool) {
	check(dims(ld, rows, n) && ld >= n && len(x) >= span(rows, ld, n), "softmax_rows")
	if rows == 0 || n == 0 {
		return
	}
	c := int32(0)
	if causal {
		c = 1
	}
	softmaxRowsK(ptr(x), int32(ld), int32(rows), int32(n), scale, c)
}

// geluInPlace, quickGELUInPlace and reluInPlace apply the activation to x.
func geluInPlace(x []float32) { whole4(x, "gelu", geluK) }

func quickGELUInPlace(x []float32) { whole4(x, "quickgelu", quickGELUK) }

// whole4 runs an elementwise kernel that takes only multiples of 4 floats
// (its loop has no tail code, which measured 1.6× faster): the whole
// vectors in place, then the last 1..3 floats through a zero-padded
// 4-float buffer.
func whole4(x []float32, kernel string, k func(*float32, int32)) {
	check(dims(len(x)), kernel)
	v := len(x) &^ 3
	if v > 0 {
		k(ptr(x), int32(v))
	}
	if v < len(x) {
		var t [4]float32
		copy(t[:], x[v:])
		k(&t[0], 4)
		copy(x[v:], t[:])
	}
}

func reluInPlace(x []float32) {
	check(dims(len(x)), "relu")
	if len(x) > 0 {
		reluK(ptr(x), int32(len(x)))
	}
}

// addInPlace computes dst += src over len(dst) elements.
func addInPlace(dst, src []float32) {
	check(dims(len(dst)) && len(src) >= len(dst), "add")
	if len(dst) > 0 {
		addK(ptr(dst), ptr(src), int32(len(dst)))
	}
}
