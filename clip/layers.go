package clip

import (
	"github.com/clipwasm/clipwasm/kernels"
)

// linear is y = x·Wᵀ + b with W [out, in], PyTorch's nn.Linear.
type linear struct {
	w *kernels.Matrix
	b []float32 // nil: no bias
}

// layerNorm holds a LayerNorm's affine parameters.
type layerNorm struct{ g, b []float32 }

// Tracer receives intermediate activations of batch item 0, for debugging
// and for the golden tests. Image feature maps are channels-last [H, W, C];
// shape says how to read x.
type Tracer func(name string, x []float32, shape []int)

// pass carries what every layer of one forward pass needs: the backend, the
// model-wide constants and the optional tracer.
type pass struct {
	b     kernels.Backend
	act   kernels.Activation
	eps   float32
	trace Tracer
	// scratch is the model's transformer buffers, reused from call to
	// call (calls hold the model's lock).
	scratch *scratch
}

func (p *pass) linear(dst, x []float32, rows int, l linear) { p.b.Linear(dst, x, rows, l.w, l.b) }

// norm applies a LayerNorm in place over rows of width len(n.g).
func (p *pass) norm(x []float32, n layerNorm) {
	w := len(n.g)
	p.b.LayerNorm(x, x, len(x)/w, w, n.g, n.b, p.eps)
}

// emit hands item 0's activation to the tracer, if any.
func (p *pass) emit(name string, x []float32, shape ...int) {
	if p.trace == nil {
		return
	}
	n := 1
	for _, d := range shape {
		n *= d
	}
	p.trace(name, x[:n], shape)
}
