package shards

import (
	"errors"
	"fmt"
	"math"

	"github.com/clipwasm/clipwasm/internal/half"
	"github.com/clipwasm/clipwasm/kernels"
)

// Source is one tensor for Write: its engine-layout name and shape (see
// clip.Weights), its kind, and a function computing its values, called once.
type Source struct {
	Name    string
	Shape   []int
	Kind    Kind
	Float32 func() ([]float32, error)
	// RowScaled, when set, gives a matrix's values factored as
	// base[r, c]·scale[r] (a BatchNorm folded into a convolution): an f16
	// bundle stores base in binary16 and scale in float32 when that gives
	// Float32's values back bit for bit.
	RowScaled func() (base, scale []float32, err error)
}

// F16Policy decides, under f16, how a matrix whose values binary16 cannot
// hold exactly (even row-scaled, see Source.RowScaled) is stored.
type F16Policy interface {
	// KeepF32 returns why the named matrix is kept f32, or "" to store it
	// rounded to binary16.
	KeepF32(name string) string
}

// encoded is a tensor in its stored form: the manifest entry (without
// parts), its geometry, and its value and scale bytes, rows in order.
type encoded struct {
	entry        TensorEntry
	layout       layout
	data, scales []byte
	relError     float64
}

// Quantizer chooses how Write stores each matrix when the requested scheme
// is int8 or q4. Write's own, when Options.Quantizer is nil, is Rounding.
type Quantizer interface {
	// Quantize returns the stored form of one matrix: int8, q4, or f32 (a
	// kernels.SchemeF32 Matrix), and why its scheme differs from
	// m.Scheme ("" when it does not). The scales of an int8 or q4 result
	// must already be at the precision m.RoundScale gives, as they are
	// stored in it.
	Quantize(m MatrixRequest) (q *kernels.Matrix, why string, err error)
}

// MatrixRequest is one matrix for a Quantizer.
type MatrixRequest struct {
	Name       string
	Rows, Cols int
	Values     []float32 // row-major [Rows, Cols]
	Scheme     Scheme    // the requested scheme: Int8 or Q4
	// RoundScale rounds a scale to the precision the bundle stores scales
	// in (Options.ScaleDType).
	RoundScale func(float32) float32
}

// Rounding is the Quantizer that needs no calibration: each value rounds
// to its nearest code, q4 blocks take the scale that minimises their
// squared error (kernels.Q4Scale: 8.1% relative error on Gaussian weights,
// against 8.6% for ggml's peak/−8), int8 rows max|row|/127. A q4 matrix
// whose columns do not divide into blocks is stored int8.
type Rounding struct{}

// Quantize implements Quantizer.
func (Rounding) Quantize(m MatrixRequest) (*kernels.Matrix, string, error) {
	if m.Scheme == Q4 {
		if m.Cols%kernels.Q4Block == 0 {
			q, err := kernels.QuantizeQ4Search(m.Rows, m.Cols, m.Values, m.RoundScale)
			return q, "", err
		}
		return QuantizeInt8(m.Rows, m.Cols, m.Values, m.RoundScale), Q4Fallback(m.Cols), nil
	}
	return QuantizeInt8(m.Rows, m.Cols, m.Values, m.RoundScale), "", nil
}

// Q4Fallback is why a q4 matrix with cols columns is stored int8.
func Q4Fallback(cols int) string {
	return fmt.Sprintf("q4 needs columns divisible by %d, this matrix has %d: stored int8", kernels.Q4Block, cols)
}

// QuantizeInt8 is kernels.QuantizeInt8 with each row's scale rounded (by
// round, which may be nil) before the values are, so that the codes fit
// the scale a reader gets back.
func QuantizeInt8(rows, cols int, w []float32, round func(float32) float32) *kernels.Matrix {
	m := kernels.QuantizeInt8(rows, cols, w)
	if round == nil {
		return m
	}
	for r, s := range m.Scales {
		rs := round(s)
		if rs == s {
			continue
		}
		m.Scales[r] = rs
		for c, v := range w[r*cols : (r+1)*cols] {
			var q int8 // a scale too small for the stored precision stores zeros
			if rs != 0 {
				q = int8(max(-127, min(127, math.Round(float64(v/rs)))))
			}
			m.Q8[r*cols+c] = q
		}
	}
	return m
}

