package avx2

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/purego"
)

// newTest returns the backend with the given threads, skipping the test on
// a CPU without AVX2/FMA.
func newTest(tb testing.TB, threads int) kernels.Backend {
	tb.Helper()
	be, err := New(threads)
	if err != nil {
		tb.Skipf("skipping: %v", err)
	}
	return be
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// checkClose fails if got differs from want by more than tol times the
// largest |want| (at least 1).
func checkClose(t *testing.T, name string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: len %d, want %d", name, len(got), len(want))
	}
	scale := 1.0
	for _, w := range want {
		scale = max(scale, math.Abs(float64(w)))
	}
	for i := range want {
		if d := math.Abs(float64(got[i]) - float64(want[i])); !(d <= tol*scale) {
			t.Fatalf("%s: [%d] = %v, want %v (scale %v)", name, i, got[i], want[i], scale)
		}
	}
}

// threadCounts: inline, both cores, and more threads than cores.
var threadCounts = []int{1, 2, 5}

// gemmShapes are edge shapes around the 6×16 tile (m = 1–11 and a last row
// block of 1, 3 and 5 rows exercise every split of sliverRows), the k
// blocks and the task sizes, and the real CLIP shapes.
var gemmShapes = []struct{ m, n, k int }{
	{1, 1, 1}, {1, 16, 1}, {6, 16, 1}, {1, 1, 7}, {5, 15, 3}, {7, 17, 5},
	{2, 3, 4}, {3, 16, 2}, {4, 16, 6}, {8, 17, 9}, {9, 16, 40}, {10, 32, 3},
	{11, 33, 17}, {mcRows + 1, 20, 30}, {mcRows + 3, 16, 5},
	{6, 16, 8}, {mr + 1, nr + 1, kcF32 + 1}, {mr - 1, nr - 1, kcF32 - 1},
	{2*mr + 3, 3*nr + 2, 2*kcF32 + 7}, {mcRows + 5, ncPanels*nr + 5, 33},
	{13, 1, 3072}, {1, 33, kcInt + 3}, {50, 96, 768}, {130, 260, 300},
}

func TestLinearF32(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ref := purego.New(1)
	for _, c := range gemmShapes {
		x := randSlice(rng, c.m*c.k)
		wd := randSlice(rng, c.n*c.k)
		bias := randSlice(rng, c.n)
		for _, bs := range [][]float32{nil, bias} {
			want := make([]float32, c.m*c.n)
			ref.Linear(want, x, c.m, kernels.NewMatrix(c.n, c.k, wd), bs)
			w := kernels.NewMatrix(c.n, c.k, wd)
			for _, th := range threadCounts {
				dst := make([]float32, c.m*c.n)
				newTest(t, th).Linear(dst, x, c.m, w, bs)
				checkClose(t, fmt.Sprintf("m%d n%d k%d bias%v t%d", c.m, c.n, c.k, bs != nil, th), dst, want, 1e-5)
			}
		}
	}
}

// TestLinearThreadsAgree checks that results do not depend on the thread
// count: tiles, not threads, fix the summation order.
func TestLinearThreadsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m, n, k := 150, 200, 608
	x := randSlice(rng, m*k)
	wd := randSlice(rng, n*k)
	for _, scheme := range []kernels.Scheme{kernels.SchemeF32, kernels.SchemeInt8, kernels.SchemeQ4} {
		w := quantizedMatrix(t, scheme, n, k, wd)
		d1, d2 := make([]float32, m*n), make([]float32, m*n)
		newTest(t, 1).Linear(d1, x, m, w, nil)
		newTest(t, 2).Linear(d2, x, m, w, nil)
		for i := range d1 {
			if d1[i] != d2[i] {
				t.Fatalf("%s [%d]: 1 thread %v, 2 threads %v", scheme, i, d1[i], d2[i])
			}
		}
	}
}

