package purego

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// pool is a fixed set of worker goroutines that share the chunks of one
// parallel loop with the calling goroutine. Keeping the workers alive avoids
// paying goroutine creation on every small op (a ViT forward makes hundreds
// of calls), and letting the caller take chunks too means a loop always
// finishes even when every worker is busy with another caller's loop.
type pool struct {
	threads int
	work    chan *loop
}

// loop is one parallelFor in flight: chunks are claimed through next, and
// done counts finished chunks so the caller waits only for real work, not for
// helpers that arrive after everything was claimed.
type loop struct {
	n, chunk int
	nchunks  int64
	next     atomic.Int64
	done     sync.WaitGroup
	body     func(lo, hi int)
}

// newPool starts threads-1 workers (the caller is the last thread).
func newPool(threads int) *pool {
	p := &pool{threads: threads, work: make(chan *loop, threads)}
	for range threads - 1 {
		go func(work <-chan *loop) {
			for l := range work {
				l.run()
			}
		}(p.work)
	}
	return p
}

// run claims and executes chunks until none are left.
func (l *loop) run() {
	for {
		c := l.next.Add(1) - 1
		if c >= l.nchunks {
			return
		}
		lo := int(c) * l.chunk
		l.body(lo, min(lo+l.chunk, l.n))
		l.done.Done()
	}
}

// parallelFor calls body over [0, n) split into chunks of at least grain
// items. Chunks are claimed dynamically, so uneven chunk costs (tails, the
// causal triangle) still balance. Small loops run inline on the caller.
func (p *pool) parallelFor(n, grain int, body func(lo, hi int)) {
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	if p.threads == 1 || n <= grain {
		body(0, n)
		return
	}
	// About four chunks per thread keeps load balance without making the
	// chunks so small that claiming them costs more than the work.
	chunk := max(grain, (n+4*p.threads-1)/(4*p.threads))
	nchunks := (n + chunk - 1) / chunk
	l := &loop{n: n, chunk: chunk, nchunks: int64(nchunks), body: body}
	l.done.Add(nchunks)
	helpers := min(p.threads, nchunks) - 1
	for range helpers {
		select {
		case p.work <- l:
		default:
			// Every worker is already queued up; the caller does the rest.
		}
	}
	l.run()
	l.done.Wait()
}

// defaultThreads resolves the threads argument of New.
func defaultThreads(threads int) int {
	if threads <= 0 {
		return runtime.GOMAXPROCS(0)
	}
	return threads
}