// encode stores vals, the values of src, per the options: matrices in the
// scheme the quantizer gives under int8 and q4, else in the requested one;
// vectors f32. It measures the relative error of what a reader will get
// back.
func encode(src Source, vals []float32, opt Options) (*encoded, error) {
	rows, cols, err := rowsCols(src.Shape)
	if err != nil {
		return nil, err
	}
	if len(vals) != rows*cols {
		return nil, fmt.Errorf("%d values for shape %v", len(vals), src.Shape)
	}
	t := TensorEntry{Name: src.Name, Shape: append([]int{}, src.Shape...), Kind: src.Kind, Scheme: F32}
	var m *kernels.Matrix                   // the quantized matrix, for int8 and q4
	half, rowScales := vals, []float32(nil) // what f16 stores: values, and a row-scaled matrix's scales
	switch src.Kind {
	case KindMatrix:
		t.Scheme = opt.Quant
		if t.Scheme == F16 {
			if half, rowScales, t.Fallback, err = f16Form(src, vals, opt.F16Policy); err != nil {
				return nil, err
			}
			if t.Fallback != "" {
				t.Scheme = F32
			}
			break
		}
		if !t.Scheme.quantized() {
			break
		}
		q := opt.Quantizer
		if q == nil {
			q = Rounding{}
		}
		m, t.Fallback, err = q.Quantize(MatrixRequest{Name: src.Name, Rows: rows, Cols: cols, Values: vals, Scheme: opt.Quant, RoundScale: opt.RoundScale})
		if err != nil {
			return nil, err
		}
		if t.Scheme, err = schemeOf(m, rows, cols); err != nil {
			return nil, fmt.Errorf("quantizer: %w", err)
		}
		if t.Scheme == F32 {
			vals, m = m.F32, nil
			break
		}
		for _, sc := range m.Scales {
			if opt.RoundScale(sc) != sc {
				return nil, fmt.Errorf("quantizer: scale %g is not at the precision of %s scales", sc, opt.StoredScaleDType())
			}
		}
		t.Activations = m.Activations
	case KindVector:
	default:
		return nil, fmt.Errorf("unknown kind %q", src.Kind)
	}
	t.DType = t.Scheme.dtype()
	e := &encoded{entry: t}
	switch t.Scheme {
	case F32:
		e.data = appendF32(make([]byte, 0, 4*len(vals)), vals)
	case F16:
		e.data = appendF16(make([]byte, 0, 2*len(half)), half)
		if rowScales != nil {
			e.entry.ScaleDType = DTypeF32
			e.scales = appendF32(make([]byte, 0, 4*len(rowScales)), rowScales)
		}
	case Int8:
		e.data = make([]byte, len(m.Q8))
		for i, q := range m.Q8 {
			e.data[i] = byte(q)
		}
	case Q4:
		e.data = m.Q4
	}
	if m != nil {
		e.entry.ScaleDType = opt.StoredScaleDType()
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

// f16Form decides how an f16 bundle stores the matrix vals of src: the
// values themselves when binary16 holds them exactly; src's row-scaled
// factors (base in binary16, scales in float32) when binary16 holds base
// exactly and base·scale gives vals back bit for bit; else rounded to
// binary16, unless policy keeps the matrix f32, with why saying so.
func f16Form(src Source, vals []float32, policy F16Policy) (half, rowScales []float32, why string, err error) {
	if F16Exact(vals) {
		return vals, nil, "", nil
	}
	if src.RowScaled != nil {
		base, scale, err := src.RowScaled()
		if err != nil {
			return nil, nil, "", err
		}
		if rowScaledExact(base, scale, vals) {
			return base, scale, "", nil
		}
	}
	if policy != nil {
		why = policy.KeepF32(src.Name)
	}
	return vals, nil, why, nil
}

// F16Exact reports whether binary16 holds every value of vals exactly.
func F16Exact(vals []float32) bool {
	for _, v := range vals {
		if half.FromF16(half.ToF16(v)) != v && v == v { // NaN stays NaN
			return false
		}
	}
	return true
}

// rowScaledExact reports whether base is binary16-exact and its rows
// times scale, in float32 as a reader widens them, are vals bit for bit.
func rowScaledExact(base, scale, vals []float32) bool {
	if len(base) != len(vals) || len(scale) == 0 || len(vals)%len(scale) != 0 {
		return false
	}
	cols := len(vals) / len(scale)
	for i, b := range base {
		h := half.FromF16(half.ToF16(b))
		if h != b || math.Float32bits(h*scale[i/cols]) != math.Float32bits(vals[i]) {
			return false
		}
	}
	return true
}

// schemeOf returns the scheme that stores m, after checking that m is a
// valid [rows, cols] matrix.
func schemeOf(m *kernels.Matrix, rows, cols int) (Scheme, error) {
	if m == nil {
		return "", errors.New("no matrix")
	}
	if m.Rows != rows || m.Cols != cols {
		return "", fmt.Errorf("a [%d, %d] matrix for [%d, %d]", m.Rows, m.Cols, rows, cols)
	}
	if err := m.Validate(); err != nil {
		return "", err
	}
	switch m.Scheme {
	case kernels.SchemeInt8:
		return Int8, nil
	case kernels.SchemeQ4:
		return Q4, nil
	}
	return F32, nil
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
