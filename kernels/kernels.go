// Package kernels holds the compute behind the CLIP model: a small set of
// coarse operations (linear layers, layer norm, attention, activations,
// convolutions, pooling) that every backend implements. The model code in
// package clip calls only this interface, so a new backend (SIMD, wasm, CUDA)
// never touches the model, and a new model family never touches a kernel.
//
// Layouts are fixed and simple: every activation tensor is a row-major
// []float32. Sequences are [tokens, width]; images inside the ResNet are
// channels-last [N, H, W, C], so that a 1×1 convolution is a plain Linear.
package kernels

import "fmt"

// Activation names an elementwise non-linearity.
type Activation int

const (
	// QuickGELU is x·sigmoid(1.702·x), used by OpenAI's CLIP weights.
	QuickGELU Activation = iota
	// GELU is the exact erf form, x·Φ(x), used by OpenCLIP's LAION models.
	GELU
	// ReLU is max(x, 0), used by the ResNet image tower.
	ReLU
)

// String returns the activation's name as configs spell it.
func (a Activation) String() string {
	switch a {
	case QuickGELU:
		return "quick_gelu"
	case GELU:
		return "gelu"
	case ReLU:
		return "relu"
	}
	return "unknown"
}

// MarshalText writes the activation's name, so configs and manifests say
// "quick_gelu" rather than a number that depends on this enum's order.
func (a Activation) MarshalText() ([]byte, error) {
	if a.String() == "unknown" {
		return nil, fmt.Errorf("kernels: unknown activation %d", int(a))
	}
	return []byte(a.String()), nil
}

// UnmarshalText reads a name written by MarshalText.
func (a *Activation) UnmarshalText(b []byte) error {
	for _, c := range []Activation{QuickGELU, GELU, ReLU} {
		if string(b) == c.String() {
			*a = c
			return nil
		}
	}
	return fmt.Errorf("kernels: unknown activation %q (want quick_gelu, gelu or relu)", b)
}

// Scheme names how a Matrix stores its weights.
type Scheme string

// The weight schemes of the shard format (see shards/ and DESIGN.md).
const (
	// SchemeF32 keeps float32 weights (f16 shards are widened on load).
	SchemeF32 Scheme = "f32"
	// SchemeInt8 is symmetric int8 per output channel (row):
	// w[r][c] = Scales[r]·Q8[r·Cols+c].
	SchemeInt8 Scheme = "int8"
	// SchemeQ4 is 4-bit blocks of 32 along the input dimension (Cols must be
	// a multiple of 32), one scale per block: w = Scales[b]·(q−8), q in
	// 0..15. Byte j of a block's 16 holds element j in its low nibble and
	// element j+16 in its high nibble (ggml's q4_0 order).
	SchemeQ4 Scheme = "q4"
)

// Q4Block is the number of weights sharing one q4 scale.
const Q4Block = 32

// Matrix is a weight matrix of shape [Rows, Cols] = [out, in], used as
// y = x·Wᵀ, the layout of PyTorch's nn.Linear. Exactly one storage is set,
// per Scheme. Backends may attach their own prepared form of the weights
// (packed panels, widened integers, device buffers) through Prepared.
type Matrix struct {
	Rows, Cols int
	Scheme     Scheme

	F32    []float32 // SchemeF32: row-major [Rows, Cols]
	Q8     []int8    // SchemeInt8: row-major [Rows, Cols]
	Q4     []byte    // SchemeQ4: Rows·Cols/32 blocks of 16 bytes, row-major
	Scales []float32 // SchemeInt8: [Rows]; SchemeQ4: [Rows·Cols/32]

	// Activations says how a backend that quantizes the activations of an
	// int8 or q4 Linear per token (the browser's int8 GEMM) must feed this
	// matrix: ActivationsF32 keeps them float32 where quantizing them costs
	// too much fidelity (inputs no LayerNorm precedes, with outlier
	// channels); empty leaves it to the backend. Backends that never
	// quantize activations ignore it.
	Activations ActivationPrecision

	// Prepared is a backend's cached form of this matrix, made on first use.
	Prepared any
}

// ActivationPrecision is the precision a quantized matrix's inputs need;
// see Matrix.Activations.
type ActivationPrecision string

// ActivationsF32 asks for float32 activations.
const ActivationsF32 ActivationPrecision = "f32"

