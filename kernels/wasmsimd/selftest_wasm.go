//go:build js && wasm

package wasmsimd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/clipwasm/clipwasm/kernels"
)

// floatTol is the accepted error of the float kernels relative to the
// largest reference magnitude (at least 1): float32 arithmetic in another
// summation order than a float64 reference, over up to a few thousand
// terms.
const floatTol = 1e-5

var selfTest struct {
	once     sync.Once
	results  map[string]error
	selected string
}

// Selected returns the kernel set New uses, running the self-test on first
// use: SetRelaxed, SetSIMD128 or SetGo.
func Selected() string {
	runSelfTest()
	return selfTest.selected
}

// SelfTest returns each kernel set's self-test outcome: nil for a set that
// passed, ErrUnavailable for one the host did not link, otherwise the
// first wrong result, naming the kernel and shape.
func SelfTest() map[string]error {
	runSelfTest()
	out := make(map[string]error, len(selfTest.results))
	for k, v := range selfTest.results {
		out[k] = v
	}
	return out
}

func runSelfTest() {
	selfTest.once.Do(func() {
		avail := kernelsAvailable()
		res := map[string]error{SetGo: nil}
		res[SetSIMD128] = ErrUnavailable
		if avail&haveSIMD128 != 0 {
			res[SetSIMD128] = testSet(SetSIMD128)
		}
		res[SetRelaxed] = ErrUnavailable
		switch {
		case avail&haveRelaxed == 0:
		case res[SetSIMD128] != nil:
			res[SetRelaxed] = fmt.Errorf("wasmsimd: relaxed set needs the simd128 row ops: %w", res[SetSIMD128])
		default:
			res[SetRelaxed] = testSet(SetRelaxed)
		}
		selfTest.results = res
		selfTest.selected = SetGo
		for _, s := range []string{SetRelaxed, SetSIMD128} {
			if res[s] == nil {
				selfTest.selected = s
				break
			}
		}
	})
}

// testSet runs the known-answer checks of one set's own kernels on small
// shapes that reach every code path: main loops, the single extra vector
// step, partial vectors, clamped tail rows and columns. The check order
// puts the GEMMs first: a runtime bug that only shows on a kernel's first
// calls (Node 20's baseline compiler and the relaxed int8 dot) is caught
// there.
func testSet(set string) error {
	rng := rand.New(rand.NewPCG(0x5eed, 0xc11b))
	var checks []func() error
	switch set {
	case SetRelaxed:
		checks = []func() error{
			func() error { return checkGEMMU7(rng, 3, 7, 61, true) },
			func() error { return checkGEMMU7(rng, 2, 4, 32, false) },
			func() error { return checkGEMMF32(true, rng, 3, 7, 61, 0, true) },
			func() error { return checkGEMMF32(true, rng, 2, 4, 8, 3, false) },
		}
	case SetSIMD128:
		checks = []func() error{
			func() error { return checkGEMMI8(rng, 3, 7, 61, true) },
			func() error { return checkGEMMI8(rng, 2, 4, 16, false) },
			func() error { return checkGEMMF32(false, rng, 3, 7, 61, 0, true) },
			func() error { return checkGEMMF32(false, rng, 2, 4, 8, 3, false) },
			func() error { return checkGEMMNN(rng, 5, 11, 7, 2) },
			func() error { return checkGEMMNN(rng, 3, 5, 4, 0) },
			func() error { return checkQuantI8(rng, 3, 37) },
			func() error { return checkQuantU7(rng, 3, 37) },
			func() error { return checkQ4(rng, 3, 64) },
			func() error { return checkRowSums(rng, 3, 37) },
			func() error { return checkDequant(rng, 3, 37) },
			func() error { return checkLayerNorm(rng, 3, 23) },
			func() error { return checkSoftmax(rng, 5, 7, false) },
			func() error { return checkSoftmax(rng, 5, 6, true) },
			func() error { return checkActivation(rng, 19, "gelu") },
			func() error { return checkActivation(rng, 19, "quickgelu") },
			func() error { return checkActivation(rng, 19, "relu") },
			func() error { return checkAdd(rng, 19) },
		}
	}
	for _, c := range checks {
		if err := c(); err != nil {
			return err
		}
	}
	return nil
}

// Inputs. Normal floats with a few exact zeros; int8 values over the full
// range including −128 and 127, the extremes of the dot products.

