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

// New returns a backend that runs Linear with int8 or q4 weights as the
// browser's int8 GEMM does, with activations quantized per row in mode,
// unless the matrix asks for float32 activations (Matrix.Activations);
// everything else, float32 Linear and Conv2D included (the browser
// convolves quantized weights with float32 activations), runs on inner.
func New(inner kernels.Backend, mode Mode) kernels.Backend {
	return &backend{Backend: inner, mode: mode}
}

// Name identifies the backend, its activation mode and the wrapped backend.
func (b *backend) Name() string { return "actquant-" + b.mode.String() + "+" + b.Backend.Name() }

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
	q8, sw, err := Int8Weights(w)
	if err != nil {
		panic(err.Error()) // clip.Build validated every matrix
	}
	sx := make([]float32, m)
	if b.mode == U7 {
		xq, zx, wsum := make([]uint8, m*k), make([]int32, m), make([]int32, n)
		QuantRowsU7(xq, k, sx, zx, x, k, m, k)
		RowSums(wsum, q8, k, n, k)
		GEMMU7(dst, n, xq, k, sx, zx, q8, k, sw, wsum, bias, m, n, k)
		return
	}
	xq := make([]int8, m*k)
	QuantRowsI8(xq, k, sx, x, k, m, k)
	GEMMI8(dst, n, xq, k, sx, q8, k, sw, bias, m, n, k)
}
