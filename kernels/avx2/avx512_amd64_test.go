package avx2

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/clipwasm/clipwasm/kernels"
)

// TestCPUFeatures logs what detectCPU found and, on Linux, checks it
// against the kernel's view in /proc/cpuinfo, which also clears a flag
// whose register state the OS does not save.
func TestCPUFeatures(t *testing.T) {
	t.Logf("detected: avx2+fma=%v avx512(F,BW,VL,DQ)=%v avx512_vnni=%v avx_vnni=%v",
		cpu.avx2FMA, cpu.avx512, cpu.avx512VNNI, cpu.avxVNNI)
	flags, err := procCPUFlags()
	if err != nil {
		t.Skipf("skipping the /proc/cpuinfo comparison: %v", err)
	}
	has := func(names ...string) bool {
		for _, n := range names {
			if !slices.Contains(flags, n) {
				return false
			}
		}
		return true
	}
	avx512 := has("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq")
	for _, c := range []struct {
		name      string
		got, want bool
	}{
		{"avx2+fma", cpu.avx2FMA, has("avx2", "fma")},
		{"avx512", cpu.avx512, avx512},
		{"avx512_vnni", cpu.avx512VNNI, avx512 && has("avx512_vnni")},
		{"avx_vnni", cpu.avxVNNI, has("avx2", "fma", "avx_vnni")},
	} {
		if c.got != c.want {
			t.Errorf("%s: detected %v, /proc/cpuinfo says %v", c.name, c.got, c.want)
		}
	}
}

// procCPUFlags returns the flags of the first processor in /proc/cpuinfo.
func procCPUFlags() ([]string, error) {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if key, val, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(key) == "flags" {
			return strings.Fields(val), nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading /proc/cpuinfo: %w", err)
	}
	return nil, fmt.Errorf("/proc/cpuinfo has no flags line")
}

// skipWithoutAVX512 skips a test of the AVX-512 kernels on a CPU that
// cannot run them; needVNNI also asks for AVX512_VNNI.
func skipWithoutAVX512(t testing.TB, needVNNI bool) {
	t.Helper()
	if !cpu.avx512 {
		t.Skip("skipping: CPU lacks AVX-512 F/BW/VL/DQ (or the OS does not save ZMM state); the AVX-512 kernels are untested here")
	}
	if needVNNI && !cpu.avx512VNNI {
		t.Skip("skipping: CPU lacks AVX512_VNNI; the VNNI integer kernel is untested here")
	}
}

// kernelKs are the k extents the float32 micro-kernel test runs: every
// remainder of the 4-step unrolled loop, odd k, and a full cache block.
var kernelKs = []int{1, 2, 3, 4, 5, 7, 8, 9, 13, 64, 255, kcF32}

// TestSgemm512 checks the 6×32 float32 kernel on two packed panels, with
// row and column strides wider than the tile, against the AVX2 kernel on
// each panel (bit for bit: the same FMA sequence per output) and against a
// float64 reference.
func TestSgemm512(t *testing.T) {
	skipWithoutAVX512(t, false)
	rng := rand.New(rand.NewPCG(21, 22))
	for _, kc := range kernelKs {
		for rows := 4; rows <= mr; rows++ {
			lda, ldc := kc+3, 2*nr+5
			a := randSlice(rng, mr*lda+1)
			w := kernels.NewMatrix(2*nr, kc, randSlice(rng, 2*nr*kc))
			pw := packF32(w)
			init := randSlice(rng, mr*ldc)
			got, want := slices.Clone(init), slices.Clone(init)
			sgemm512(rows, kc, &a[0], lda, &pw.data[0], kc*nr, &got[0], ldc)
			sgemm(rows, kc, &a[0], lda, &pw.data[0], &want[0], ldc)
			sgemm(rows, kc, &a[0], lda, &pw.data[kc*nr:][0], &want[nr], ldc)
			name := fmt.Sprintf("rows%d kc%d", rows, kc)
			checkClose(t, name+" vs AVX2", got, want, 0)
			for r := range mr {
				for j := range 2 * nr {
					ref, mag := float64(init[r*ldc+j]), math.Abs(float64(init[r*ldc+j]))
					if r < rows {
						for kk := range kc {
							prod := float64(a[r*lda+kk]) * float64(w.F32[j*kc+kk])
							ref += prod
							mag += math.Abs(prod)
						}
					}
					// The float32 rounding bound of kc+1 sequential sums.
					tol := float64(kc+1) * 0x1p-24 * mag
					if d := math.Abs(float64(got[r*ldc+j]) - ref); !(d <= tol) {
						t.Fatalf("%s [%d,%d] = %v, want %v", name, r, j, got[r*ldc+j], ref)
					}
				}
			}
		}
	}
}

// TestQgemm512Grouped checks the VNNI kernel's scaled output, in several
// q4-like scale groups onto a non-zero C, against the AVX2 kernel on each
// panel, bit for bit (TestQGemmExact checks its integer sums).
func TestQgemm512Grouped(t *testing.T) {
	skipWithoutAVX512(t, true)
	rng := rand.New(rand.NewPCG(23, 24))
	const groups, gkp = 3, 4
	k := 2 * groups * gkp
	w := kernels.QuantizeInt8(2*nr, k, randSlice(rng, 2*nr*k))
	pw := packInt(w)
	sw := randSlice(rng, 2*groups*nr) // panel 0's groups, then panel 1's
	sa := randSlice(rng, mr)
	a := make([]int16, mr*k)
	for i := range a {
		a[i] = int16(rng.IntN(2*actMax+1) - actMax)
	}
	for rows := 4; rows <= mr; rows++ {
		init := randSlice(rng, mr*2*nr)
		got, want := slices.Clone(init), slices.Clone(init)
		qgemm512(rows, groups, gkp, &a[0], k, &pw.q[0], pw.kp*2*nr, &got[0], 2*nr, &sa[0], &sw[0], nr, groups*nr)
		for p := range 2 {
			qgemm(rows, groups, gkp, &a[0], k, &pw.q[p*pw.kp*2*nr], &want[p*nr], 2*nr, &sa[0], &sw[p*groups*nr], nr)
		}
		checkClose(t, fmt.Sprintf("grouped rows%d", rows), got, want, 0)
	}
}

// TestLinearAVX512MatchesAVX2 runs Linear over the edge and CLIP shapes on
// both kernel sets: their results must agree bit for bit, since the wide
// kernels repeat the narrow ones' arithmetic per output (TestLinearF32 and
// TestLinearQuantized check New, the AVX-512 form here, against the
// references).
func TestLinearAVX512MatchesAVX2(t *testing.T) {
	skipWithoutAVX512(t, false)
	rng := rand.New(rand.NewPCG(25, 26))
	for _, scheme := range []kernels.Scheme{kernels.SchemeF32, kernels.SchemeInt8, kernels.SchemeQ4} {
		for _, c := range linearCases(t, rng, scheme) {
			for _, th := range []int{1, 2} {
				wide, err := NewAVX512(th)
				if err != nil {
					t.Fatal(err)
				}
				narrow, err := NewAVX2(th)
				if err != nil {
					t.Fatal(err)
				}
				got, want := make([]float32, c.m*c.n), make([]float32, c.m*c.n)
				wide.Linear(got, c.x, c.m, c.w, c.bias)
				narrow.Linear(want, c.x, c.m, c.w, c.bias)
				checkClose(t, fmt.Sprintf("%s t%d", c.name, th), got, want, 0)
			}
		}
	}
}
