// Package half converts between float32 and IEEE binary16 (f16), the one
// place the checkpoint readers and the shard format do it.
package half

import "math"

// ToF16 rounds a float32 to the nearest IEEE binary16 value, ties to even,
// as numpy's astype(float16) does: overflow becomes ±Inf, tiny values
// become subnormals or ±0, and NaN stays NaN.
func ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	switch {
	case exp == 0xff: // Inf or NaN (keep a quiet-NaN bit so NaN stays NaN)
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp-127 > 15: // beyond the largest binary16 exponent
		return sign | 0x7c00
	case exp-127 >= -14: // normal in binary16
		h := uint32(exp-127+15)<<10 | mant>>13
		// Round to nearest even on the 13 dropped bits; a carry out of the
		// mantissa correctly bumps the exponent (up to Inf).
		rest := mant & 0x1fff
		if rest > 0x1000 || rest == 0x1000 && h&1 == 1 {
			h++
		}
		return sign | uint16(h)
	case exp-127 < -25: // below half the smallest subnormal: ±0
		return sign
	}
	// Subnormal in binary16: value = m × 2^-24 with m < 1024.
	m := mant | 0x800000 // implicit leading bit
	shift := uint(-exp + 127 - 14 + 13)
	h := m >> shift
	rest := m & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rest > half || rest == half && h&1 == 1 {
		h++
	}
	return sign | uint16(h)
}

// FromF16 widens a binary16 value to float32 exactly (the inverse of
// ToF16 on the values it returns).
func FromF16(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf and NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0: // zero and subnormals: mant × 2^-24, exact in binary32
		v := float32(mant) / (1 << 24)
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}
