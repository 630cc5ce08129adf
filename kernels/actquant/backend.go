package actquant

import (
	"github.com/clipwasm/clipwasm/kernels"
)

// backend runs int8 and q4 Linear layers the way the browser backend does,
// and every other op on the backend it wraps.
type backend struct {
	kernels.Backend
	mode Mode
}

// intWeights is a quantized matrix's per-row scales and code sums, and its
// codes as integer-valued float32 matrices of at most exactCols columns.
type intWeights struct {
	scales []float32
	sums   []int32
	chunks []*kernels.Matrix
}

// exactCols bounds the columns whose products one float32 GEMM sums: a
// product of two codes is at most 127·127 in magnitude, so every partial
// sum of up to 1024 of them is an integer below 2^24, which float32 holds
// exactly whatever the order of the additions. The wrapped backend's
// float32 GEMM thus computes the int32 dot products exactly, at its speed.
const exactCols = 1024

// New returns a backend that runs Linear with int8 or q4 weights as the
// browser's int8 GEMM does, with activations quantized per row in mode,
// unless the matrix asks for float32 activations (Matrix.Activations);
// everything else, float32 Linear and Conv2D included (the browser
// convolves quantized weights with float32 activations), runs on inner.
// The integer sums are computed exactly on inner's float32 GEMM (see
// exactCols), with the weights' codes widened to float32 on each call:
// O(n·k) work beside the GEMM's O(m·n·k), and no copy of the model kept.
func New(inner kernels.Backend, mode Mode) kernels.Backend {
	return &backend{Backend: inner, mode: mode}
}

// Name identifies the backend, its activation mode and the wrapped backend.
func (b *backend) Name() string { return "actquant-" + b.mode.String() + "+" + b.Backend.Name() }

// widen returns w's integer form.
func widen(w *kernels.Matrix) *intWeights {
	q8, scales, err := Int8Weights(w)
	if err != nil {
		panic(err.Error()) // clip.Build validated every matrix
	}
	n, k := w.Rows, w.Cols
	iw := &intWeights{scales: scales, sums: make([]int32, n)}
	RowSums(iw.sums, q8, k, n, k)
	for c0 := 0; c0 < k; c0 += exactCols {
		kc := min(exactCols, k-c0)
		f := make([]float32, n*kc)
		for j := range n {
			for p, v := range q8[j*k+c0 : j*k+c0+kc] {
				f[j*kc+p] = float32(v)
			}
		}
		iw.chunks = append(iw.chunks, kernels.NewMatrix(n, kc, f))
	}
	return iw
}

// Linear computes dst[m, w.Rows] = x[m, w.Cols]·wᵀ + bias.
func (b *backend) Linear(dst, x []float32, m int, w *kernels.Matrix, bias []float32) {
	quantized := w.Scheme == kernels.SchemeInt8 || w.Scheme == kernels.SchemeQ4
	if !quantized || w.Activations == kernels.ActivationsF32 {
		b.Backend.Linear(dst, x, m, w, bias)
		return
	}
	n, k := w.Rows, w.Cols
	if len(x) < m*k || len(dst) < m*n || (bias != nil && len(bias) < n) {
		panic("actquant: Linear slice too short for its shape")
	}
	if m == 0 || n == 0 {
		return
	}
	iw := widen(w)
	sx, zx := make([]float32, m), make([]int32, m)
	codes := make([]float32, m*k) // the activation codes, as float32 integers
	if b.mode == U7 {
		xq := make([]uint8, m*k)
		QuantRowsU7(xq, k, sx, zx, x, k, m, k)
		for i, v := range xq {
			codes[i] = float32(v)
		}
	} else {
		xq := make([]int8, m*k)
		QuantRowsI8(xq, k, sx, x, k, m, k)
		for i, v := range xq {
			codes[i] = float32(v)
		}
	}
	acc := make([]int32, m*n)
	part := make([]float32, m*n)
	var xc []float32
	for c, chunk := range iw.chunks {
		c0, kc := c*exactCols, chunk.Cols
		xc = codes
		if len(iw.chunks) > 1 {
			xc = make([]float32, m*kc)
			for i := range m {
				copy(xc[i*kc:(i+1)*kc], codes[i*k+c0:i*k+c0+kc])
			}
		}
		b.Backend.Linear(part, xc, m, chunk, nil)
		for i, v := range part {
			acc[i] += int32(v)
		}
	}
	for i := range m {
		for j := range n {
			a := acc[i*n+j]
			if b.mode == U7 {
				a -= zx[i] * iw.sums[j]
			}
			dst[i*n+j] = epilogue(a, iw.scales[j], sx[i], bias, j)
		}
	}
}
