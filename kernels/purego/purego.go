// Package purego is the portable backend of package kernels: plain Go,
// float32, no assembly or cgo, so it builds for every GOOS/GOARCH including
// js/wasm. It spreads each op over a fixed pool of goroutines and gets its
// speed from cache blocking and register tiling in the GEMM behind Linear
// and Conv2D.
package purego

import (
	"math"

	"github.com/clipwasm/clipwasm/kernels"
)

// backend implements kernels.Backend on a worker pool.
type backend struct {
	pool *pool
}

// New returns the portable backend using threads goroutines per op;
// threads <= 0 means runtime.GOMAXPROCS(0). Its workers exit once the
// backend is garbage collected.
func New(threads int) kernels.Backend {
	return &backend{pool: newPool(threads)}
}

// Name identifies the backend.
func (b *backend) Name() string { return "purego" }

// elemGrain is the fewest elements worth handing to another thread in the
// elementwise ops; below it the hand-off costs more than the loop.
const elemGrain = 1 << 14

// Add computes dst += src.
func (b *backend) Add(dst, src []float32) {
	if len(src) < len(dst) {
		panic("purego: Add src shorter than dst")
	}
	b.pool.parallelFor(len(dst), elemGrain, func(lo, hi int) {
		d, s := dst[lo:hi], src[lo:hi]
		for i := range d {
			d[i] += s[i]
		}
	})
}

// Activate applies act to x in place.
func (b *backend) Activate(x []float32, act kernels.Activation) {
	var f func([]float32)
	switch act {
	case kernels.QuickGELU:
		f = quickGELU
	case kernels.GELU:
		f = gelu
	case kernels.ReLU:
		f = relu
	default:
		panic("purego: unknown activation " + act.String())
	}
	// The transcendental activations cost several ns per element, so a
	// smaller grain than for Add already pays for the hand-off.
	b.pool.parallelFor(len(x), elemGrain/8, func(lo, hi int) { f(x[lo:hi]) })
}

func quickGELU(x []float32) {
	for i, v := range x {
		x[i] = v / (1 + expf(-1.702*v))
	}
}

func gelu(x []float32) {
	for i, v := range x {
		x[i] = float32(0.5 * float64(v) * (1 + math.Erf(float64(v)/math.Sqrt2)))
	}
}

func relu(x []float32) {
	for i, v := range x {
		x[i] = max(v, 0)
	}
}

// LayerNorm normalises each row of x [m, n] into dst (which may equal x).
// Mean and variance are accumulated in float64 in two passes, which keeps
// the variance accurate for rows with a large mean.
func (b *backend) LayerNorm(dst, x []float32, m, n int, gamma, beta []float32, eps float32) {
	if len(x) < m*n || len(dst) < m*n || len(gamma) < n || len(beta) < n {
		panic("purego: LayerNorm slice too short for its shape")
	}
	gamma, beta = gamma[:n], beta[:n]
	b.pool.parallelFor(m, max(1, elemGrain/max(n, 1)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			src, out := x[r*n:r*n+n], dst[r*n:r*n+n]
			var sum float64
			for _, v := range src {
				sum += float64(v)
			}
			mean := sum / float64(n)
			var ss float64
			for _, v := range src {
				d := float64(v) - mean
				ss += d * d
			}
			inv := 1 / math.Sqrt(ss/float64(n)+float64(eps))
			for i, v := range src {
				out[i] = float32((float64(v)-mean)*inv)*gamma[i] + beta[i]
			}
		}
	})
}

// AvgPool2D averages non-overlapping k×k windows of src [n,h,w,c] into
// dst [n, h/k, w/k, c].
func (b *backend) AvgPool2D(dst, src []float32, n, h, w, c, k int) {
	oh, ow := h/k, w/k
	if len(src) < n*h*w*c || len(dst) < n*oh*ow*c {
		panic("purego: AvgPool2D slice too short for its shape")
	}
	scale := 1 / float32(k*k)
	b.pool.parallelFor(n*oh, max(1, elemGrain/max(1, ow*c*k*k)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			img, y := r/oh, r%oh
			for x := range ow {
				out := dst[((img*oh+y)*ow+x)*c:][:c]
				clear(out)
				for dy := range k {
					for dx := range k {
						in := src[((img*h+y*k+dy)*w+x*k+dx)*c:][:c]
						for i, v := range in {
							out[i] += v
						}
					}
				}
				for i := range out {
					out[i] *= scale
				}
			}
		}
	})
}
