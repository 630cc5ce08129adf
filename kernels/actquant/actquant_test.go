package actquant

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/purego"
)

func randFloats(rng *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64())
	}
	return out
}

// TestQuantizers checks what the GEMMs rely on: int8 codes within ±127,
// 7-bit codes within 0..127, exact zeros staying exact, and each value
// within half a step (int8) or a step (7-bit, whose zero point is rounded)
// of its code, over rows whose magnitudes span 16 decades.
func TestQuantizers(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 1))
	m, k := 16, 203
	x := randFloats(rng, m*k)
	for i := range x {
		x[i] *= float32(math.Pow(10, float64(i/k-8)))
		if i%17 == 0 {
			x[i] = 0
		}
	}
	qi, si := make([]int8, m*k), make([]float32, m)
	QuantRowsI8(qi, k, si, x, k, m, k)
	qu, su, zu := make([]uint8, m*k), make([]float32, m), make([]int32, m)
	QuantRowsU7(qu, k, su, zu, x, k, m, k)
	for i, v := range x {
		r := i / k
		if qi[i] < -127 || qu[i] > 127 {
			t.Fatalf("codes %d / %d out of range at %d", qi[i], qu[i], i)
		}
		if v == 0 && (qi[i] != 0 || int32(qu[i]) != zu[r]) {
			t.Fatalf("zero at %d quantized to %d / %d (zero point %d)", i, qi[i], qu[i], zu[r])
		}
		if d := math.Abs(float64(si[r]*float32(qi[i]) - v)); d > float64(si[r])/2*1.0001 {
			t.Fatalf("int8 error %g above half a step %g", d, si[r]/2)
		}
		if d := math.Abs(float64(su[r]*float32(int32(qu[i])-zu[r]) - v)); d > float64(su[r])*1.0001 {
			t.Fatalf("7-bit error %g above a step %g", d, su[r])
		}
	}
}

// TestGEMMExact checks the GEMMs, split over goroutines, against the sum
// written out in int64 (no overflow possible) on shapes with tails and
// strides wider than k.
func TestGEMMExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	for _, s := range [][3]int{{1, 1, 1}, {3, 5, 7}, {2, 33, 17}, {5, 70, 768}, {1, 200, 3072}} {
		m, n, k := s[0], s[1], s[2]
		ld := k + 3
		xi, xu, w := make([]int8, m*ld), make([]uint8, m*ld), make([]int8, n*ld)
		for i := range xi {
			xi[i], xu[i] = int8(rng.IntN(255)-127), uint8(rng.IntN(128))
		}
		for i := range w {
			w[i] = int8(rng.IntN(255) - 127)
		}
		sx, sw, bias := randFloats(rng, m), randFloats(rng, n), randFloats(rng, n)
		zx := make([]int32, m)
		for i := range zx {
			zx[i] = int32(rng.IntN(128))
		}
		wsum := make([]int32, n)
		RowSums(wsum, w, ld, n, k)
		gotI, gotU := make([]float32, m*n), make([]float32, m*n)
		GEMMI8(gotI, n, xi, ld, sx, w, ld, sw, bias, m, n, k)
		GEMMU7(gotU, n, xu, ld, sx, zx, w, ld, sw, wsum, nil, m, n, k)
		for i := range m {
			for j := range n {
				var ai, au, ws int64
				for p := range k {
					ai += int64(xi[i*ld+p]) * int64(w[j*ld+p])
					au += int64(xu[i*ld+p]) * int64(w[j*ld+p])
					ws += int64(w[j*ld+p])
				}
				if ws != int64(wsum[j]) {
					t.Fatalf("%v: row sum %d = %d, want %d", s, j, wsum[j], ws)
				}
				wantI := float32(float32(float32(ai)*sw[j])*sx[i]) + bias[j]
				wantU := float32(float32(au-int64(zx[i])*ws)*sw[j]) * sx[i]
				if gotI[i*n+j] != wantI || gotU[i*n+j] != wantU {
					t.Fatalf("%v: [%d, %d] = %g / %g, want %g / %g", s, i, j, gotI[i*n+j], gotU[i*n+j], wantI, wantU)
				}
			}
		}
	}
}

// TestQ4ToI8 checks the q4 conversion against the dequantized q4 values:
// within half an int8 step of the row's scale.
func TestQ4ToI8(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 3))
	rows, cols := 7, 96
	w, err := kernels.QuantizeQ4(rows, cols, randFloats(rng, rows*cols))
	if err != nil {
		t.Fatal(err)
	}
	q8, rs := make([]int8, rows*cols), make([]float32, rows)
	Q4ToI8(q8, rs, w.Q4, w.Scales, rows, cols)
	deq := w.Dequantize()
	for i, v := range deq {
		if d := math.Abs(float64(rs[i/cols]*float32(q8[i]) - v)); d > float64(rs[i/cols])/2*1.0001 {
			t.Fatalf("element %d: %g·%d is %g from %g", i, rs[i/cols], q8[i], d, v)
		}
	}
}

