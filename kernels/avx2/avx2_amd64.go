package avx2

import (
	"errors"
	"runtime"

	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/purego"
)

// backend overrides the GEMM-based ops of an embedded purego backend.
type backend struct {
	kernels.Backend // purego: Add, AvgPool2D, ReLU
	pool            *pool
}

// New returns the AVX2 backend using threads goroutines per op;
// threads <= 0 means runtime.GOMAXPROCS(0). It fails if the CPU or OS does
// not support AVX2 and FMA3. Its workers exit once the backend is garbage
// collected.
func New(threads int) (kernels.Backend, error) {
	if !hasAVX2FMA() {
		return nil, errors.New("avx2: CPU lacks AVX2/FMA (or the OS does not save YMM registers)")
	}
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := newPool(threads)
	b := &backend{Backend: purego.New(threads), pool: p}
	runtime.AddCleanup(b, func(work chan *job) { close(work) }, p.work)
	return b, nil
}

// Name identifies the backend.
func (b *backend) Name() string { return "avx2" }

// Linear computes dst[m, w.Rows] = x[m, w.Cols]·wᵀ + bias.
func (b *backend) Linear(dst, x []float32, m int, w *kernels.Matrix, bias []float32) {
	n, k := w.Rows, w.Cols
	if len(x) < m*k || len(dst) < m*n || (bias != nil && len(bias) < n) {
		panic("avx2: Linear slice too short for its shape")
	}
	if m == 0 || n == 0 {
		return
	}
	switch w.Scheme {
	case kernels.SchemeInt8, kernels.SchemeQ4:
		b.linearInt(dst, x, m, w, bias)
	case kernels.SchemeF32, "":
		b.linearF32(dst, x, m, w, bias)
	default:
		panic("avx2: unknown weight scheme " + string(w.Scheme))
	}
}
