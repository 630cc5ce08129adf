package workpool

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRun checks that every task runs exactly once, for task counts around
// the thread count, on pools of one thread, two, and more than the cores.
func TestRun(t *testing.T) {
	for _, threads := range []int{1, 2, 7} {
		p := New(threads)
		for _, n := range []int{0, 1, 2, 3, 7, 8, 100} {
			counts := make([]atomic.Int32, n)
			p.Run(n, func(i int) { counts[i].Add(1) })
			for i := range counts {
				if c := counts[i].Load(); c != 1 {
					t.Fatalf("threads %d n %d: task %d ran %d times", threads, n, i, c)
				}
			}
		}
	}
}

// TestFor checks that the chunks cover [0, n) exactly once, each at least
// grain long but the last, and that small loops run inline in one call.
func TestFor(t *testing.T) {
	for _, c := range []struct{ threads, n, grain int }{
		{1, 100, 1}, {2, 0, 5}, {2, 5, 5}, {2, 6, 5}, {3, 1000, 1}, {3, 1000, 64}, {8, 17, 0}, {4, 10007, 3},
	} {
		name := fmt.Sprintf("threads %d n %d grain %d", c.threads, c.n, c.grain)
		p := New(c.threads)
		var mu sync.Mutex
		seen := make([]int, c.n)
		var chunks [][2]int
		p.For(c.n, c.grain, func(lo, hi int) {
			mu.Lock()
			defer mu.Unlock()
			chunks = append(chunks, [2]int{lo, hi})
			for i := lo; i < hi; i++ {
				seen[i]++
			}
		})
		for i, s := range seen {
			if s != 1 {
				t.Fatalf("%s: item %d covered %d times", name, i, s)
			}
		}
		if c.n <= max(c.grain, 1) || c.threads == 1 {
			if c.n > 0 && len(chunks) != 1 {
				t.Fatalf("%s: %d chunks, want 1 inline call", name, len(chunks))
			}
			continue
		}
		for _, ch := range chunks {
			if ch[1]-ch[0] < c.grain && ch[1] != c.n {
				t.Fatalf("%s: chunk %v shorter than grain", name, ch)
			}
		}
	}
}

// TestRunWhileBusy runs loops from many goroutines at once on a small
// pool: a caller must finish its loop even when every worker is busy with
// another caller's (run with -race).
func TestRunWhileBusy(t *testing.T) {
	p := New(2)
	var wg sync.WaitGroup
	var total atomic.Int64
	for range 16 {
		wg.Go(func() {
			p.Run(50, func(int) { total.Add(1) })
		})
	}
	wg.Wait()
	if got := total.Load(); got != 16*50 {
		t.Fatalf("%d tasks ran, want %d", got, 16*50)
	}
}

// TestWorkersExit checks that a dropped pool's workers end.
func TestWorkersExit(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		New(8).Run(8, func(int) {})
		if runtime.NumGoroutine() < before+7 {
			t.Fatalf("%d goroutines after New(8), want at least %d", runtime.NumGoroutine(), before+7)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines 10 s after dropping the pool, want %d", n, before)
	}
}