func randFloats(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		if rng.IntN(17) != 0 {
			s[i] = float32(rng.NormFloat64())
		}
	}
	return s
}

func randInt8s(rng *rand.Rand, n int) []int8 {
	s := make([]int8, n)
	for i := range s {
		s[i] = int8(rng.IntN(256) - 128)
	}
	if n > 1 {
		s[0], s[n-1] = -128, 127
	}
	return s
}

func randU7s(rng *rand.Rand, n int) []uint8 {
	s := make([]uint8, n)
	for i := range s {
		s[i] = uint8(rng.IntN(128))
	}
	if n > 1 {
		s[0], s[n-1] = 127, 127
	}
	return s
}

// closeTo reports the first element of got (dense [m, n], or strided by ld)
// that differs from want by more than floatTol times max(1, max|want|).
func closeTo(name string, got []float32, ld, m, n int, want []float64) error {
	scale := 1.0
	for _, w := range want {
		scale = max(scale, math.Abs(w))
	}
	for i := range m {
		for j := range n {
			g, w := float64(got[i*ld+j]), want[i*n+j]
			if !(math.Abs(g-w) <= floatTol*scale) {
				return fmt.Errorf("%s: [%d,%d] = %v, want %v", name, i, j, g, w)
			}
		}
	}
	return nil
}

// exact reports the first element of got (stride ld) that differs from
// want (dense [m, n]).
func exact[T comparable](name string, got []T, ld, m, n int, want []T) error {
	for i := range m {
		for j := range n {
			if got[i*ld+j] != want[i*n+j] {
				return fmt.Errorf("%s: [%d,%d] = %v, want %v", name, i, j, got[i*ld+j], want[i*n+j])
			}
		}
	}
	return nil
}

// sentinel fills dst so that elements a kernel should not touch can be
// checked afterwards.
const sentinel = -12345

func filled(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = sentinel
	}
	return s
}

// checkPadding reports an element of dst (stride ld, rows of n values)
// outside the written columns that a kernel changed.
func checkPadding(name string, dst []float32, ld, m, n int) error {
	for i := range m {
		for j := n; j < ld && i*ld+j < len(dst); j++ {
			if dst[i*ld+j] != sentinel {
				return fmt.Errorf("%s: wrote outside its columns at [%d,%d]", name, i, j)
			}
		}
	}
	return nil
}

// checkGEMMF32 checks f32_gemm (or f32_gemm_relaxed) on x [m, k] and w
// [n, k], both with pad extra floats of row stride, and dst with stride
// n+pad.
func checkGEMMF32(relaxed bool, rng *rand.Rand, m, n, k, pad int, withBias bool) error {
	name := fmt.Sprintf("f32_gemm(relaxed=%v) m=%d n=%d k=%d pad=%d", relaxed, m, n, k, pad)
	ldx, ldw, ldd := k+pad, k+pad, n+pad
	x, w := randFloats(rng, span(m, ldx, k)), randFloats(rng, span(n, ldw, k))
	var bias []float32
	if withBias {
		bias = randFloats(rng, n)
	}
	dst := filled(span(m, ldd, n) + pad)
	gemmF32(relaxed, dst, ldd, x, ldx, w, ldw, bias, m, n, k)
	if err := closeTo(name, dst, ldd, m, n, refGEMMF32(x, ldx, w, ldw, bias, m, n, k)); err != nil {
		return err
	}
	return checkPadding(name, dst, ldd, m, n)
}

// checkGEMMNN checks f32_gemm_nn on x [m, k] and w [k, n] with pad extra
// floats of row stride.
func checkGEMMNN(rng *rand.Rand, m, n, k, pad int) error {
	name := fmt.Sprintf("f32_gemm_nn m=%d n=%d k=%d pad=%d", m, n, k, pad)
	ldx, ldw, ldd := k+pad, n+pad, n+pad
	x, w := randFloats(rng, span(m, ldx, k)), randFloats(rng, span(k, ldw, n))
	dst := filled(span(m, ldd, n) + pad)
	gemmF32NN(dst, ldd, x, ldx, w, ldw, m, n, k)
	if err := closeTo(name, dst, ldd, m, n, refGEMMNN(x, ldx, w, ldw, m, n, k)); err != nil {
		return err
	}
	return checkPadding(name, dst, ldd, m, n)
}

