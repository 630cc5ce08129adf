package checkpoint

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/clipwasm/clipwasm/internal/half"
)

// DType names a tensor element type with the safetensors spelling.
type DType string

// The element types a checkpoint may hold.
const (
	F32  DType = "F32"  // IEEE binary32
	F16  DType = "F16"  // IEEE binary16
	BF16 DType = "BF16" // bfloat16: the top half of a binary32
	F64  DType = "F64"  // IEEE binary64
	I64  DType = "I64"  // signed 64-bit integer
	I32  DType = "I32"  // signed 32-bit integer
	U8   DType = "U8"   // unsigned byte
	I8   DType = "I8"   // signed byte (int8-quantized weights)
	BOOL DType = "BOOL" // one byte, 0 or 1
)

// Size returns the size of one element in bytes, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16:
		return 2
	case U8, I8, BOOL:
		return 1
	}
	return 0
}

// maxRank bounds the number of dimensions (PyTorch's own limit is 64), so
// that hostile headers cannot make us loop over absurd shapes.
const maxRank = 64

// maxElems bounds element counts and strides; real tensors are far smaller
// and it keeps every byte-size product inside int64.
const maxElems = 1 << 50

// Tensor is one named tensor: its dtype, its shape and its data as
// contiguous little-endian bytes in row-major order.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	data  []byte
}

// NewTensor makes a tensor over data (not copied); it fails unless data
// holds exactly numel(shape) elements of dtype.
func NewTensor(name string, dtype DType, shape []int, data []byte) (*Tensor, error) {
	if dtype.Size() == 0 {
		return nil, fmt.Errorf("tensor %q: unknown dtype %q", name, dtype)
	}
	n, err := numel(shape)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	if want := n * int64(dtype.Size()); int64(len(data)) != want {
		return nil, fmt.Errorf("tensor %q: %d bytes of data, want %d (%s %v)", name, len(data), want, dtype, shape)
	}
	return &Tensor{Name: name, DType: dtype, Shape: append([]int{}, shape...), data: data}, nil
}

// numel returns the element count of shape, rejecting negative dimensions
// and counts beyond maxElems.
func numel(shape []int) (int64, error) {
	if len(shape) > maxRank {
		return 0, fmt.Errorf("rank %d exceeds %d", len(shape), maxRank)
	}
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d != 0 && n > maxElems/int64(d) {
			return 0, fmt.Errorf("shape %v has more than 2^50 elements", shape)
		}
		n *= int64(d)
	}
	return n, nil
}

// Numel returns the number of elements (1 for a 0-d tensor).
func (t *Tensor) Numel() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Bytes returns the raw contiguous little-endian data. The slice may alias a
// read-only file mapping owned by the Checkpoint: do not modify it, and do
// not use it after Checkpoint.Close (copy it first if it must outlive that).
func (t *Tensor) Bytes() []byte { return t.data }

// Float32 returns a new slice with the values converted to float32. F64 and
// I64 values that float32 cannot hold exactly are rounded.
func (t *Tensor) Float32() ([]float32, error) {
	n := t.Numel()
	if size := t.DType.Size(); size == 0 || len(t.data) != n*size {
		return nil, fmt.Errorf("tensor %q: %d bytes do not hold %d %s elements", t.Name, len(t.data), n, t.DType)
	}
	out := make([]float32, n)
	b := t.data
	le := binary.LittleEndian
	switch t.DType {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = half.FromF16(le.Uint16(b[2*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(le.Uint16(b[2*i:])) << 16)
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(le.Uint64(b[8*i:])))
		}
	case I64:
		for i := range out {
			out[i] = float32(int64(le.Uint64(b[8*i:])))
		}
	case I32:
		for i := range out {
			out[i] = float32(int32(le.Uint32(b[4*i:])))
		}
	case U8, BOOL:
		for i := range out {
			out[i] = float32(b[i])
		}
	case I8:
		for i := range out {
			out[i] = float32(int8(b[i]))
		}
	}
	// The values are copied out: the file's pages need not stay resident.
	releasePages(t.data)
	return out, nil
}
