package quantize

import (
	"errors"
	"math"
	"runtime"
	"sync"

	"github.com/clipwasm/clipwasm/kernels"
)

// gptq quantizes w [rows, cols] to int8 or q4 one column at a time, as GPTQ
// does (Frantar et al., 2022, "GPTQ: Accurate Post-Training Quantization for
// Generative Pre-trained Transformers"): the rounding error of each column
// is spread over the columns not yet quantized so as to keep x·wᵀ close for
// the inputs x the Gram matrix g was accumulated from. Here the Hessian is
// g's block diagonal, so the error moves only within a column block. damp
// is added to the Hessian's diagonal, as a fraction of its mean: it keeps
// the update from overfitting the calibration inputs (a direction they
// never took is then treated as if every direction were equally likely).
//
// int8 rows keep the scale of plain rounding, max|row|/127 (a compensated
// value past it is clamped); q4 blocks take Q4Scale of their values as
// compensated so far. round gives the stored precision of the scales (nil:
// float32).
//
// As in GPTQ's "lazy batch" form, the columns go in runs of lazyRun: within
// a run the error moves column by column, and onto the rest of the block
// once per run, as one matrix product on backend b.
func gptq(b kernels.Backend, w []float32, rows, cols int, g *gram, q4 bool, damp float64, round func(float32) float32) (*kernels.Matrix, error) {
	if q4 && (cols%kernels.Q4Block != 0 || g.block%kernels.Q4Block != 0) {
		return nil, errors.New("quantize: q4 needs columns and Gram blocks in multiples of 32")
	}
	if round == nil {
		round = func(s float32) float32 { return s }
	}
	m := &kernels.Matrix{Rows: rows, Cols: cols}
	var codes []uint8
	if q4 {
		codes = make([]uint8, rows*cols)
		m.Scales = make([]float32, rows*cols/kernels.Q4Block)
	} else {
		m.Scheme, m.Q8, m.Scales = kernels.SchemeInt8, make([]int8, rows*cols), make([]float32, rows)
		for r := range rows {
			var amax float32
			for _, v := range w[r*cols : (r+1)*cols] {
				amax = max(amax, float32(math.Abs(float64(v))))
			}
			m.Scales[r] = round(amax / 127)
		}
	}
	x := append([]float32(nil), w...) // the weights as compensated so far
	errs := make([]float32, rows*lazyRun)
	for c0 := 0; c0 < cols; c0 += g.block {
		h, n := g.blockAt(c0)
		// H⁻¹ = UᵀU, as GPTQ's update rule needs; the same for every row.
		u := inverseFactor(h, n, damp)
		for j0 := 0; j0 < n; j0 += lazyRun {
			run := min(lazyRun, n-j0)
			parallel(rows, func(lo, hi int) {
				blk := make([]float32, kernels.Q4Block)
				var s float32 // q4: the current block's scale
				for r := lo; r < hi; r++ {
					xr := x[r*cols+c0 : r*cols+c0+n]
					for i := j0; i < j0+run; i++ {
						c := c0 + i
						var q float32 // the stored value of column c
						if q4 {
							if c%kernels.Q4Block == 0 {
								copy(blk, xr[i:])
								s = kernels.Q4Scale(blk, round)
								m.Scales[(r*cols+c)/kernels.Q4Block] = s
							}
							code := kernels.Q4Code(xr[i], s)
							codes[r*cols+c] = code
							q = s * float32(int(code)-8)
						} else if step := m.Scales[r]; step != 0 {
							k := max(-127, min(127, math.Round(float64(xr[i]/step))))
							m.Q8[r*cols+c] = int8(k)
							q = step * float32(k)
						}
						ui := u[i*n : (i+1)*n]
						e := (xr[i] - q) / float32(ui[i])
						errs[r*lazyRun+i-j0] = e
						rest, ur := xr[i+1:j0+run], ui[i+1:j0+run]
						for j := range rest {
							rest[j] -= e * float32(ur[j])
						}
					}
				}
			})
			if j0+run < n {
				compensate(b, x, rows, cols, c0+j0+run, c0+n, errs, run, u[j0*n:(j0+run)*n], n, j0+run)
			}
		}
	}
	if q4 {
		return kernels.NewQ4(rows, cols, codes, m.Scales)
	}
	return m, nil
}