// quantInput returns activations for the quantizer checks: random rows,
// an all-zero row, and rows of one sign.
func quantInput(rng *rand.Rand, m, k int) []float32 {
	x := randFloats(rng, m*k)
	for i := range m {
		row := x[i*k : (i+1)*k]
		switch i % 4 {
		case 1:
			clear(row)
		case 2:
			for p := range row {
				row[p] = abs32(row[p])
			}
		case 3:
			for p := range row {
				row[p] = -abs32(row[p]) * 1e3
			}
		}
	}
	return x
}

// checkQuantI8 checks quant_i8 exactly.
func checkQuantI8(rng *rand.Rand, m, k int) error {
	name := fmt.Sprintf("quant_i8 m=%d k=%d", m, k)
	x := quantInput(rng, m, k)
	q, sx := make([]int8, m*k), make([]float32, m)
	quantRowsI8(q, k, sx, x, k, m, k)
	wq, wsx := refQuantI8(x, k, m, k)
	if err := exact(name+" q", q, k, m, k, wq); err != nil {
		return err
	}
	return exact(name+" scale", sx, 1, m, 1, wsx)
}

// checkQuantU7 checks quant_u7 exactly.
func checkQuantU7(rng *rand.Rand, m, k int) error {
	name := fmt.Sprintf("quant_u7 m=%d k=%d", m, k)
	x := quantInput(rng, m, k)
	q, sx, zx := make([]uint8, m*k), make([]float32, m), make([]int32, m)
	quantRowsU7(q, k, sx, zx, x, k, m, k)
	wq, wsx, wzx := refQuantU7(x, k, m, k)
	if err := exact(name+" q", q, k, m, k, wq); err != nil {
		return err
	}
	if err := exact(name+" zero point", zx, 1, m, 1, wzx); err != nil {
		return err
	}
	return exact(name+" scale", sx, 1, m, 1, wsx)
}

// checkQ4 checks q4_to_i8 exactly on random nibbles and scales of both
// signs, with an all-zero-scale row.
func checkQ4(rng *rand.Rand, rows, cols int) error {
	name := fmt.Sprintf("q4_to_i8 rows=%d cols=%d", rows, cols)
	q4 := make([]byte, rows*cols/2)
	for i := range q4 {
		q4[i] = byte(rng.IntN(256))
	}
	scales := randFloats(rng, rows*cols/32)
	clear(scales[:cols/32])
	q8, rs := make([]int8, rows*cols), make([]float32, rows)
	q4Rows(q8, rs, q4, scales, rows, cols)
	wq, wrs := refQ4ToI8(q4, scales, rows, cols)
	if err := exact(name, q8, cols, rows, cols, wq); err != nil {
		return err
	}
	return exact(name+" scale", rs, 1, rows, 1, wrs)
}

// checkRowSums checks i8_rowsums exactly, with a row stride of k+3.
func checkRowSums(rng *rand.Rand, n, k int) error {
	w := randInt8s(rng, span(n, k+3, k))
	got := make([]int32, n)
	rowSums(got, w, k+3, n, k)
	return exact(fmt.Sprintf("i8_rowsums n=%d k=%d", n, k), got, 1, n, 1, refRowSums(w, k+3, n, k))
}

// checkDequant checks i8_dequant exactly against Matrix.Row, the portable
// path.
func checkDequant(rng *rand.Rand, rows, cols int) error {
	w := &kernels.Matrix{Rows: rows, Cols: cols, Scheme: kernels.SchemeInt8,
		Q8: randInt8s(rng, rows*cols), Scales: randFloats(rng, rows)}
	got := filled(rows*cols + 2)
	dequantRows(got, w.Q8, w.Scales, rows, cols)
	want := make([]float32, rows*cols)
	for r := range rows {
		w.Row(r, want[r*cols:(r+1)*cols])
	}
	name := fmt.Sprintf("i8_dequant rows=%d cols=%d", rows, cols)
	if err := exact(name, got, cols, rows, cols, want); err != nil {
		return err
	}
	return checkPadding(name, got, rows*cols+2, 1, rows*cols)
}

