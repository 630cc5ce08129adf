//go:build js && wasm

package wasmsimd

import (
	"flag"
	"math"
	"math/rand/v2"
	"testing"
)

// wantSet lets a runner assert which kernel set the self-test picks in its
// runtime (the Chromium runner wants "relaxed").
var wantSet = flag.String("wasmsimd.want", "", "fail unless the self-test selects this kernel set")

func TestSelected(t *testing.T) {
	res := SelfTest()
	for _, s := range []string{SetRelaxed, SetSIMD128, SetGo} {
		t.Logf("self-test %-8s %v", s+":", res[s])
	}
	t.Logf("selected: %s", Selected())
	if *wantSet != "" && Selected() != *wantSet {
		t.Fatalf("selected %q, want %q", Selected(), *wantSet)
	}
	if res[SetSIMD128] != nil && res[SetSIMD128] != ErrUnavailable {
		t.Errorf("simd128 set linked but failed its self-test: %v", res[SetSIMD128])
	}
}

// passing returns the SIMD kernel sets that passed the self-test, logging
// the others: a set the runtime miscomputes (Node 20's relaxed dot) is not
// a bug of this package, and its kernels are tested where it passes.
func passing(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, s := range []string{SetRelaxed, SetSIMD128} {
		if err := SelfTest()[s]; err != nil {
			t.Logf("skipping set %s: %v", s, err)
			continue
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		t.Skip("no SIMD kernel set passed the self-test in this runtime")
	}
	return out
}

// gemmShapes covers m = 1 and odd m (clamped row of the 2-row tile), n
// below, at and past the 4-column tile and the 8-column NN tile, k below
// one vector, odd k, and k reaching every step of each kernel's main loop,
// extra step and partial tail.
var gemmShapes = [][3]int{
	{1, 1, 1}, {1, 3, 5}, {2, 4, 4}, {3, 5, 7}, {1, 8, 15}, {2, 7, 16}, {3, 9, 17},
	{5, 13, 31}, {4, 4, 32}, {7, 6, 33}, {1, 17, 47}, {2, 5, 48}, {3, 11, 61},
	{6, 64, 64}, {9, 10, 100}, {50, 24, 768}, {1, 5, 1031},
}

func TestGEMMF32(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, set := range passing(t) {
		for _, s := range gemmShapes {
			for _, pad := range []int{0, 3} {
				if err := checkGEMMF32(set == SetRelaxed, rng, s[0], s[1], s[2], pad, pad == 0); err != nil {
					t.Errorf("%s: %v", set, err)
				}
			}
		}
	}
}

func TestGEMMNN(t *testing.T) {
	passing(t)
	if SelfTest()[SetSIMD128] != nil {
		t.Skip("simd128 set not available")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range append(gemmShapes, [3]int{50, 64, 50}, [3]int{77, 64, 77}, [3]int{3, 8, 1}, [3]int{4, 9, 2}) {
		for _, pad := range []int{0, 5} {
			if err := checkGEMMNN(rng, s[0], s[1], s[2], pad); err != nil {
				t.Error(err)
			}
		}
	}
}

func TestGEMMInt8(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 3))
	for _, set := range passing(t) {
		for _, s := range gemmShapes {
			for _, bias := range []bool{false, true} {
				var err error
				if set == SetRelaxed {
					err = checkGEMMU7(rng, s[0], s[1], s[2], bias)
				} else {
					err = checkGEMMI8(rng, s[0], s[1], s[2], bias)
				}
				if err != nil {
					t.Errorf("%s: %v", set, err)
				}
			}
		}
	}
}

// The kernels below are in the simd128 module, which both sets use.

func simd128(t *testing.T) {
	t.Helper()
	if err := SelfTest()[SetSIMD128]; err != nil {
		t.Skipf("simd128 set: %v", err)
	}
}

func TestQuantizers(t *testing.T) {
	simd128(t)
	rng := rand.New(rand.NewPCG(1, 4))
	for _, s := range [][2]int{{1, 1}, {4, 3}, {4, 15}, {4, 16}, {5, 17}, {8, 33}, {4, 768}, {3, 1001}} {
		if err := checkQuantI8(rng, s[0], s[1]); err != nil {
			t.Error(err)
		}
		if err := checkQuantU7(rng, s[0], s[1]); err != nil {
			t.Error(err)
		}
	}
}

