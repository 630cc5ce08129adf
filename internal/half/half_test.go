package half

import (
	"math"
	"testing"
)

// widen is an independent binary16 decoder: ±mantissa·2^exponent.
func widen(h uint16) float32 {
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	var v float64
	switch exp {
	case 0x1f:
		if mant != 0 {
			return float32(math.NaN())
		}
		v = math.Inf(1)
	case 0:
		v = math.Ldexp(mant, -24)
	default:
		v = math.Ldexp(1024+mant, exp-25)
	}
	if h&0x8000 != 0 {
		v = -v
	}
	return float32(v)
}

// TestToF16 checks rounding against values numpy's float16 gives.
func TestToF16(t *testing.T) {
	for _, tc := range []struct {
		in   float32
		want uint16
	}{
		{0, 0}, {float32(math.Copysign(0, -1)), 0x8000}, {1, 0x3c00}, {-2, 0xc000},
		{65504, 0x7bff}, {65520, 0x7c00}, {1e10, 0x7c00}, {float32(math.Inf(-1)), 0xfc00},
		{0.1, 0x2e66}, {1.0009765625, 0x3c01}, {1.00048828125, 0x3c00}, {1.00146484375, 0x3c02}, // ties to even
		{6.103515625e-05, 0x0400}, {5.960464477539063e-08, 0x0001}, {2.9802322387695312e-08, 0}, {3e-08, 0x0001},
		{6.097555160522461e-05, 0x03ff}, {1e-10, 0},
	} {
		if got := ToF16(tc.in); got != tc.want {
			t.Errorf("ToF16(%g) = %#04x, want %#04x", tc.in, got, tc.want)
		}
		if back := widen(tc.want); tc.want&0x7c00 != 0x7c00 && math.Abs(float64(back-tc.in)) > math.Abs(float64(tc.in))*1e-3+6e-8 {
			t.Errorf("widen(%#04x) = %g, far from %g", tc.want, back, tc.in)
		}
	}
	if got := ToF16(float32(math.NaN())); got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
		t.Errorf("NaN became %#04x", got)
	}
}

// TestFromF16 checks FromF16 against the decoder above on every binary16
// value, and that ToF16 takes each one back.
func TestFromF16(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		got, want := FromF16(uint16(h)), widen(uint16(h))
		if math.IsNaN(float64(want)) {
			if !math.IsNaN(float64(got)) {
				t.Fatalf("FromF16(%#04x) = %g, want NaN", h, got)
			}
			continue
		}
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("FromF16(%#04x) = %g, want %g", h, got, want)
		}
		if back := ToF16(got); back != uint16(h) {
			t.Fatalf("ToF16(FromF16(%#04x)) = %#04x", h, back)
		}
	}
}