// TestLinearConcurrentFirstUse makes many goroutines hit an unprepared
// matrix at once; run with -race to check the lazy packing.
func TestLinearConcurrentFirstUse(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	m, n, k := 9, 21, 64
	x := randSlice(rng, m*k)
	wd := randSlice(rng, n*k)
	be := newTest(t, 2)
	for _, scheme := range []kernels.Scheme{kernels.SchemeF32, kernels.SchemeInt8, kernels.SchemeQ4} {
		w := quantizedMatrix(t, scheme, n, k, wd)
		want := make([]float32, m*n)
		newTest(t, 1).Linear(want, x, m, quantizedMatrix(t, scheme, n, k, wd), nil)
		var wg sync.WaitGroup
		dsts := make([][]float32, 8)
		for g := range dsts {
			dsts[g] = make([]float32, m*n)
			wg.Go(func() { be.Linear(dsts[g], x, m, w, nil) })
		}
		wg.Wait()
		for g, d := range dsts {
			checkClose(t, fmt.Sprintf("%s goroutine %d", scheme, g), d, want, 0)
		}
		if _, ok := w.Prepared.(preparedForm); !ok {
			t.Fatalf("%s: Prepared = %T, want this backend's form", scheme, w.Prepared)
		}
	}
}

// TestLinearForeignPrepared checks that another backend's cached form is
// neither used nor overwritten.
func TestLinearForeignPrepared(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x := randSlice(rng, 3*5)
	w := kernels.NewMatrix(6, 5, randSlice(rng, 30))
	want := make([]float32, 18)
	purego.New(1).Linear(want, x, 3, w, nil) // purego's form goes into Prepared
	foreign := w.Prepared
	if foreign == nil {
		t.Fatal("purego left Prepared empty")
	}
	dst := make([]float32, 18)
	newTest(t, 1).Linear(dst, x, 3, w, nil)
	checkClose(t, "foreign", dst, want, 1e-5)
	if w.Prepared != foreign {
		t.Fatalf("Prepared overwritten with %T", w.Prepared)
	}
}

// TestLinearEdgeTilesExact checks that an output's value does not depend on
// whether it falls in a full tile or in a partial one at the edge of the
// matrix: the top-left [m, n] block of a product with extra rows and
// columns must equal the [m, n] product bit for bit. (It is what makes the
// 6×32 AVX-512 tiles agree exactly with the 6×16 AVX2 ones, whose edges
// fall elsewhere.)
func TestLinearEdgeTilesExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, scheme := range []kernels.Scheme{kernels.SchemeF32, kernels.SchemeInt8, kernels.SchemeQ4} {
		for _, c := range []struct{ m, n, k int }{{1, 1, 32}, {7, 17, 5}, {5, 15, 64}, {13, 33, 96}, {mcRows + 1, ncPanels*nr + 3, 40}} {
			k := c.k
			if scheme == kernels.SchemeQ4 {
				k = (k + 31) &^ 31
			}
			bigM, bigN := c.m+mr, (c.n+2*nr)&^(2*nr-1)+2*nr
			x := randSlice(rng, bigM*k)
			wd := randSlice(rng, bigN*k)
			bias := randSlice(rng, bigN)
			small := quantizedMatrix(t, scheme, c.n, k, wd[:c.n*k])
			big := quantizedMatrix(t, scheme, bigN, k, wd)
			for _, th := range []int{1, 2} {
				be := newTest(t, th)
				got, full := make([]float32, c.m*c.n), make([]float32, bigM*bigN)
				be.Linear(got, x, c.m, small, bias[:c.n])
				be.Linear(full, x, bigM, big, bias)
				want := make([]float32, 0, c.m*c.n)
				for i := range c.m {
					want = append(want, full[i*bigN:i*bigN+c.n]...)
				}
				checkClose(t, fmt.Sprintf("%s m%d n%d k%d t%d", scheme, c.m, c.n, k, th), got, want, 0)
			}
		}
	}
}
