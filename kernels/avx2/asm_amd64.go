package avx2

import "math"

// The assembly kernels. Slices are passed as pointers so the kernels can
// start mid-matrix; the Go callers check every bound the kernels rely on.

// sgemm adds A·B to the rows×16 float32 tile at c (row stride ldc floats),
// rows 4, 5 or 6: A is rows rows of kc floats at a with row stride lda
// floats, B a packed panel of kc steps of 16 floats.
//
//go:noescape
func sgemm(rows, kc int, a *float32, lda int, b *float32, c *float32, ldc int)

// qgemm adds, for each of groups groups of gkp k-pairs, the int32 product
// of A (rows rows of int16 at a, row stride lda int16s; rows 4, 5 or 6) and
// B (packed int8 pairs, 32 bytes per k-pair) scaled by sa[r]·sw[j] to the
// rows×16 float32 tile at c (row stride ldc floats). Each group's sw is
// swStride floats after the previous group's.
//
//go:noescape
func qgemm(rows, groups, gkp int, a *int16, lda int, b *int8, c *float32, ldc int, sa, sw *float32, swStride int)

// sgemm512 is sgemm over a rows×32 tile on AVX-512F: two adjacent packed
// panels, the second bStride floats after the first at b. Each output sees
// the same operations in the same order as under sgemm.
//
//go:noescape
func sgemm512(rows, kc int, a *float32, lda int, b *float32, bStride int, c *float32, ldc int)

// qgemm512 is qgemm over a rows×32 tile on AVX512_VNNI: two adjacent packed
// panels, the second bStride bytes after the first at b, whose column
// scales are swPanelStride floats after the first's. Its results equal
// qgemm's bit for bit.
//
//go:noescape
func qgemm512(rows, groups, gkp int, a *int16, lda int, b *int8, bStride int, c *float32, ldc int, sa, sw *float32, swStride, swPanelStride int)

// maxMasked returns the largest of init and x[i]&mask (as bits) over n
// floats, n a multiple of 8.
//
//go:noescape
func maxMasked(x *float32, n int, mask uint32, init float32) float32

// absMax returns the largest |x[i]| of n floats, n a multiple of 8.
func absMax(x *float32, n int) float32 { return maxMasked(x, n, 0x7fffffff, 0) }

// rowMax returns the largest x[i] of n floats, n a multiple of 8, or −Inf
// for n = 0.
func rowMax(x *float32, n int) float32 {
	return maxMasked(x, n, 0xffffffff, float32(math.Inf(-1)))
}

// quantizeRow writes x[i]·inv rounded to nearest even and saturated to
// int16 into dst, for n floats, n a multiple of 16.
//
//go:noescape
func quantizeRow(dst *int16, x *float32, n int, inv float32)

// quickGELU sets x[i] = x[i]·sigmoid(1.702·x[i]) for n floats, n a
// multiple of 8.
//
//go:noescape
func quickGELU(x *float32, n int)

// expSub sets x[i] = exp(x[i]−sub) for n floats, n a multiple of 8, and
// returns their sum.
//
//go:noescape
func expSub(x *float32, n int, sub float32) float32

// gelu sets x[i] = 0.5·x[i]·(1+erf(x[i]/√2)) for n floats, n a multiple
// of 8.
//
//go:noescape
func gelu(x *float32, n int)

// layerNormRow normalises one row of n floats, n a multiple of 8, into dst
// (which may be x) with float64 statistics.
//
//go:noescape
func layerNormRow(dst, x, gamma, beta *float32, n int, eps float32)
