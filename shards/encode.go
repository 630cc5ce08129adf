package shards

import (
	"fmt"
	"math"

	"github.com/clipwasm/clipwasm/kernels"
)

// Source is one tensor for Write: its engine-layout name and shape (see
// clip.Weights), its kind, and a function computing its values, called once.
type Source struct {
	Name    string
	Shape   []int
	Kind    Kind
	Float32 func() ([]float32, error)
}

// encoded is a tensor in its stored form: the manifest entry (without
// parts), its geometry, and its value and scale bytes, rows in order.
type encoded struct {
	entry        TensorEntry
	layout       layout
	data, scales []byte
	relError     float64
}

// encode stores vals, the values of src, per the options: matrices in the
// requested scheme (q4 falling back to int8 when the columns do not divide
// into blocks), vectors f32. It measures the relative error of what a
// reader will get back.
func encode(src Source, vals []float32, opt Options) (*encoded, error) {
	rows, cols, err := rowsCols(src.Shape)
	if err != nil {
		return nil, err
	}
	if len(vals) != rows*cols {
		return nil, fmt.Errorf("%d values for shape %v", len(vals), src.Shape)
	}
	t := TensorEntry{Name: src.Name, Shape: append([]int{}, src.Shape...), Kind: src.Kind, Scheme: F32}
	switch src.Kind {
	case KindMatrix:
		t.Scheme = opt.Quant
		if t.Scheme == Q4 && cols%kernels.Q4Block != 0 {
			t.Scheme = Int8
			t.Fallback = fmt.Sprintf("q4 needs columns divisible by %d, this matrix has %d: stored int8", kernels.Q4Block, cols)
		}
	case KindVector:
	default:
		return nil, fmt.Errorf("unknown kind %q", src.Kind)
	}
	t.DType = t.Scheme.dtype()
	e := &encoded{entry: t}
	var m *kernels.Matrix // the quantized matrix, for int8 and q4
	switch t.Scheme {
	case F32:
		e.data = appendF32(make([]byte, 0, 4*len(vals)), vals)
	case F16:
		e.data = appendF16(make([]byte, 0, 2*len(vals)), vals)
	case Int8:
		m = kernels.QuantizeInt8(rows, cols, vals)
		e.data = make([]byte, len(m.Q8))
		for i, q := range m.Q8 {
			e.data[i] = byte(q)
		}
	case Q4:
		if m, err = kernels.QuantizeQ4(rows, cols, vals); err != nil {
			return nil, err
		}
		e.data = m.Q4
	}
	if m != nil {
		e.entry.ScaleDType = opt.scaleDType()
		if e.entry.ScaleDType == DTypeF16 {
			e.scales = appendF16(make([]byte, 0, 2*len(m.Scales)), m.Scales)
		} else {
			e.scales = appendF32(make([]byte, 0, 4*len(m.Scales)), m.Scales)
		}
	}
	if e.layout, err = layoutOf(t.Shape, t.Scheme, t.DType, e.entry.ScaleDType); err != nil {
		return nil, err
	}
	if e.relError, err = e.measure(vals, rows, cols); err != nil {
		return nil, err
	}
	return e, nil
}

// measure returns ‖stored − vals‖₂ / ‖vals‖₂ (0 when both are zero), where
// stored is what the reader decodes from e's bytes, row by row so that no
// second full copy of a large table is made.
func (e *encoded) measure(vals []float32, rows, cols int) (float64, error) {
	if e.entry.Scheme == F32 {
		return 0, nil
	}
	// Decode in blocks of rows through the reader's own code.
	const block = 256
	var diff, norm float64
	for r := 0; r < rows; r += block {
		n := min(block, rows-r)
		m, err := matrixOf(&e.entry, e.data[int64(r)*e.layout.rowBytes:int64(r+n)*e.layout.rowBytes],
			e.scales[int64(r)*e.layout.rowScales:int64(r+n)*e.layout.rowScales], n)
		if err != nil {
			return 0, err
		}
		got := m.Dequantize()
		for i, v := range vals[r*cols : (r+n)*cols] {
			d := float64(got[i]) - float64(v)
			diff += d * d
			norm += float64(v) * float64(v)
		}
	}
	if norm == 0 {
		if diff == 0 {
			return 0, nil
		}
		return math.Inf(1), nil
	}
	return math.Sqrt(diff / norm), nil
}
