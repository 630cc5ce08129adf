package shards

import (
	"encoding/binary"
	"math"

	"github.com/clipwasm/clipwasm/internal/half"
)

// appendF16 appends the binary16 little-endian encoding of vals to dst.
func appendF16(dst []byte, vals []float32) []byte {
	for _, v := range vals {
		dst = binary.LittleEndian.AppendUint16(dst, half.ToF16(v))
	}
	return dst
}

// appendF32 appends the little-endian encoding of vals to dst.
func appendF32(dst []byte, vals []float32) []byte {
	for _, v := range vals {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
	}
	return dst
}

// RoundF16 rounds f to the nearest binary16 value, as an f16 bundle
// stores it, and widens it back.
func RoundF16(f float32) float32 { return half.FromF16(half.ToF16(f)) }
