package avx2

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/clipwasm/clipwasm/kernels"
)

// TestQGemmExact checks the integer kernels' sums bit for bit against a Go
// integer reference, at the extremes of their input ranges (activations
// ±32767, weights −128..127) and for the largest block, where the int32
// sums come closest to overflowing: qgemm on each of two panels, and
// qgemm512 over both where the CPU has AVX512_VNNI. Unit scales make the
// result float32(sum), which the reference computes the same way; rows
// past the tile's must stay zero.
func TestQGemmExact(t *testing.T) {
	if !cpu.avx2FMA {
		t.Skip("skipping: CPU lacks AVX2/FMA")
	}
	if !cpu.avx512VNNI {
		t.Log("qgemm512 not run: CPU lacks AVX-512 or AVX512_VNNI")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		k       int
		extreme bool
	}{{1, false}, {2, false}, {3, false}, {7, false}, {9, false}, {64, false}, {kcInt - 1, false}, {kcInt, false}, {kcInt, true}} {
		w := &kernels.Matrix{Rows: 2 * nr, Cols: c.k, Scheme: kernels.SchemeInt8, Q8: make([]int8, 2*nr*c.k), Scales: make([]float32, 2*nr)}
		for i := range w.Q8 {
			w.Q8[i] = int8(rng.IntN(256) - 128)
			if c.extreme {
				w.Q8[i] = -128
			}
		}
		for i := range w.Scales {
			w.Scales[i] = 1
		}
		pw := packInt(w)
		ld := (c.k+1)&^1 + 2 // a row stride wider than the row
		a := make([]int16, mr*ld)
		for r := range mr {
			for kk := range c.k {
				a[r*ld+kk] = int16(rng.IntN(2*actMax+1) - actMax)
				if c.extreme {
					a[r*ld+kk] = -actMax
				}
			}
		}
		ones := []float32{1, 1, 1, 1, 1, 1}
		const ldc = 2*nr + 3
		tiles := []struct {
			name string
			run  func(rows int, out []float32)
		}{{"qgemm", func(rows int, out []float32) {
			for p := range 2 {
				qgemm(rows, 1, pw.kp, &a[0], ld, &pw.q[p*pw.kp*2*nr], &out[p*nr], ldc, &ones[0], &pw.scales[p*nr], 0)
			}
		}}}
		if cpu.avx512VNNI {
			tiles = append(tiles, struct {
				name string
				run  func(rows int, out []float32)
			}{"qgemm512", func(rows int, out []float32) {
				qgemm512(rows, 1, pw.kp, &a[0], ld, &pw.q[0], pw.kp*2*nr, &out[0], ldc, &ones[0], &pw.scales[0], 0, nr)
			}})
		}
		for _, tile := range tiles {
			for rows := 4; rows <= mr; rows++ {
				got := make([]float32, mr*ldc)
				tile.run(rows, got)
				for r := range mr {
					for j := range 2 * nr {
						var sum int64
						for kk := range c.k {
							sum += int64(a[r*ld+kk]) * int64(w.Q8[j*c.k+kk])
						}
						if r >= rows {
							sum = 0
						}
						if sum > math.MaxInt32 || sum < math.MinInt32 {
							t.Fatalf("k%d: reference sum %d overflows int32; kcInt too large", c.k, sum)
						}
						if want := float32(int32(sum)); got[r*ldc+j] != want {
							t.Fatalf("%s k%d extreme=%v rows%d [%d,%d] = %v, want %v", tile.name, c.k, c.extreme, rows, r, j, got[r*ldc+j], want)
						}
					}
				}
			}
		}
	}
}

