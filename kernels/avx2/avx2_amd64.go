package avx2

import (
	"errors"

	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/internal/workpool"
	"github.com/clipwasm/clipwasm/kernels/purego"
)

// backend overrides the GEMM-based ops of an embedded purego backend.
type backend struct {
	kernels.Backend // purego: Add, AvgPool2D, ReLU
	pool            *workpool.Pool
	// f32Wide and intWide select the AVX-512 GEMM kernels (6×32 tiles)
	// for float32 and for int8/q4 weights; otherwise the AVX2 ones run.
	f32Wide, intWide bool
}

// New returns the fastest form of this backend the CPU runs: the AVX-512
// GEMM kernels where the CPU and OS support AVX-512 F/BW/VL/DQ (and, for
// int8 and q4 weights, AVX512_VNNI), the AVX2 ones otherwise. See NewAVX2
// for threads and errors.
func New(threads int) (kernels.Backend, error) {
	return newBackend(threads, cpu.avx512)
}

// NewAVX2 returns the backend on its AVX2 kernels only, whatever the CPU
// also has, using threads goroutines per op; threads <= 0 means
// runtime.GOMAXPROCS(0). It fails if the CPU or OS does not support AVX2
// and FMA3. Its workers exit once the backend is garbage collected.
func NewAVX2(threads int) (kernels.Backend, error) {
	return newBackend(threads, false)
}

// NewAVX512 returns the backend on its AVX-512 GEMM kernels (see New), or
// an error naming what the CPU lacks.
func NewAVX512(threads int) (kernels.Backend, error) {
	if !cpu.avx512 {
		return nil, errors.New("avx2: CPU lacks AVX-512 F/BW/VL/DQ (or the OS does not save ZMM and opmask registers)")
	}
	return newBackend(threads, true)
}

func newBackend(threads int, avx512 bool) (kernels.Backend, error) {
	if !cpu.avx2FMA {
		return nil, errors.New("avx2: CPU lacks AVX2/FMA (or the OS does not save YMM registers)")
	}
	return &backend{
		Backend: purego.New(threads),
		pool:    workpool.New(threads),
		f32Wide: avx512,
		intWide: avx512 && cpu.avx512VNNI,
	}, nil
}

// Name identifies the backend: "avx512" on the AVX-512 kernels, "avx2" on
// the AVX2 ones.
func (b *backend) Name() string {
	if b.f32Wide {
		return "avx512"
	}
	return "avx2"
}

// tilePanels returns the GEMM tile width in panels for float32 (wide =
// f32Wide) or integer (wide = intWide) weights.
func tilePanels(wide bool) int {
	if wide {
		return maxTilePanels
	}
	return 1
}

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
