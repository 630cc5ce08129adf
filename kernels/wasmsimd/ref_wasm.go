//go:build js && wasm

package wasmsimd

import (
	"math"

	"github.com/clipwasm/clipwasm/kernels/actquant"
)

// Plain Go definitions of what each kernel computes. The integer kernels
// (quantizers, int8 GEMMs, q4 conversion, row sums) must match these bit
// for bit, so they spell out the same float32 operations in the same
// order; the float kernels are compared with a tolerance against float64
// versions. The start-up self-test and the package's tests both use them.

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// The quantizers and the q4 conversion are package actquant's, the
// portable model of these kernels that native fidelity tests run on.

// refQuantI8 is quant_i8.
func refQuantI8(x []float32, ldx, m, k int) (q []int8, sx []float32) {
	q, sx = make([]int8, m*k), make([]float32, m)
	actquant.QuantRowsI8(q, k, sx, x, ldx, m, k)
	return q, sx
}

// refQuantU7 is quant_u7.
func refQuantU7(x []float32, ldx, m, k int) (q []uint8, sx []float32, zx []int32) {
	q, sx, zx = make([]uint8, m*k), make([]float32, m), make([]int32, m)
	actquant.QuantRowsU7(q, k, sx, zx, x, ldx, m, k)
	return q, sx, zx
}

// refQ4ToI8 is q4_to_i8.
func refQ4ToI8(q4 []byte, scales []float32, rows, cols int) (q8 []int8, rowScale []float32) {
	q8, rowScale = make([]int8, rows*cols), make([]float32, rows)
	actquant.Q4ToI8(q8, rowScale, q4, scales, rows, cols)
	return q8, rowScale
}

// refRowSums is i8_rowsums.
func refRowSums(w []int8, ldw, n, k int) []int32 {
	s := make([]int32, n)
	for j := range n {
		for _, v := range w[j*ldw : j*ldw+k] {
			s[j] += int32(v)
		}
	}
	return s
}

// refGEMMI8 is i8_gemm, with dst dense [m, n].
func refGEMMI8(x []int8, ldx int, sx []float32, w []int8, ldw int, sw, bias []float32, m, n, k int) []float32 {
	out := make([]float32, m*n)
	for i := range m {
		for j := range n {
			var acc int32
			for p := range k {
				acc += int32(x[i*ldx+p]) * int32(w[j*ldw+p])
			}
			out[i*n+j] = scaleAcc(acc, sw[j], sx[i], bias, j)
		}
	}
	return out
}

// refGEMMU7 is i8_gemm_relaxed, with dst dense [m, n].
func refGEMMU7(x []uint8, ldx int, sx []float32, zx []int32, w []int8, ldw int, sw []float32, wsum []int32, bias []float32, m, n, k int) []float32 {
	out := make([]float32, m*n)
	for i := range m {
		for j := range n {
			var acc int32
			for p := range k {
				acc += int32(x[i*ldx+p]) * int32(w[j*ldw+p])
			}
			out[i*n+j] = scaleAcc(acc-zx[i]*wsum[j], sw[j], sx[i], bias, j)
		}
	}
	return out
}

// scaleAcc is the int8 GEMMs' epilogue, one rounding per operation in the
// kernels' order.
func scaleAcc(acc int32, sw, sx float32, bias []float32, j int) float32 {
	y := float32(acc) * sw
	y *= sx
	if bias != nil {
		y += bias[j]
	}
	return y
}

// refGEMMF32 is f32_gemm in float64, with dst dense [m, n].
func refGEMMF32(x []float32, ldx int, w []float32, ldw int, bias []float32, m, n, k int) []float64 {
	out := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			if bias != nil {
				s = float64(bias[j])
			}
			for p := range k {
				s += float64(x[i*ldx+p]) * float64(w[j*ldw+p])
			}
			out[i*n+j] = s
		}
	}
	return out
}

// refGEMMNN is f32_gemm_nn in float64, with dst dense [m, n].
func refGEMMNN(x []float32, ldx int, w []float32, ldw int, m, n, k int) []float64 {
	out := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				s += float64(x[i*ldx+p]) * float64(w[p*ldw+j])
			}
			out[i*n+j] = s
		}
	}
	return out
}

// refLayerNorm is layernorm in float64.
func refLayerNorm(x []float32, m, n int, gamma, beta []float32, eps float32) []float64 {
	out := make([]float64, m*n)
	for i := range m {
		row := x[i*n : (i+1)*n]
		var sum, ss float64
		for _, v := range row {
			sum += float64(v)
		}
		mean := sum / float64(n)
		for _, v := range row {
			ss += (float64(v) - mean) * (float64(v) - mean)
		}
		inv := 1 / math.Sqrt(ss/float64(n)+float64(eps))
		for p, v := range row {
			out[i*n+p] = (float64(v)-mean)*inv*float64(gamma[p]) + float64(beta[p])
		}
	}
	return out
}

// refSoftmax is softmax_rows in float64, with x dense [rows, n].
func refSoftmax(x []float32, rows, n int, scale float32, causal bool) []float64 {
	out := make([]float64, rows*n)
	for i := range rows {
		l := n
		if causal {
			l = min(i+1, n)
		}
		mx := math.Inf(-1)
		for _, v := range x[i*n : i*n+l] {
			mx = max(mx, float64(v*scale))
		}
		var sum float64
		for p, v := range x[i*n : i*n+l] {
			out[i*n+p] = math.Exp(float64(v*scale) - mx)
			sum += out[i*n+p]
		}
		for p := range l {
			out[i*n+p] /= sum
		}
	}
	return out
}

// refGELU, refQuickGELU and refReLU are the activations in float64.
func refGELU(v float32) float64 {
	return 0.5 * float64(v) * (1 + math.Erf(float64(v)/math.Sqrt2))
}

func refQuickGELU(v float32) float64 {
	return float64(v) / (1 + math.Exp(-1.702*float64(v)))
}

func refReLU(v float32) float64 { return max(float64(v), 0) }