// relError is ‖got − want‖ / ‖want‖.
func relError(want, got []float32) float64 {
	var d, n float64
	for i, w := range want {
		d += (float64(got[i]) - float64(w)) * (float64(got[i]) - float64(w))
		n += float64(w) * float64(w)
	}
	return math.Sqrt(d / n)
}

// reference is the backend's quantized Linear spelled with the plain
// definitions: quantize the rows, then GEMMI8 or GEMMU7.
func reference(x []float32, m int, w *kernels.Matrix, bias []float32, mode Mode) []float32 {
	n, k := w.Rows, w.Cols
	q8, sw, err := Int8Weights(w)
	if err != nil {
		panic(err)
	}
	out, sx := make([]float32, m*n), make([]float32, m)
	if mode == U7 {
		xq, zx, wsum := make([]uint8, m*k), make([]int32, m), make([]int32, n)
		QuantRowsU7(xq, k, sx, zx, x, k, m, k)
		RowSums(wsum, q8, k, n, k)
		GEMMU7(out, n, xq, k, sx, zx, q8, k, sw, wsum, bias, m, n, k)
		return out
	}
	xq := make([]int8, m*k)
	QuantRowsI8(xq, k, sx, x, k, m, k)
	GEMMI8(out, n, xq, k, sx, q8, k, sw, bias, m, n, k)
	return out
}

// TestLinear runs the backend on int8 and q4 weights in both modes: bit
// for bit the plain definitions (the float32 GEMM it sums the codes on is
// exact, even for k = 3072 with every code at ±127), close to float32
// activations on the same weights (the activation rounding only) but not
// identical, and identical when the matrix asks for float32 activations.
func TestLinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 4))
	inner := purego.New(1)
	m, n, k := 9, 40, 256
	x, bias := randFloats(rng, m*k), randFloats(rng, n)
	vals := randFloats(rng, n*k)
	q4, err := kernels.QuantizeQ4(n, k, vals)
	if err != nil {
		t.Fatal(err)
	}
	// Saturated: every activation and weight code ±127 (one sign per row
	// and column), so that the sums reach 127·127·k.
	const ks = 3072
	xs, ws := make([]float32, 2*ks), make([]float32, 3*ks)
	for i := range xs {
		xs[i] = float32(1 - 2*(i%2))
	}
	for i := range ws {
		ws[i] = float32(1 - 2*(i%2)*(i/ks%2))
	}
	for _, c := range []struct {
		name string
		x    []float32
		m    int
		w    *kernels.Matrix
		mode Mode
		max  float64 // relative error bound of the activation rounding
	}{
		{"int8/int8", x, m, kernels.QuantizeInt8(n, k, vals), Int8, 0.01},
		{"int8/u7", x, m, kernels.QuantizeInt8(n, k, vals), U7, 0.02},
		{"q4/int8", x, m, q4, Int8, 0.02},
		{"q4/u7", x, m, q4, U7, 0.03},
		{"saturated/int8", xs, 2, kernels.QuantizeInt8(3, ks, ws), Int8, 1e-6}, // ±1 inputs: exact codes
		{"saturated/u7", xs, 2, kernels.QuantizeInt8(3, ks, ws), U7, 0.02},
	} {
		t.Run(c.name, func(t *testing.T) {
			nr := c.w.Rows
			bias := bias[:nr]
			b := New(inner, c.mode)
			got := make([]float32, c.m*nr)
			b.Linear(got, c.x, c.m, c.w, bias)
			want := reference(c.x, c.m, c.w, bias, c.mode)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("element %d = %g, the plain definitions give %g", i, got[i], want[i])
				}
			}
			f32 := make([]float32, c.m*nr)
			inner.Linear(f32, c.x, c.m, c.w, bias)
			e := relError(f32, got)
			t.Logf("relative error vs float32 activations: %.3g", e)
			if e > c.max || e == 0 {
				t.Errorf("relative error %.3g, want in (0, %g]", e, c.max)
			}
			wf := *c.w
			wf.Activations = kernels.ActivationsF32
			b.Linear(got, c.x, c.m, &wf, bias)
			if !slices.Equal(got, f32) {
				t.Errorf("with Activations f32: differs from the wrapped backend")
			}
		})
	}
}
