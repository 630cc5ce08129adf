package quantize

import (
	"fmt"
	"sync"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/kernels"
)

// maxConvRows bounds the input rows one convolution contributes per image
// to its Gram matrix: a ResNet stem convolution has 12,544 output positions
// at 224 pixels, and an evenly spread sample of them describes its inputs
// as well at a fraction of the cost.
const maxConvRows = 1024

// tokenTable is the one matrix a model reads by row (kernels.Matrix.Row)
// instead of multiplying it on the backend, so it cannot be streamed.
const tokenTable = "token_embedding.weight"

// stream is a kernels.Backend that runs every op on another backend and
// lets a model run without holding its float32 matrices. A model built on
// stream.weights holds, for each float32 matrix, a stand-in of the right
// shape whose values are never read; when the model multiplies by a
// stand-in, stream reads the matrix from src, runs the op with it and
// drops it. A converter thus holds one float32 matrix at a time, read anew
// from the (memory-mapped) checkpoint on each use: for a ViT-L/14 the
// float32 model is 1.7 GB, its largest matrix 16.8 MB. After every op the
// backend's prepared form of the weights (a packed or widened copy) is
// dropped too, so that a model of quantized matrices holds them once.
//
// While record is set, each streamed matrix goes to it first, with a
// function that accumulates the op's inputs into a Gram matrix, and the op
// runs with the matrix record returns.
type stream struct {
	kernels.Backend
	src clip.Weights

	mu       sync.Mutex
	names    map[*kernels.Matrix]string // stand-in → name
	standIns map[string]*kernels.Matrix // name → stand-in
	shared   []float32                  // the stand-ins' storage, never read
	err      error                      // the first error reading a matrix

	record func(name string, w *kernels.Matrix, fill func(*gram)) (*kernels.Matrix, error)
}

func newStream(b kernels.Backend, src clip.Weights) *stream {
	return &stream{Backend: b, src: src, names: map[*kernels.Matrix]string{}, standIns: map[string]*kernels.Matrix{}}
}

// weights returns the clip.Weights of the streamed model: src's tensors,
// and a stand-in for every float32 matrix but the token table. A matrix in
// another scheme (a bundle's int8 or q4) is handed out as it is.
func (s *stream) weights() clip.Weights { return streamWeights{s} }

type streamWeights struct{ s *stream }

func (w streamWeights) Tensor(name string, shape ...int) ([]float32, error) {
	return w.s.src.Tensor(name, shape...)
}

func (w streamWeights) Matrix(name string, rows, cols int) (*kernels.Matrix, error) {
	// Read once here, so that a missing or malformed matrix fails the
	// build rather than an op.
	m, err := w.s.src.Matrix(name, rows, cols)
	if err != nil {
		return nil, err
	}
	if m.Scheme != kernels.SchemeF32 || name == tokenTable {
		return m, nil
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.standInLocked(name, rows, cols), nil
}

// matrix returns the float32 matrix name as a model built on s should
// hold it: a stand-in, or for the token table the values themselves.
func (s *stream) matrix(name string, rows, cols int) (*kernels.Matrix, error) {
	if name == tokenTable {
		return s.src.Matrix(name, rows, cols)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.standInLocked(name, rows, cols), nil
}

func (s *stream) standInLocked(name string, rows, cols int) *kernels.Matrix {
	if m := s.standIns[name]; m != nil {
		return m
	}
	if len(s.shared) < rows*cols {
		s.shared = make([]float32, rows*cols)
	}
	m := kernels.NewMatrix(rows, cols, s.shared[:rows*cols])
	s.names[m], s.standIns[name] = name, m
	return m
}

// resolve returns the matrix an op with weights w runs with: w itself, or
// for a stand-in the matrix read from src (and passed through record). On
// an error it returns nil and keeps the error for Err.
func (s *stream) resolve(w *kernels.Matrix, fill func(*gram)) *kernels.Matrix {
	s.mu.Lock()
	name, ok := s.names[w]
	s.mu.Unlock()
	if !ok {
		return w
	}
	m, err := s.src.Matrix(name, w.Rows, w.Cols)
	if err == nil && s.record != nil {
		m, err = s.record(name, m, fill)
	}
	if err != nil {
		s.mu.Lock()
		if s.err == nil {
			s.err = fmt.Errorf("quantize: %s: %w", name, err)
		}
		s.mu.Unlock()
		return nil
	}
	return m
}

// Err returns the first error reading a streamed matrix (the backend's ops
// return none); the outputs of a model run since are not valid.
func (s *stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *stream) Linear(dst, x []float32, m int, w *kernels.Matrix, bias []float32) {
	use := s.resolve(w, func(g *gram) { g.add(s.Backend, x, m) })
	if use == nil {
		clear(dst[:m*w.Rows])
		return
	}
	s.Backend.Linear(dst, x, m, use, bias)
	use.Prepared = nil
}

func (s *stream) Conv2D(dst, src []float32, c kernels.ConvShape, w *kernels.Matrix, bias []float32) {
	use := s.resolve(w, func(g *gram) {
		oh, ow := c.OutSize()
		stride := (oh*ow + maxConvRows - 1) / maxConvRows
		for i := 0; i < c.N; i++ {
			x, n := im2col(src, c, i, stride)
			g.add(s.Backend, x, n)
		}
	})
	if use == nil {
		oh, ow := c.OutSize()
		clear(dst[:c.N*oh*ow*c.OutC])
		return
	}
	s.Backend.Conv2D(dst, src, c, use, bias)
	use.Prepared = nil
}

// Streamed is a model whose float32 matrices are read from its weights
// each time they are used (see Stream).
type Streamed struct {
	*clip.Model
	s *stream
}

// Stream builds the model of w (config cfg) to run on backend b without
// holding its float32 matrices: each is read from w when an op multiplies
// by it, and dropped after the op, as are the backend's prepared forms of
// all matrices (w's int8 and q4 matrices are used as w hands them out).
// The token table, which the model reads by row, is held. Reading a
// matrix again on every use costs a pass over w per forward; what it saves
// is memory: a converter can run the float32 model of a checkpoint much
// larger than the memory it may use. Check Err after running it.
func Stream(cfg clip.Config, w clip.Weights, b kernels.Backend) (*Streamed, error) {
	s := newStream(b, w)
	m, err := clip.Build(cfg, s.weights(), s)
	if err != nil {
		return nil, err
	}
	m.OneTextBatch = true // length groups would read every matrix once per group
	return &Streamed{Model: m, s: s}, nil
}

// Err returns the first error reading a matrix while the model ran.
func (m *Streamed) Err() error { return m.s.Err() }
