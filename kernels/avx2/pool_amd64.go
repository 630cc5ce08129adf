package avx2

import (
	"sync"
	"sync/atomic"
)

// pool is a fixed set of worker goroutines that, together with the calling
// goroutine, drain the tasks of one parallel call. It mirrors purego's pool
// (which is unexported): persistent workers avoid starting goroutines on
// each of the hundreds of Linear calls in a forward pass, and the caller
// taking tasks too means a call finishes even if no worker is free.
type pool struct {
	threads int
	work    chan *job
}

// job is one parallel call in flight; tasks are claimed through next.
type job struct {
	n    int64
	next atomic.Int64
	done sync.WaitGroup
	task func(t int)
}

func newPool(threads int) *pool {
	p := &pool{threads: threads, work: make(chan *job, threads)}
	for range threads - 1 {
		go func(work <-chan *job) {
			for j := range work {
				j.run()
			}
		}(p.work)
	}
	return p
}

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

// parallel runs task(0..n-1) on up to threads goroutines and returns when
// all have finished. A call with one task, or a one-thread pool, runs inline.
func (p *pool) parallel(n int, task func(t int)) {
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
