package quantize

import (
	"sync"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/kernels"
)

// maxConvRows bounds the input rows one convolution contributes per image
// to its Gram matrix: a ResNet stem convolution has 12,544 output positions
// at 224 pixels, and an evenly spread sample of them describes its inputs
// as well at a fraction of the cost.
const maxConvRows = 1024

// recorder is a kernels.Backend that runs every op on another backend and,
// for the matrices its weights handed out, accumulates the Gram blocks of
// their inputs: the rows x of Linear, the patches of Conv2D.
type recorder struct {
	kernels.Backend
	block int
	on    bool // record; off, the ops only run

	mu    sync.Mutex
	names map[*kernels.Matrix]string
	grams map[string]*gram
}

func newRecorder(b kernels.Backend, block int) *recorder {
	return &recorder{Backend: b, block: block, names: map[*kernels.Matrix]string{}, grams: map[string]*gram{}}
}

// weights returns w with every matrix it hands out registered by name.
func (r *recorder) weights(w clip.Weights) clip.Weights { return namedWeights{w, r} }

type namedWeights struct {
	clip.Weights
	r *recorder
}

func (n namedWeights) Matrix(name string, rows, cols int) (*kernels.Matrix, error) {
	m, err := n.Weights.Matrix(name, rows, cols)
	if err == nil {
		n.r.mu.Lock()
		n.r.names[m] = name
		n.r.mu.Unlock()
	}
	return m, err
}

// gramOf returns the Gram matrix of w's inputs, or nil if w is unnamed.
func (r *recorder) gramOf(w *kernels.Matrix) *gram {
	if !r.on {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	name, ok := r.names[w]
	if !ok {
		return nil
	}
	g := r.grams[name]
	if g == nil {
		g = newGram(w.Cols, r.block)
		r.grams[name] = g
	}
	return g
}

func (r *recorder) Linear(dst, x []float32, m int, w *kernels.Matrix, bias []float32) {
	if g := r.gramOf(w); g != nil {
		g.add(r.Backend, x, m)
	}
	r.Backend.Linear(dst, x, m, w, bias)
}

func (r *recorder) Conv2D(dst, src []float32, s kernels.ConvShape, w *kernels.Matrix, bias []float32) {
	if g := r.gramOf(w); g != nil {
		oh, ow := s.OutSize()
		stride := (oh*ow + maxConvRows - 1) / maxConvRows
		for i := 0; i < s.N; i++ {
			x, n := im2col(src, s, i, stride)
			g.add(r.Backend, x, n)
		}
	}
	r.Backend.Conv2D(dst, src, s, w, bias)
}
