package purego

import "github.com/clipwasm/clipwasm/kernels/internal/workpool"

// pool is the worker pool this backend shares with the avx2 one (package
// workpool); its workers exit once the backend is garbage collected.
type pool struct{ *workpool.Pool }

// newPool starts a pool of threads goroutines, the caller's included;
// threads <= 0 means runtime.GOMAXPROCS(0).
func newPool(threads int) *pool { return &pool{workpool.New(threads)} }

// parallelFor calls body over [0, n) split into chunks of at least grain
// items, claimed dynamically so that uneven chunk costs (tails, the causal
// triangle) still balance; small loops run inline (workpool.Pool.For).
func (p *pool) parallelFor(n, grain int, body func(lo, hi int)) { p.For(n, grain, body) }
