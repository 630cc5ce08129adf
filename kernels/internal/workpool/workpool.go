// Package workpool runs the parallel loops of the CPU backends (purego,
// avx2) on a fixed set of worker goroutines. Keeping the workers alive
// avoids starting goroutines on each of the hundreds of ops in a forward
// pass, and the calling goroutine takes tasks too, so a loop finishes even
// when every worker is busy with another caller's loop.
package workpool

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Pool is a fixed set of worker goroutines. Its workers exit once the Pool
// is garbage collected.
type Pool struct {
	threads int
	work    chan *job
}

// job is one Run in flight: tasks are claimed through next, and done
// counts finished tasks, so the caller waits only for real work, not for
// workers that arrive after everything was claimed.
type job struct {
	n    int64
	next atomic.Int64
	done sync.WaitGroup
	task func(t int)
}

// New returns a pool running loops on threads goroutines, the caller's
// included; threads <= 0 means runtime.GOMAXPROCS(0).
func New(threads int) *Pool {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &Pool{threads: threads, work: make(chan *job, threads)}
	for range threads - 1 {
		go func(work <-chan *job) {
			for j := range work {
				j.run()
			}
		}(p.work)
	}
	// The workers hold only the channel, so the Pool itself can be
	// collected; closing the channel then ends them.
	runtime.AddCleanup(p, func(work chan *job) { close(work) }, p.work)
	return p
}

// Threads returns the number of goroutines a loop runs on.
func (p *Pool) Threads() int { return p.threads }

// run claims and executes tasks until none are left.
func (j *job) run() {
	for {
		t := j.next.Add(1) - 1
		if t >= j.n {
			return
		}
		j.task(int(t))
		j.done.Done()
	}
}

// Run calls task(0..n-1) on up to Threads goroutines and returns when all
// have finished. Tasks are claimed dynamically, so uneven task costs still
// balance. A one-task call, or a one-thread pool, runs inline.
func (p *Pool) Run(n int, task func(t int)) {
	if n <= 0 {
		return
	}
	if p.threads == 1 || n == 1 {
		for t := range n {
			task(t)
		}
		return
	}
	j := &job{n: int64(n), task: task}
	j.done.Add(n)
	for range min(p.threads, n) - 1 {
		select {
		case p.work <- j:
		default: // every worker already has a job queued; the caller goes on
		}
	}
	j.run()
	j.done.Wait()
}

// For calls body over [0, n) split into chunks of at least grain items,
// run as tasks of Run. Loops of at most grain items run inline in one
// call.
func (p *Pool) For(n, grain int, body func(lo, hi int)) {
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
	p.Run((n+chunk-1)/chunk, func(c int) {
		lo := c * chunk
		body(lo, min(lo+chunk, n))
	})
}
