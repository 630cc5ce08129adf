package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

func randMatrix(rows, cols int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64())
	}
	return w
}

func maxErr(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

func TestQuantizeRoundTrip(t *testing.T) {
	for _, tc := range []struct{ rows, cols int }{{1, 32}, {3, 64}, {17, 96}, {64, 768}} {
		w := randMatrix(tc.rows, tc.cols, uint64(tc.rows*tc.cols))
		q8 := QuantizeInt8(tc.rows, tc.cols, w)
		if err := q8.Validate(); err != nil {
			t.Fatal(err)
		}
		// Error per element is at most half a step: max|row|/127/2.
		for r := 0; r < tc.rows; r++ {
			got := make([]float32, tc.cols)
			q8.Row(r, got)
			if e := maxErr(got, w[r*tc.cols:(r+1)*tc.cols]); e > float64(q8.Scales[r])/2*1.0001 {
				t.Errorf("int8 [%d,%d] row %d: error %g > half step %g", tc.rows, tc.cols, r, e, q8.Scales[r]/2)
			}
		}
		q4, err := QuantizeQ4(tc.rows, tc.cols, w)
		if err != nil {
			t.Fatal(err)
		}
		if err := q4.Validate(); err != nil {
			t.Fatal(err)
		}
		deq := q4.Dequantize()
		for b := range q4.Scales {
			blk := w[b*Q4Block : (b+1)*Q4Block]
			if e := maxErr(deq[b*Q4Block:(b+1)*Q4Block], blk); e > math.Abs(float64(q4.Scales[b]))*1.0001 {
				t.Errorf("q4 block %d: error %g > one step %g", b, e, q4.Scales[b])
			}
		}
	}
	if _, err := QuantizeQ4(2, 33, make([]float32, 66)); err == nil {
		t.Error("q4 with 33 columns: no error")
	}
}

func TestQuantizeEdgeValues(t *testing.T) {
	w := []float32{0, 0, 0, 0}
	if got := QuantizeInt8(1, 4, w).Dequantize(); maxErr(got, w) != 0 {
		t.Errorf("zero row: %v", got)
	}
	// The peak of a q4 block is represented exactly.
	blk := randMatrix(1, 32, 7)
	blk[5] = -9.5
	q4, _ := QuantizeQ4(1, 32, blk)
	if got := q4.Dequantize()[5]; got != -9.5 {
		t.Errorf("q4 peak: got %v, want -9.5", got)
	}
}

func TestValidateRejects(t *testing.T) {
	for name, m := range map[string]*Matrix{
		"short f32":    {Rows: 2, Cols: 2, Scheme: SchemeF32, F32: make([]float32, 3)},
		"int8 scales":  {Rows: 2, Cols: 2, Scheme: SchemeInt8, Q8: make([]int8, 4), Scales: make([]float32, 1)},
		"q4 odd cols":  {Rows: 1, Cols: 16, Scheme: SchemeQ4, Q4: make([]byte, 8), Scales: make([]float32, 1)},
		"bad scheme":   {Rows: 1, Cols: 1, Scheme: "q3"},
		"empty matrix": {Scheme: SchemeF32},
	} {
		if err := m.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestActivationText(t *testing.T) {
	for _, a := range []Activation{QuickGELU, GELU, ReLU} {
		b, err := a.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Activation
		if err := back.UnmarshalText(b); err != nil || back != a {
			t.Errorf("%s: round trip gave %v, %v", b, back, err)
		}
	}
	var a Activation
	if err := a.UnmarshalText([]byte("swish")); err == nil {
		t.Error("unknown name: no error")
	}
	if _, err := Activation(42).MarshalText(); err == nil {
		t.Error("unknown value: no error")
	}
}