// checkGEMMI8 checks i8_gemm exactly, with x and w row strides of k+1 and
// dst's of n+2.
func checkGEMMI8(rng *rand.Rand, m, n, k int, withBias bool) error {
	name := fmt.Sprintf("i8_gemm m=%d n=%d k=%d", m, n, k)
	ldx, ldw, ldd := k+1, k+1, n+2
	x, w := randInt8s(rng, span(m, ldx, k)), randInt8s(rng, span(n, ldw, k))
	sx, sw := randFloats(rng, m), randFloats(rng, n)
	var bias []float32
	if withBias {
		bias = randFloats(rng, n)
	}
	dst := filled(span(m, ldd, n) + 2)
	gemmI8(dst, ldd, x, ldx, sx, w, ldw, sw, bias, m, n, k)
	if err := exact(name, dst, ldd, m, n, refGEMMI8(x, ldx, sx, w, ldw, sw, bias, m, n, k)); err != nil {
		return err
	}
	return checkPadding(name, dst, ldd, m, n)
}

// checkGEMMU7 checks i8_gemm_relaxed exactly, with x and w row strides of
// k+1 and dst's of n+2.
func checkGEMMU7(rng *rand.Rand, m, n, k int, withBias bool) error {
	name := fmt.Sprintf("i8_gemm_relaxed m=%d n=%d k=%d", m, n, k)
	ldx, ldw, ldd := k+1, k+1, n+2
	x, w := randU7s(rng, span(m, ldx, k)), randInt8s(rng, span(n, ldw, k))
	sx, sw := randFloats(rng, m), randFloats(rng, n)
	zx := make([]int32, m)
	for i := range zx {
		zx[i] = int32(rng.IntN(128))
	}
	wsum := refRowSums(w, ldw, n, k)
	var bias []float32
	if withBias {
		bias = randFloats(rng, n)
	}
	dst := filled(span(m, ldd, n) + 2)
	gemmU7(dst, ldd, x, ldx, sx, zx, w, ldw, sw, wsum, bias, m, n, k)
	if err := exact(name, dst, ldd, m, n, refGEMMU7(x, ldx, sx, zx, w, ldw, sw, wsum, bias, m, n, k)); err != nil {
		return err
	}
	return checkPadding(name, dst, ldd, m, n)
}

// checkLayerNorm checks layernorm, rows offset by a large mean to exercise
// the variance's accuracy.
func checkLayerNorm(rng *rand.Rand, m, n int) error {
	x := randFloats(rng, m*n)
	for i := range x {
		x[i] += float32(100 * (i / n))
	}
	gamma, beta := randFloats(rng, n), randFloats(rng, n)
	dst := make([]float32, m*n)
	layerNorm(dst, x, m, n, gamma, beta, 1e-5)
	return closeTo(fmt.Sprintf("layernorm m=%d n=%d", m, n), dst, n, m, n, refLayerNorm(x, m, n, gamma, beta, 1e-5))
}

// checkSoftmax checks softmax_rows on rows of stride n.
func checkSoftmax(rng *rand.Rand, rows, n int, causal bool) error {
	x := randFloats(rng, rows*n)
	want := refSoftmax(x, rows, n, 0.7, causal)
	softmaxRows(x, n, rows, n, 0.7, causal)
	return closeTo(fmt.Sprintf("softmax_rows rows=%d n=%d causal=%v", rows, n, causal), x, n, rows, n, want)
}

// checkActivation checks gelu, quickgelu or relu on values spread over
// [−8, 8] plus 0.
func checkActivation(rng *rand.Rand, n int, act string) error {
	x := randFloats(rng, n)
	for i := range x {
		x[i] *= 3
	}
	want := make([]float64, n)
	switch act {
	case "gelu":
		for i, v := range x {
			want[i] = refGELU(v)
		}
		geluInPlace(x)
	case "quickgelu":
		for i, v := range x {
			want[i] = refQuickGELU(v)
		}
		quickGELUInPlace(x)
	case "relu":
		for i, v := range x {
			want[i] = refReLU(v)
		}
		reluInPlace(x)
	}
	return closeTo(fmt.Sprintf("%s n=%d", act, n), x, n, 1, n, want)
}

// checkAdd checks add.
func checkAdd(rng *rand.Rand, n int) error {
	dst, src := randFloats(rng, n), randFloats(rng, n)
	want := make([]float64, n)
	for i := range want {
		want[i] = float64(dst[i] + src[i])
	}
	addInPlace(dst, src)
	return closeTo(fmt.Sprintf("add n=%d", n), dst, n, 1, n, want)
}