// NewMatrix wraps float32 row-major data of shape [rows, cols]. It panics if
// the length does not match, since that is a programming error in a loader.
func NewMatrix(rows, cols int, data []float32) *Matrix {
	if len(data) != rows*cols {
		panic("kernels: matrix data length does not match its shape")
	}
	return &Matrix{Rows: rows, Cols: cols, Scheme: SchemeF32, F32: data}
}

// AttentionShape describes a batch of multi-head scaled dot-product
// attentions. Queries are [Batch*SeqQ rows, Heads*HeadDim] with row stride
// LDQ; keys and values are [Batch*SeqK rows, Heads*HeadDim] with row stride
// LDKV (so q, k and v may be column slices of one fused projection). The
// output is [Batch*SeqQ, Heads*HeadDim], dense.
type AttentionShape struct {
	Batch, SeqQ, SeqK int
	Heads, HeadDim    int
	LDQ, LDKV         int
	// Causal masks key j > query i (an additive −inf above the diagonal).
	Causal bool
}

// ConvShape describes a 2-D convolution over channels-last images
// [N, H, W, InC] producing [N, OH, OW, OutC]. The weight matrix is
// [OutC, K*K*InC] with columns in (kh, kw, c) order.
type ConvShape struct {
	N, H, W, InC int
	OutC         int
	K, Stride    int
	Pad          int
}

// OutSize returns the output height and width.
func (s ConvShape) OutSize() (oh, ow int) {
	return (s.H+2*s.Pad-s.K)/s.Stride + 1, (s.W+2*s.Pad-s.K)/s.Stride + 1
}

// Backend is the op set the model runs on. Implementations may use any
// number of threads internally; calls are made from one goroutine at a time.
// Destination slices never alias inputs unless a method says so.
type Backend interface {
	// Name identifies the backend in logs and benchmarks.
	Name() string

	// Linear computes dst[m, w.Rows] = x[m, w.Cols]·wᵀ + bias. bias may be nil.
	Linear(dst, x []float32, m int, w *Matrix, bias []float32)

	// LayerNorm normalises each of the m rows of x [m, n] and writes
	// gamma·(x−mean)/sqrt(var+eps)+beta to dst. dst may equal x.
	LayerNorm(dst, x []float32, m, n int, gamma, beta []float32, eps float32)

	// Activate applies act to x in place.
	Activate(x []float32, act Activation)

	// Add computes dst += src elementwise (residual connections).
	Add(dst, src []float32)

	// Attention computes softmax(q·kᵀ/√HeadDim [+ mask])·v for each batch
	// item and head, writing [Batch*SeqQ, Heads*HeadDim] to dst.
	Attention(dst, q, k, v []float32, s AttentionShape)

	// Conv2D convolves src [N,H,W,InC] with w [OutC, K*K*InC] and adds bias
	// (may be nil), writing [N,OH,OW,OutC] to dst.
	Conv2D(dst, src []float32, s ConvShape, w *Matrix, bias []float32)

	// AvgPool2D averages non-overlapping k×k windows of src [n,h,w,c]
	// (kernel = stride = k, no padding, like PyTorch's AvgPool2d(k)),
	// writing [n, h/k, w/k, c] (sizes rounded down) to dst.
	AvgPool2D(dst, src []float32, n, h, w, c, k int)
}

// Im2colRow fills one im2col row — output pixel r of the N·OH·OW, in
// row-major order — with its K×K×InC input patch in (kh, kw, c) order, the
// column order of a Conv2D weight; zeros where the patch hangs over the
// padding. Within one kernel row the in-bounds kw values are contiguous in
// channels-last src, so each copies as one run. Backends that run Conv2D as
// im2col + GEMM share it.
func (s ConvShape) Im2colRow(row, src []float32, r int) {
	oh, ow := s.OutSize()
	n, rem := r/(oh*ow), r%(oh*ow)
	y0 := rem/ow*s.Stride - s.Pad
	x0 := rem%ow*s.Stride - s.Pad
	c := s.InC
	// The kw range whose input column lies inside [0, W).
	kw0, kw1 := max(0, -x0), min(s.K, s.W-x0)
	for kh := range s.K {
		dst := row[kh*s.K*c : (kh+1)*s.K*c]
		y := y0 + kh
		if y < 0 || y >= s.H || kw0 >= kw1 {
			clear(dst)
			continue
		}
		clear(dst[:kw0*c])
		base := ((n*s.H+y)*s.W + x0) * c
		copy(dst[kw0*c:kw1*c], src[base+kw0*c:base+kw1*c])
		clear(dst[kw1*c:])
	}
}
