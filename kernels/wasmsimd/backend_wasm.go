//go:build js && wasm

package wasmsimd

import (
	"fmt"
	"math"
	"sync"

	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/purego"
)

// backend runs the op set on one kernel set. It is single-threaded: Go's
// wasm port runs one thread, and a later worker pool over shared memory
// can split Linear by output columns (the GEMM kernels take any column
// range through offset pointers and strides).
type backend struct {
	kernels.Backend // purego on one thread: AvgPool2D
	set             string
	// relaxed selects the relaxed kernels: f32 GEMMs with fused
	// multiply-adds, and the relaxed int8 dot, whose activations have 7
	// bits (the SIMD128 int8 GEMM takes 8).
	relaxed bool

	// Scratch reused across calls; the Backend contract allows one caller
	// at a time.
	xi8    []int8    // activations quantized to int8 (simd128 set)
	xu7    []uint8   // activations quantized to 7 bits (relaxed set)
	sx     []float32 // their per-row scales
	zx     []int32   // and zero points (relaxed set)
	scores []float32 // attention probabilities of one head
	cols   []float32 // im2col rows
	wrows  []float32 // a block of a quantized convolution's weights, widened
}

// New returns the backend on the fastest kernel set that passed the
// self-test (see Selected): this package's kernels, or package purego when
// no SIMD set passed. Under js/wasm it does not fail.
//
// On the relaxed set the int8 GEMM takes 7-bit activations (the relaxed
// dot's requirement): 1.3× the SIMD128 set's 8-bit GEMM on the AMD EPYC
// measured. The converter chooses smoothing and float32 inputs for 7 bits
// (shards/quantize), so the bundles keep their cosine bar with them.
func New() (kernels.Backend, error) { return NewSet(Selected()) }

// NewSet returns the backend on the named kernel set (SetRelaxed,
// SetSIMD128 or SetGo), failing if that set did not pass the self-test.
// Benchmarks and tests use it to compare sets.
func NewSet(set string) (kernels.Backend, error) {
	res := SelfTest()
	err, ok := res[set]
	if !ok {
		return nil, fmt.Errorf("wasmsimd: unknown kernel set %q", set)
	}
	if err != nil {
		return nil, err
	}
	if set == SetGo {
		return purego.New(1), nil
	}
	relaxed := set == SetRelaxed
	return &backend{Backend: purego.New(1), set: set, relaxed: relaxed}, nil
}

// Name identifies the backend and its kernel set.
func (b *backend) Name() string { return "wasmsimd-" + b.set }

// grow returns (*buf)[:n], reallocating when the capacity is short.
func grow[T any](buf *[]T, n int) []T {
	if cap(*buf) < n {
		*buf = make([]T, n)
	}
	return (*buf)[:n]
}

// Linear computes dst[m, w.Rows] = x[m, w.Cols]·wᵀ + bias.
func (b *backend) Linear(dst, x []float32, m int, w *kernels.Matrix, bias []float32) {
	n, k := w.Rows, w.Cols
	if len(x) < m*k || len(dst) < m*n || (bias != nil && len(bias) < n) {
		panic("wasmsimd: Linear slice too short for its shape")
	}
	if m == 0 || n == 0 {
		return
	}
	switch w.Scheme {
	case kernels.SchemeF32, "":
		gemmF32(b.relaxed, dst, n, x, k, w.F32, k, bias, m, n, k)
	case kernels.SchemeInt8, kernels.SchemeQ4:
		if w.Activations == kernels.ActivationsF32 {
			b.convGEMM(dst, x, m, w, bias) // the converter found 8-bit inputs too coarse here
			return
		}
		b.linearQuant(dst, x, m, w, bias)
	default:
		panic("wasmsimd: unknown weight scheme " + string(w.Scheme))
	}
}

// linearQuant quantizes the activations per row, then runs the int8 GEMM
// of the backend's set on w's int8 form.
func (b *backend) linearQuant(dst, x []float32, m int, w *kernels.Matrix, bias []float32) {
	n, k := w.Rows, w.Cols
	qw := prepared(w)
	sx := grow(&b.sx, m)
	if b.relaxed {
		xq, zx := grow(&b.xu7, m*k), grow(&b.zx, m)
		quantRowsU7(xq, k, sx, zx, x, k, m, k)
		gemmU7(dst, n, xq, k, sx, zx, qw.q8, k, qw.scales, qw.sums, bias, m, n, k)
		return
	}
	xq := grow(&b.xi8, m*k)
	quantRowsI8(xq, k, sx, x, k, m, k)
	gemmI8(dst, n, xq, k, sx, qw.q8, k, qw.scales, bias, m, n, k)
}

