package kernels

import (
	"fmt"
	"math"
)

// QuantizeInt8 quantizes w [rows, cols] symmetrically per row (output
// channel): scale = max|row|/127, q = round(w/scale).
func QuantizeInt8(rows, cols int, w []float32) *Matrix {
	m := &Matrix{Rows: rows, Cols: cols, Scheme: SchemeInt8, Q8: make([]int8, rows*cols), Scales: make([]float32, rows)}
	for r := 0; r < rows; r++ {
		row := w[r*cols : (r+1)*cols]
		var amax float32
		for _, v := range row {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		if amax == 0 {
			continue
		}
		scale := amax / 127
		m.Scales[r] = scale
		inv := 1 / scale
		q := m.Q8[r*cols : (r+1)*cols]
		for c, v := range row {
			q[c] = int8(max(-127, min(127, math.Round(float64(v*inv)))))
		}
	}
	return m
}

// QuantizeQ4 quantizes w [rows, cols] into q4 blocks of 32 along each row;
// cols must be a multiple of 32. Each block's scale is its value of largest
// magnitude divided by −8 (ggml's q4_0), so that value is exact.
func QuantizeQ4(rows, cols int, w []float32) (*Matrix, error) {
	if cols%Q4Block != 0 {
		return nil, fmt.Errorf("kernels: q4 needs columns divisible by %d, got %d", Q4Block, cols)
	}
	nb := rows * cols / Q4Block
	m := &Matrix{Rows: rows, Cols: cols, Scheme: SchemeQ4, Q4: make([]byte, nb*Q4Block/2), Scales: make([]float32, nb)}
	for b := 0; b < nb; b++ {
		blk := w[b*Q4Block : (b+1)*Q4Block]
		var peak float32
		for _, v := range blk {
			if math.Abs(float64(v)) > math.Abs(float64(peak)) {
				peak = v
			}
		}
		scale := peak / -8
		m.Scales[b] = scale
		var inv float32
		if scale != 0 {
			inv = 1 / scale
		}
		out := m.Q4[b*Q4Block/2 : (b+1)*Q4Block/2]
		for j := 0; j < Q4Block/2; j++ {
			lo := byte(max(0, min(15, math.Round(float64(blk[j]*inv))+8)))
			hi := byte(max(0, min(15, math.Round(float64(blk[j+Q4Block/2]*inv))+8)))
			out[j] = lo | hi<<4
		}
	}
	return m, nil
}

// Row writes row r of the matrix, dequantized, into dst (len Cols). Token
// embeddings use it to look up one row of a quantized table.
func (m *Matrix) Row(r int, dst []float32) {
	c := m.Cols
	switch m.Scheme {
	case SchemeInt8:
		s := m.Scales[r]
		for j, q := range m.Q8[r*c : (r+1)*c] {
			dst[j] = s * float32(q)
		}
	case SchemeQ4:
		for b := 0; b < c/Q4Block; b++ {
			blk := r*c/Q4Block + b
			s := m.Scales[blk]
			q := m.Q4[blk*Q4Block/2 : (blk+1)*Q4Block/2]
			d := dst[b*Q4Block : (b+1)*Q4Block]
			for j, v := range q {
				d[j] = s * float32(int(v&15)-8)
				d[j+Q4Block/2] = s * float32(int(v>>4)-8)
			}
		}
	default:
		copy(dst, m.F32[r*c:(r+1)*c])
	}
}

// Dequantize returns the matrix as float32 [Rows, Cols]: the data itself for
// SchemeF32, a new slice otherwise.
func (m *Matrix) Dequantize() []float32 {
	if m.Scheme == SchemeF32 || m.Scheme == "" {
		return m.F32
	}
	out := make([]float32, m.Rows*m.Cols)
	for r := 0; r < m.Rows; r++ {
		m.Row(r, out[r*m.Cols:(r+1)*m.Cols])
	}
	return out
}

// Validate checks that the storage matches the shape and scheme, so a
// corrupt bundle fails at load time rather than inside a kernel.
func (m *Matrix) Validate() error {
	n := m.Rows * m.Cols
	if m.Rows <= 0 || m.Cols <= 0 {
		return fmt.Errorf("kernels: matrix shape [%d, %d] not positive", m.Rows, m.Cols)
	}
	switch m.Scheme {
	case SchemeF32, "":
		if len(m.F32) != n {
			return fmt.Errorf("kernels: f32 matrix [%d, %d] has %d values", m.Rows, m.Cols, len(m.F32))
		}
	case SchemeInt8:
		if len(m.Q8) != n || len(m.Scales) != m.Rows {
			return fmt.Errorf("kernels: int8 matrix [%d, %d] has %d values and %d scales", m.Rows, m.Cols, len(m.Q8), len(m.Scales))
		}
	case SchemeQ4:
		if m.Cols%Q4Block != 0 || len(m.Q4) != n/2 || len(m.Scales) != n/Q4Block {
			return fmt.Errorf("kernels: q4 matrix [%d, %d] has %d bytes and %d scales", m.Rows, m.Cols, len(m.Q4), len(m.Scales))
		}
	default:
		return fmt.Errorf("kernels: unknown weight scheme %q", m.Scheme)
	}
	return nil
}
