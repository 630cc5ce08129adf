package checkpoint

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/clipwasm/clipwasm/internal/half"
)

// TestF16Exhaustive checks every binary16 bit pattern against the
// definition of the format.
func TestF16Exhaustive(t *testing.T) {
	for h := range 1 << 16 {
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		exp, mant := (h>>10)&0x1f, float64(h&0x3ff)
		var want float64
		switch exp {
		case 0:
			want = sign * mant * math.Pow(2, -24)
		case 0x1f:
			want = math.Inf(int(sign))
			if mant != 0 {
				want = math.NaN()
			}
		default:
			want = sign * (1 + mant/1024) * math.Pow(2, float64(exp-15))
		}
		got := float64(half.FromF16(uint16(h)))
		ok := math.IsNaN(got) && math.IsNaN(want) || got == want && math.Signbit(got) == math.Signbit(want)
		if !ok {
			t.Fatalf("f16 %#04x: got %v, want %v", h, got, want)
		}
	}
}

func TestNumelAndClose(t *testing.T) {
	for _, tc := range []struct {
		shape []int
		n     int
	}{{nil, 1}, {[]int{}, 1}, {[]int{3, 0, 2}, 0}, {[]int{2, 3, 4}, 24}} {
		if got := (&Tensor{Shape: tc.shape}).Numel(); got != tc.n {
			t.Errorf("Numel(%v) = %d, want %d", tc.shape, got, tc.n)
		}
	}
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := WriteSafetensors(path, []*Tensor{{Name: "a", DType: F32, Shape: []int{1}, data: f32Bytes(1)}}, nil); err != nil {
		t.Fatal(err)
	}
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