// quantWeights is the int8 form of a quantized matrix that the int8 GEMMs
// take, cached in Matrix.Prepared.
type quantWeights struct {
	rows, cols int
	q8         []int8    // [rows, cols]: Matrix.Q8 itself for int8, converted for q4
	scales     []float32 // per row
	sums       []int32   // per row, Σ q8: the relaxed GEMM's zero-point term
}

// preparedMu guards Matrix.Prepared, a plain field that two goroutines
// making the first call on one matrix would otherwise race on.
var preparedMu sync.Mutex

// prepared returns w's int8 form, making and caching it on first use. A
// Prepared value owned by another backend is left alone (the matrix may be
// shared between backends), at the cost of converting on every call.
func prepared(w *kernels.Matrix) *quantWeights {
	preparedMu.Lock()
	prep := w.Prepared
	preparedMu.Unlock()
	if p, ok := prep.(*quantWeights); ok && p.rows == w.Rows && p.cols == w.Cols {
		return p
	}
	p := prepare(w)
	if prep != nil {
		return p
	}
	preparedMu.Lock()
	defer preparedMu.Unlock()
	if q, ok := w.Prepared.(*quantWeights); ok && q.rows == w.Rows && q.cols == w.Cols {
		return q // another goroutine won the race; share its copy
	}
	if w.Prepared == nil {
		w.Prepared = p
	}
	return p
}

// prepare makes the int8 form of an int8 or q4 matrix. Int8 weights are
// used in place. Q4 weights are converted once: their per-block scales
// become one per row, which the int8 kernels need; that costs a byte per
// weight for the model's lifetime, but converting on every call would cost
// about half the GEMM's time at the ViT's 50 tokens.
func prepare(w *kernels.Matrix) *quantWeights {
	n, k := w.Rows, w.Cols
	p := &quantWeights{rows: n, cols: k, sums: make([]int32, n)}
	switch w.Scheme {
	case kernels.SchemeInt8:
		if len(w.Q8) < n*k || len(w.Scales) < n {
			panic("wasmsimd: int8 matrix storage does not match its shape")
		}
		p.q8, p.scales = w.Q8, w.Scales
	case kernels.SchemeQ4:
		p.q8, p.scales = make([]int8, n*k), make([]float32, n)
		q4Rows(p.q8, p.scales, w.Q4, w.Scales, n, k)
	}
	rowSums(p.sums, p.q8, k, n, k)
	return p
}

// LayerNorm normalises each row of x [m, n] into dst (which may equal x).
func (b *backend) LayerNorm(dst, x []float32, m, n int, gamma, beta []float32, eps float32) {
	layerNorm(dst, x, m, n, gamma, beta, eps)
}

// Activate applies act to x in place.
func (b *backend) Activate(x []float32, act kernels.Activation) {
	switch act {
	case kernels.QuickGELU:
		quickGELUInPlace(x)
	case kernels.GELU:
		geluInPlace(x)
	case kernels.ReLU:
		reluInPlace(x)
	default:
		panic("wasmsimd: unknown activation " + act.String())
	}
}

// Add computes dst += src.
func (b *backend) Add(dst, src []float32) {
	if len(src) < len(dst) {
		panic("wasmsimd: Add src shorter than dst")
	}
	addInPlace(dst, src)
}

// Attention computes softmax(q·kᵀ/√HeadDim [+ causal mask])·v per batch
// item and head with three kernel calls: the scores GEMM reads the head's
// columns of q and k in place through their row strides, softmax_rows
// scales, masks and normalises them, and f32_gemm_nn multiplies by the
// head's columns of v, writing straight into dst's.
func (b *backend) Attention(dst, q, k, v []float32, s kernels.AttentionShape) {
	d := s.HeadDim
	width := s.Heads * d
	if s.Causal && s.SeqQ != s.SeqK {
		panic("wasmsimd: causal attention needs SeqQ == SeqK")
	}
	if s.Batch == 0 || s.SeqQ == 0 || width == 0 {
		return
	}
	if len(dst) < s.Batch*s.SeqQ*width ||
		len(q) < (s.Batch*s.SeqQ-1)*s.LDQ+width ||
		len(k) < (s.Batch*s.SeqK-1)*s.LDKV+width ||
		len(v) < (s.Batch*s.SeqK-1)*s.LDKV+width {
		panic("wasmsimd: Attention slice too short for its shape")
	}
	scale := float32(1 / math.Sqrt(float64(d)))
	scores := grow(&b.scores, s.SeqQ*s.SeqK)
	for bi := range s.Batch {
		for h := range s.Heads {
			qo := bi*s.SeqQ*s.LDQ + h*d
			kvo := bi*s.SeqK*s.LDKV + h*d
			gemmF32(b.relaxed, scores, s.SeqK, q[qo:], s.LDQ, k[kvo:], s.LDKV, nil, s.SeqQ, s.SeqK, d)
			softmaxRows(scores, s.SeqK, s.SeqQ, s.SeqK, scale, s.Causal)
			gemmF32NN(dst[bi*s.SeqQ*width+h*d:], width, scores, s.SeqK, v[kvo:], s.LDKV, s.SeqQ, d, s.SeqK)
		}
	}
}