// lazyRun is the number of columns whose errors are carried onto the rest
// of their block at once. It is one q4 block, so that a q4 block's scale
// is chosen from its values as compensated within the run.
const lazyRun = kernels.Q4Block

// compensate subtracts E·U' from the columns [from, to) of x [rows, cols]:
// E [rows, run] holds a run's scaled errors (row stride lazyRun), U' the
// run's rows of U (row stride n) from column off of the block on.
func compensate(b kernels.Backend, x []float32, rows, cols, from, to int, e []float32, run int, u []float64, n, off int) {
	k := to - from
	// Linear computes dst = e·wᵀ: w [k, run] is U' transposed.
	wt := make([]float32, k*run)
	for i := 0; i < run; i++ {
		for j := 0; j < k; j++ {
			wt[j*run+i] = float32(u[i*n+off+j])
		}
	}
	et := e
	if run != lazyRun {
		et = make([]float32, rows*run)
		for r := 0; r < rows; r++ {
			copy(et[r*run:(r+1)*run], e[r*lazyRun:])
		}
	}
	d := make([]float32, rows*k)
	b.Linear(d, et, rows, kernels.NewMatrix(k, run, wt), nil)
	for r := 0; r < rows; r++ {
		xr := x[r*cols+from : r*cols+to]
		for j, v := range d[r*k : (r+1)*k] {
			xr[j] -= v
		}
	}
}

// parallel runs f over [0, n) split into one contiguous range per core.
func parallel(n int, f func(lo, hi int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { f(w*n/workers, (w+1)*n/workers) })
	}
	wg.Wait()
}

// inverseFactor returns the upper-triangular U [n, n] with UᵀU = H⁻¹ for
// H = h + damp·mean(diag h)·I. An all-zero h (inputs never seen) gives
// the identity: plain rounding.
func inverseFactor(h []float64, n int, damp float64) []float64 {
	a := make([]float64, n*n)
	var mean float64
	for i := 0; i < n; i++ {
		mean += h[i*n+i]
	}
	mean /= float64(n)
	if mean == 0 {
		for i := 0; i < n; i++ {
			a[i*n+i] = 1
		}
		return a
	}
	copy(a, h)
	for i := 0; i < n; i++ {
		a[i*n+i] += damp * mean
	}
	// With J the order reversal, JHJ = LLᵀ gives H⁻¹ = UᵀU for the upper
	// triangular U = J·L⁻¹·J: one Cholesky factorisation and one
	// triangular inverse, in place.
	reverse(a, n)
	cholesky(a, n)
	invertLower(a, n)
	reverse(a, n)
	return a
}

// reverse replaces a [n, n] by JaJ, J the order reversal.
func reverse(a []float64, n int) {
	for i, j := 0, n*n-1; i < j; i, j = i+1, j-1 {
		a[i], a[j] = a[j], a[i]
	}
}

// cholesky replaces the symmetric positive definite a [n, n] by its lower
// Cholesky factor L (a = LLᵀ), zeroing the upper triangle. The dampened
// Gram matrices are positive definite, so a non-positive pivot can only be
// rounding on a nearly singular block: it is clamped to a tiny positive
// value, which makes that column plain rounding.
func cholesky(a []float64, n int) {
	for j := 0; j < n; j++ {
		aj := a[j*n : j*n+j]
		d := a[j*n+j]
		for _, v := range aj {
			d -= v * v
		}
		d = math.Sqrt(max(d, 1e-12*math.Abs(a[j*n+j])+math.SmallestNonzeroFloat64))
		a[j*n+j] = d
		for i := j + 1; i < n; i++ {
			ai := a[i*n : i*n+j]
			s := a[i*n+j]
			for k, v := range ai {
				s -= v * aj[k]
			}
			a[i*n+j] = s / d
		}
		for k := j + 1; k < n; k++ {
			a[j*n+k] = 0
		}
	}
}

// invertLower replaces the lower-triangular a [n, n] by its inverse.
func invertLower(a []float64, n int) {
	for j := 0; j < n; j++ {
		a[j*n+j] = 1 / a[j*n+j]
		// Column j of the inverse below the diagonal, by forward
		// substitution: x_i = −(Σ_{j≤k<i} a_ik·x_k) / a_ii.
		for i := j + 1; i < n; i++ {
			var s float64
			for k := j; k < i; k++ {
				s += a[i*n+k] * a[k*n+j]
			}
			a[i*n+j] = -s / a[i*n+i]
		}
	}
}
