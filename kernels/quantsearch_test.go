package kernels

import (
	"math"
	"testing"
)

// sqErr is Σ(a−b)².
func sqErr(a, b []float32) float64 {
	var e float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		e += d * d
	}
	return e
}

// halfRound rounds to binary16's 11 significant bits (normal range), as a
// bundle with F16 scales stores them.
func halfRound(s float32) float32 {
	b := math.Float32bits(s)
	b += 0xfff + (b>>13)&1
	return math.Float32frombits(b &^ 0x1fff)
}

// TestQuantizeQ4Search checks that the searched scales store Gaussian
// weights with less error than ggml's, never more in any block, and that
// each scale is stored exactly at the precision it was chosen for.
func TestQuantizeQ4Search(t *testing.T) {
	const rows, cols = 64, 768
	w := randMatrix(rows, cols, 11)
	peak, _ := QuantizeQ4(rows, cols, w)
	for _, round := range []func(float32) float32{nil, halfRound} {
		m, err := QuantizeQ4Search(rows, cols, w, round)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Validate(); err != nil {
			t.Fatal(err)
		}
		got, base := m.Dequantize(), peak.Dequantize()
		for b, s := range m.Scales {
			if round != nil && round(s) != s {
				t.Fatalf("block %d: scale %g is not at the stored precision", b, s)
			}
			blk := w[b*Q4Block : (b+1)*Q4Block]
			// ggml's scale rounded the same way is one of the candidates.
			ggml := make([]float32, Q4Block)
			ps := peak.Scales[b]
			if round != nil {
				ps = round(ps)
			}
			for j, v := range blk {
				ggml[j] = ps * float32(int(Q4Code(v, ps))-8)
			}
			if e, g := sqErr(got[b*Q4Block:(b+1)*Q4Block], blk), sqErr(ggml, blk); e > g*(1+1e-6) {
				t.Fatalf("block %d: error %g above ggml's %g", b, e, g)
			}
		}
		rel := func(d []float32) float64 { return math.Sqrt(sqErr(d, w) / sqErr(w, make([]float32, len(w)))) }
		t.Logf("relative error: searched %.4f, ggml %.4f", rel(got), rel(base))
		if rel(got) > 0.083 || rel(base) < 0.085 {
			t.Errorf("relative error searched %.4f (want ≤ 0.083), ggml %.4f (≈ 0.086)", rel(got), rel(base))
		}
	}
	if _, err := QuantizeQ4Search(1, 48, make([]float32, 48), nil); err == nil {
		t.Error("48 columns: no error")
	}
}

func TestQ4Code(t *testing.T) {
	for _, c := range []struct {
		v, s float32
		want uint8
	}{
		{0, 1, 8}, {3.4, 1, 11}, {-3.6, 1, 4}, {100, 1, 15}, {-100, 1, 0}, {7, 0, 8}, {-2, -0.5, 12},
	} {
		if got := Q4Code(c.v, c.s); got != c.want {
			t.Errorf("Q4Code(%g, %g) = %d, want %d", c.v, c.s, got, c.want)
		}
	}
	if s := Q4Scale(make([]float32, Q4Block), nil); s != 0 {
		t.Errorf("zero block: scale %g", s)
	}
}

// TestNewQ4 packs codes and reads them back through Dequantize, the
// kernels' own decoding.
func TestNewQ4(t *testing.T) {
	const rows, cols = 3, 64
	codes := make([]uint8, rows*cols)
	scales := make([]float32, rows*cols/Q4Block)
	for i := range codes {
		codes[i] = uint8((i * 7) % 16)
	}
	for b := range scales {
		scales[b] = 0.25 * float32(b+1)
	}
	m, err := NewQ4(rows, cols, codes, scales)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	for i, v := range m.Dequantize() {
		if want := scales[i/Q4Block] * float32(int(codes[i])-8); v != want {
			t.Fatalf("value %d: %g, want %g", i, v, want)
		}
	}
	codes[5] = 16
	if _, err := NewQ4(rows, cols, codes, scales); err == nil {
		t.Error("code 16: no error")
	}
	if _, err := NewQ4(rows, cols, codes[:10], scales); err == nil {
		t.Error("short codes: no error")
	}
}