// im2colBudget caps the im2col buffer (in floats, 16 MiB) so that a large
// image is convolved in row chunks instead of materialising the whole
// K²-times-larger matrix.
const im2colBudget = 1 << 22

// Conv2D convolves src [N,H,W,InC] with w [OutC, K*K*InC] into
// dst [N,OH,OW,OutC] as im2col followed by Linear: each output pixel
// becomes a row of (kh, kw, c) values, which matches w's column order.
func (b *backend) Conv2D(dst, src []float32, s kernels.ConvShape, w *kernels.Matrix, bias []float32) {
	oh, ow := s.OutSize()
	kk := s.K * s.K * s.InC
	if w.Rows != s.OutC || w.Cols != kk {
		panic("wasmsimd: Conv2D weight shape does not match ConvShape")
	}
	if len(src) < s.N*s.H*s.W*s.InC || len(dst) < s.N*oh*ow*s.OutC {
		panic("wasmsimd: Conv2D slice too short for its shape")
	}
	rows := s.N * oh * ow
	if rows == 0 || s.OutC == 0 {
		return
	}
	if s.K == 1 && s.Stride == 1 && s.Pad == 0 {
		// Channels-last src already is the [pixels, InC] im2col matrix.
		b.convGEMM(dst, src, rows, w, bias)
		return
	}
	chunk := max(1, min(rows, im2colBudget/kk))
	col := grow(&b.cols, chunk*kk)
	for r0 := 0; r0 < rows; r0 += chunk {
		r1 := min(rows, r0+chunk)
		for r := r0; r < r1; r++ {
			s.Im2colRow(col[(r-r0)*kk:(r-r0+1)*kk], src, r)
		}
		b.convGEMM(dst[r0*s.OutC:r1*s.OutC], col[:(r1-r0)*kk], r1-r0, w, bias)
	}
}

// convWeightBlock is how many output channels of a quantized convolution
// are widened to float32 at a time.
const convWeightBlock = 64

// convGEMM is Linear for a convolution's im2col rows, except that quantized
// weights run with float32 activations, widened a block of output channels
// at a time (int8 by the i8_dequant kernel: in plain Go, widening the patch
// embedding alone took 4% of a ViT-B/32 image's time in Chromium).
// Per-pixel activation quantization costs ResNet towers far more fidelity
// than transformer tokens (rn_tiny int8 in Chromium: cosine 0.989 to f32
// with it), and a convolution has many pixel rows per weight, so widening
// the weights is a small share of its work.
func (b *backend) convGEMM(dst, x []float32, m int, w *kernels.Matrix, bias []float32) {
	if w.Scheme == kernels.SchemeF32 || w.Scheme == "" {
		b.Linear(dst, x, m, w, bias)
		return
	}
	n, k := w.Rows, w.Cols
	wf := grow(&b.wrows, min(n, convWeightBlock)*k)
	for r0 := 0; r0 < n; r0 += convWeightBlock {
		r1 := min(n, r0+convWeightBlock)
		if w.Scheme == kernels.SchemeInt8 {
			dequantRows(wf, w.Q8[r0*k:r1*k], w.Scales[r0:r1], r1-r0, k)
		} else {
			for r := r0; r < r1; r++ {
				w.Row(r, wf[(r-r0)*k:(r-r0+1)*k])
			}
		}
		var bb []float32
		if bias != nil {
			bb = bias[r0:r1]
		}
		gemmF32(b.relaxed, dst[r0:], n, x, k, wf[:(r1-r0)*k], k, bb, m, r1-r0, k)
	}
}