// TestQuantizeRow checks the assembly quantizer and its Go tail against
// float32 multiply and round-half-to-even, including exact ties.
func TestQuantizeRow(t *testing.T) {
	if !cpu.avx2FMA {
		t.Skip("skipping: CPU lacks AVX2/FMA")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 7, 8, 15, 16, 17, 33, 768} {
		x := randSlice(rng, n)
		if n > 4 {
			x[1], x[2], x[3] = 0, -0.5, 2.5
		}
		dst := make([]int16, n+1)
		dst[n] = 99 // must be cleared: the padding column
		scale := quantizeRowTo(dst, x)
		var amax float32
		for _, v := range x {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		if scale != amax/actMax {
			t.Fatalf("n%d: scale %v, want %v", n, scale, amax/actMax)
		}
		inv := actMax / amax
		for i, v := range x {
			if want := int16(math.RoundToEven(float64(v * inv))); dst[i] != want {
				t.Fatalf("n%d: [%d] = %d, want %d", n, i, dst[i], want)
			}
		}
		if dst[n] != 0 {
			t.Fatalf("n%d: padding = %d", n, dst[n])
		}
	}
	// Ties at the quantized scale: x·inv = m + 0.5 exactly.
	x := []float32{actMax, 0.5, 1.5, 2.5, -0.5, -1.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5, 11.5, 12.5}
	dst := make([]int16, len(x))
	quantizeRowTo(dst, x)
	for i, v := range x {
		if want := int16(math.RoundToEven(float64(v))); dst[i] != want {
			t.Fatalf("tie %v: %d, want %d", v, dst[i], want)
		}
	}
}

// quantizedMatrix returns w [n, k] in the given scheme.
func quantizedMatrix(t testing.TB, scheme kernels.Scheme, n, k int, w []float32) *kernels.Matrix {
	t.Helper()
	switch scheme {
	case kernels.SchemeInt8:
		return kernels.QuantizeInt8(n, k, w)
	case kernels.SchemeQ4:
		q, err := kernels.QuantizeQ4(n, k, w)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	return kernels.NewMatrix(n, k, w)
}

// TestLinearQuantized compares quantized Linear with the float64 product of
// x and the dequantized weights. The only approximation is the per-row
// activation quantization, whose error is at most half a step per element,
// so each output may be off by 0.5·scale(row)·Σ|w| plus float32 rounding.
func TestLinearQuantized(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, scheme := range []kernels.Scheme{kernels.SchemeInt8, kernels.SchemeQ4} {
		for _, c := range linearCases(t, rng, scheme) {
			m, n, k, x, bias := c.m, c.n, c.k, c.x, c.bias
			deq := c.w.Dequantize()
			for _, th := range threadCounts {
				name := fmt.Sprintf("%s t%d", c.name, th)
				dst := make([]float32, m*n)
				newTest(t, th).Linear(dst, x, m, c.w, bias)
				for i := range m {
					var amax float64
					for _, v := range x[i*k : (i+1)*k] {
						amax = max(amax, math.Abs(float64(v)))
					}
					for j := range n {
						want, wabs := float64(bias[j]), 0.0
						for p := range k {
							want += float64(x[i*k+p]) * float64(deq[j*k+p])
							wabs += math.Abs(float64(deq[j*k+p]))
						}
						tol := 0.5*amax/actMax*wabs*1.001 + 1e-5*max(1, math.Abs(want))
						if d := math.Abs(float64(dst[i*n+j]) - want); !(d <= tol) {
							t.Fatalf("%s: [%d,%d] = %v, want %v ± %v", name, i, j, dst[i*n+j], want, tol)
						}
					}
				}
			}
		}
	}
}

// linearCase is one Linear input: x [m, k], w [n, k] and bias [n].
type linearCase struct {
	name    string
	m, n, k int
	x       []float32
	w       *kernels.Matrix
	bias    []float32
}

// linearCases draws a Linear input in scheme for each of gemmShapes, with k
// rounded up to whole q4 blocks for q4.
func linearCases(t testing.TB, rng *rand.Rand, scheme kernels.Scheme) []linearCase {
	cases := make([]linearCase, len(gemmShapes))
	for i, c := range gemmShapes {
		k := c.k
		if scheme == kernels.SchemeQ4 {
			k = (k + kernels.Q4Block - 1) &^ (kernels.Q4Block - 1)
		}
		x := randSlice(rng, c.m*k)
		w := quantizedMatrix(t, scheme, c.n, k, randSlice(rng, c.n*k))
		bias := randSlice(rng, c.n)
		cases[i] = linearCase{fmt.Sprintf("%s m%d n%d k%d", scheme, c.m, c.n, k), c.m, c.n, k, x, w, bias}
	}
	return cases
}