// TestQuantizerRanges checks the properties the GEMMs rely on: int8 values
// within ±127, 7-bit values below 128 (the relaxed dot's requirement),
// and exact zeros staying exact.
func TestQuantizerRanges(t *testing.T) {
	simd128(t)
	rng := rand.New(rand.NewPCG(1, 5))
	m, k := 16, 200
	x := randFloats(rng, m*k)
	for i := range x {
		x[i] *= float32(math.Pow(10, float64(i%m-8)))
	}
	qi, si := make([]int8, m*k), make([]float32, m)
	quantRowsI8(qi, k, si, x, k, m, k)
	qu, su, zu := make([]uint8, m*k), make([]float32, m), make([]int32, m)
	quantRowsU7(qu, k, su, zu, x, k, m, k)
	for i, v := range x {
		r := i / k
		if qi[i] < -127 {
			t.Fatalf("int8 value %d below -127", qi[i])
		}
		if qu[i] > 127 {
			t.Fatalf("7-bit value %d above 127", qu[i])
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

func TestQ4ToInt8(t *testing.T) {
	simd128(t)
	rng := rand.New(rand.NewPCG(1, 6))
	for _, s := range [][2]int{{1, 32}, {2, 64}, {5, 96}, {3, 768}} {
		if err := checkQ4(rng, s[0], s[1]); err != nil {
			t.Error(err)
		}
	}
}

func TestDequant(t *testing.T) {
	simd128(t)
	rng := rand.New(rand.NewPCG(1, 9))
	for _, s := range [][2]int{{1, 1}, {1, 7}, {3, 8}, {2, 15}, {5, 17}, {64, 3072}} {
		if err := checkDequant(rng, s[0], s[1]); err != nil {
			t.Error(err)
		}
	}
}

func TestRowSums(t *testing.T) {
	simd128(t)
	rng := rand.New(rand.NewPCG(1, 7))
	for _, s := range [][2]int{{1, 1}, {3, 15}, {2, 16}, {5, 17}, {4, 768}} {
		if err := checkRowSums(rng, s[0], s[1]); err != nil {
			t.Error(err)
		}
	}
}

func TestRowOps(t *testing.T) {
	simd128(t)
	rng := rand.New(rand.NewPCG(1, 8))
	for _, n := range []int{1, 2, 3, 4, 5, 8, 13, 64, 77, 768} {
		for _, err := range []error{
			checkLayerNorm(rng, 3, n),
			checkSoftmax(rng, 4, n, false),
			checkSoftmax(rng, n, n, true),
			checkActivation(rng, n, "gelu"),
			checkActivation(rng, n, "quickgelu"),
			checkActivation(rng, n, "relu"),
			checkAdd(rng, n),
		} {
			if err != nil {
				t.Error(err)
			}
		}
	}
}

// TestGELUAccuracy measures the erf-form GELU against float64 on a fine
// grid: the erf approximation is within 4.3e-7 of math.Erf, so GELU is
// within about 2e-6 absolute up to |x| = 8.
func TestGELUAccuracy(t *testing.T) {
	simd128(t)
	const n = 160001
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i-n/2) * 1e-4
	}
	want := make([]float64, n)
	for i, v := range x {
		want[i] = refGELU(v)
	}
	geluInPlace(x)
	var worst, at float64
	for i := range x {
		if d := math.Abs(float64(x[i]) - want[i]); d > worst {
			worst, at = d, float64(i-n/2)*1e-4
		}
	}
	t.Logf("GELU max abs error %.3g at x = %.4f", worst, at)
	if worst > 2e-6 {
		t.Errorf("GELU max abs error %g at %g, want ≤ 2e-6", worst, at)
	}
}

// TestSoftmaxExtremes checks rows with a huge spread (exp underflows) and
// equal values.
func TestSoftmaxExtremes(t *testing.T) {
	simd128(t)
	x := []float32{0, -1e4, 50, 50, -3e38, 1, 2, 3, 3, 3, 3, 3}
	want := refSoftmax(x, 2, 6, 1, false)
	softmaxRows(x, 6, 2, 6, 1, false)
	if err := closeTo("softmax extremes", x, 6, 2, 6, want); err != nil {
		t.Error(err)
	}
}

// TestWrapperChecks checks that the wrappers refuse slices shorter than
// their shapes instead of letting a kernel read past them.
func TestWrapperChecks(t *testing.T) {
	simd128(t)
	cases := map[string]func(){
		"gemm x": func() {
			gemmF32(false, make([]float32, 6), 3, make([]float32, 5), 3, make([]float32, 9), 3, nil, 2, 3, 3)
		},
		"gemm w": func() {
			gemmF32(false, make([]float32, 6), 3, make([]float32, 6), 3, make([]float32, 8), 3, nil, 2, 3, 3)
		},
		"gemm dst": func() {
			gemmF32(false, make([]float32, 5), 3, make([]float32, 6), 3, make([]float32, 9), 3, nil, 2, 3, 3)
		},
		"gemm bias": func() {
			gemmF32(false, make([]float32, 6), 3, make([]float32, 6), 3, make([]float32, 9), 3, make([]float32, 2), 2, 3, 3)
		},
		"gemm stride": func() {
			gemmF32(false, make([]float32, 6), 2, make([]float32, 6), 3, make([]float32, 9), 3, nil, 2, 3, 3)
		},
		"nn w": func() { gemmF32NN(make([]float32, 6), 3, make([]float32, 4), 2, make([]float32, 5), 3, 2, 3, 2) },
		"i8 sw": func() {
			gemmI8(make([]float32, 6), 3, make([]int8, 6), 3, make([]float32, 2), make([]int8, 9), 3, make([]float32, 2), nil, 2, 3, 3)
		},
		"u7 wsum": func() {
			gemmU7(make([]float32, 6), 3, make([]uint8, 6), 3, make([]float32, 2), make([]int32, 2), make([]int8, 9), 3, make([]float32, 3), make([]int32, 2), nil, 2, 3, 3)
		},
		"dequant scales": func() { dequantRows(make([]float32, 6), make([]int8, 6), make([]float32, 1), 2, 3) },
		"dequant dst":    func() { dequantRows(make([]float32, 5), make([]int8, 6), make([]float32, 2), 2, 3) },
		"quant sx":       func() { quantRowsI8(make([]int8, 6), 3, make([]float32, 1), make([]float32, 6), 3, 2, 3) },
		"q4 cols":        func() { q4Rows(make([]int8, 48), make([]float32, 1), make([]byte, 24), make([]float32, 2), 1, 48) },
		"layernorm": func() {
			layerNorm(make([]float32, 6), make([]float32, 6), 2, 3, make([]float32, 2), make([]float32, 3), 1e-5)
		},
		"softmax":  func() { softmaxRows(make([]float32, 7), 4, 2, 4, 1, false) },
		"add":      func() { addInPlace(make([]float32, 6), make([]float32, 5)) },
		"negative": func() { gemmF32(false, nil, 3, nil, 3, nil, 3, nil, -1, 3, 3) },
	}
	for name, f := range cases {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}
