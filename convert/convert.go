// Package convert turns checkpoints — OpenAI .pt files, Hugging Face and
// OpenCLIP folders, plain safetensors — into the engine layout that
// clip.Build runs (see clip.Weights): it infers the architecture as OpenAI's
// build_model does, maps Hugging Face names onto OpenAI's, and does the
// layout work (transposes, q/k/v stacking, BatchNorm folding) with
// gorgonia.org/tensor. Tensors are computed on demand, one at a time, so a
// converter can stream a large checkpoint without holding every copy.
//
// The browser build never imports this package: it loads bundles that are
// already in the engine layout (package shards).
package convert

import (
	"fmt"
	"slices"

	"github.com/clipwasm/clipwasm/checkpoint"
	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/kernels"
)

// Kind says how a tensor may be stored.
type Kind int

const (
	// Vector is a bias, a norm's parameters, an embedding added to the
	// input, or logit_scale: stored f32 (or f16).
	Vector Kind = iota
	// Matrix is a GEMM weight or the token-embedding table, [rows, cols]:
	// quantizable.
	Matrix
)

// Tensor is one engine-layout tensor, computed on demand.
type Tensor struct {
	Name  string
	Shape []int
	Kind  Kind

	compute   func() ([]float32, error)
	rowScaled func() (base, scale []float32, err error)
}

// RowScaled returns, for a tensor computed as a matrix times a float32
// scale per row (a convolution with its BatchNorm folded in), a function
// computing the two factors, laid out as the tensor; else nil. The tensor's
// values are base[r, c]·scale[r] in float32, bit for bit.
func (t *Tensor) RowScaled() func() (base, scale []float32, err error) {
	if t.rowScaled == nil {
		return nil
	}
	return func() ([]float32, []float32, error) {
		base, scale, err := t.rowScaled()
		if err != nil {
			return nil, nil, fmt.Errorf("convert: %s: %w", t.Name, err)
		}
		return base, scale, nil
	}
}

// Float32 computes the tensor. Each call does the work again and returns a
// fresh slice, so a caller that streams tensors holds one at a time.
func (t *Tensor) Float32() ([]float32, error) {
	d, err := t.compute()
	if err != nil {
		return nil, fmt.Errorf("convert: %s: %w", t.Name, err)
	}
	if len(d) != numel(t.Shape) {
		return nil, fmt.Errorf("convert: %s: %d values for shape %v", t.Name, len(d), t.Shape)
	}
	return d, nil
}

// Model is a checkpoint in the engine layout. It implements clip.Weights.
type Model struct {
	Config  clip.Config
	Tensors []*Tensor // in a fixed order: text tower, then image tower

	byName map[string]*Tensor
	ck     *checkpoint.Checkpoint
}

// Open reads a checkpoint file or folder of any supported format.
func Open(path string) (*Model, error) {
	ck, err := checkpoint.Open(path)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	m, err := FromCheckpoint(ck)
	if err != nil {
		ck.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Load opens a checkpoint and builds the model on backend b. The model holds
// its weights in memory, so the checkpoint is closed before returning.
func Load(path string, b kernels.Backend) (*clip.Model, error) {
	m, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	model, err := clip.Build(m.Config, m, b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return model, nil
}

// Close releases the checkpoint's files. Tensors computed before stay valid.
func (m *Model) Close() error {
	if m.ck == nil {
		return nil
	}
	return m.ck.Close()
}

// FromCheckpoint maps an opened checkpoint onto the engine layout. The
// architecture comes from the checkpoint's config when it has one (Hugging
// Face config.json, open_clip_config.json) and otherwise from the tensor
// shapes. The Model takes ownership of ck.
func FromCheckpoint(ck *checkpoint.Checkpoint) (*Model, error) {
	var (
		sd  stateDict
		cfg clip.Config
		err error
	)
	if ck.Config != nil {
		sd, cfg, err = fromHuggingFace(ck)
	} else {
		sd = stateDict{}
		for name, t := range ck.Tensors {
			sd[name] = source{t.Shape, t.Float32}
		}
		cfg, err = InferConfig(sd)
		if err == nil && ck.OpenCLIPConfig != nil {
			err = applyOpenCLIPConfig(&cfg, ck.OpenCLIPConfig)
		}
	}
	if err != nil {
		return nil, err
	}
	m, err := engineLayout(sd, cfg)
	if err != nil {
		return nil, err
	}
	m.ck = ck
	return m, nil
}

// FromTensors maps float32 tensors in OpenAI's state_dict naming onto the
// engine layout, inferring the architecture as build_model does; activation
// sets the MLP activation (OpenAI's weights use QuickGELU).
func FromTensors(tensors map[string]clip.Tensor, activation kernels.Activation) (*Model, error) {
	sd := stateDict{}
	for name, t := range tensors {
		sd[name] = source{t.Shape, func() ([]float32, error) { return t.Data, nil }}
	}
	cfg, err := InferConfig(sd)
	if err != nil {
		return nil, err
	}
	cfg.Activation = activation
	return engineLayout(sd, cfg)
}

// Tensor implements clip.Weights.
func (m *Model) Tensor(name string, shape ...int) ([]float32, error) {
	t, err := m.lookup(name, shape)
	if err != nil {
		return nil, err
	}
	return t.Float32()
}

// Matrix implements clip.Weights: float32 matrices, as checkpoints hold them.
func (m *Model) Matrix(name string, rows, cols int) (*kernels.Matrix, error) {
	t, err := m.lookup(name, []int{rows, cols})
	if err != nil {
		return nil, err
	}
	d, err := t.Float32()
	if err != nil {
		return nil, err
	}
	return kernels.NewMatrix(rows, cols, d), nil
}

func (m *Model) lookup(name string, shape []int) (*Tensor, error) {
	t, ok := m.byName[name]
	if !ok {
		return nil, fmt.Errorf("missing tensor %q", name)
	}
	if !slices.Equal(t.Shape, shape) {
		return nil, fmt.Errorf("tensor %q has shape %v, want %v", name, t.Shape, shape)
	}
	return t, nil
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
