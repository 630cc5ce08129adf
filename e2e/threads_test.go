//go:build e2e

package e2e

import (
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/clipwasm/clipwasm/internal/devserver"
	"github.com/clipwasm/clipwasm/internal/fixtures"
)

// threadsJS loads a bundle with a threads option and embeds the fixture
// images (one batch) and the prompts, returning the embeddings with what
// the engine says about its threads.
const threadsJS = `async ({ model, threads, images, prompts }) => {
  const { ClipWasm } = await import('/clipwasm.js');
  const clip = await ClipWasm.load('/models/' + model + '/manifest.json', { threads });
  try {
    const blobs = await Promise.all(images.map(async (name) => (await fetch('/fixtures/' + name)).blob()));
    const image = (await clip.embedImages(blobs)).map((e) => Array.from(e));
    const text = (await clip.embedText(prompts)).map((e) => Array.from(e));
    return { isolated: crossOriginIsolated, cores: navigator.hardwareConcurrency, threads: clip.threads,
      stats: await clip.threadStats(), image, text };
  } finally {
    clip.dispose();
  }
}`

type threadsResult struct {
	Isolated    bool
	Cores       int
	Threads     int
	Stats       struct{ Threads, GEMMs, Split int }
	Image, Text [][]float32
}

// embedWithThreads runs threadsJS on bundle <model>-<quant>.
func embedWithThreads(t *testing.T, model, quant string, threads int) threadsResult {
	t.Helper()
	fm := loadFixtureModel(t, model)
	var r threadsResult
	eval(t, threadsJS, map[string]any{"model": model + "-" + quant, "threads": threads, "images": fm.ImageOrder, "prompts": fm.Prompts}, &r)
	return r
}

// sameEmbeddings reports the first row and element where got and want
// differ at all, or ok.
func sameEmbeddings(t *testing.T, what string, got, want [][]float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("%s row %d: %d values, want %d", what, i, len(got[i]), len(want[i]))
		}
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("%s row %d [%d] = %v, one thread gave %v (must be identical)", what, i, j, got[i][j], want[i][j])
			}
		}
	}
}

// TestThreadsMatchOneThread runs every fixture bundle on one thread and on
// two in the cross-origin isolated harness: the GEMMs split across the
// threads must give bit-identical embeddings (rows and columns of a GEMM
// are computed independently, by the same kernel code).
func TestThreadsMatchOneThread(t *testing.T) {
	fixtures.Require(t)
	for _, model := range models {
		for _, q := range quants {
			name := model + "-" + q
			t.Run(name, func(t *testing.T) {
				one := embedWithThreads(t, model, q, 1)
				two := embedWithThreads(t, model, q, 2)
				if !two.Isolated {
					t.Fatal("the harness page is not cross-origin isolated: the devserver's COOP/COEP headers did not take")
				}
				want := min(2, two.Cores)
				if one.Threads != 1 || two.Threads != want || two.Stats.Threads != want {
					logConsole(t) // the worker warns why threads did not start
					t.Fatalf("threads: %d with {threads: 1}, %d (pool %d) with {threads: 2}; want 1 and %d (is web/clipwasm.shared.wasm built? make wasm)",
						one.Threads, two.Threads, two.Stats.Threads, want)
				}
				if want > 1 && two.Stats.Split == 0 {
					t.Errorf("no GEMM was split across threads (%d GEMM calls): the test compares nothing", two.Stats.GEMMs)
				}
				sameEmbeddings(t, "image", two.Image, one.Image)
				sameEmbeddings(t, "text", two.Text, one.Text)
				t.Logf("%s: %d of %d GEMM calls split across %d threads; embeddings identical to one thread's", name, two.Stats.Split, two.Stats.GEMMs, two.Threads)
			})
		}
	}
}

// TestThreadsFallBackWhenNotIsolated serves the same files without
// COOP/COEP: the page gets no SharedArrayBuffer, so {threads: 2} must give
// a working engine on one thread with the same numbers.
func TestThreadsFallBackWhenNotIsolated(t *testing.T) {
	fixtures.Require(t)
	plain, err := devserver.New(devserver.Options{NotIsolated: true, Mounts: map[string]string{
		"/": "../web", "/models/": bundles, "/e2e/": ".", "/fixtures/": fixtures.Path("images"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(plain)
	defer ts.Close()
	want := embedWithThreads(t, "vit_tiny", "int8", 1) // isolated harness, one thread

	if _, err := browser.call("goto", map[string]any{"url": ts.URL + "/e2e/harness.html"}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := browser.call("goto", map[string]any{"url": baseURL + "/e2e/harness.html"}); err != nil {
			t.Fatal(err)
		}
	}()
	got := embedWithThreads(t, "vit_tiny", "int8", 2)
	if got.Isolated || got.Threads != 1 || got.Stats.Threads != 1 || got.Stats.Split != 0 {
		t.Fatalf("not isolated: crossOriginIsolated %v, %d threads, stats %+v; want false, 1 thread, nothing split", got.Isolated, got.Threads, got.Stats)
	}
	sameEmbeddings(t, "image", got.Image, want.Image)
	sameEmbeddings(t, "text", got.Text, want.Text)
}

// gemmsJS runs each GEMM kernel (and the in-place activations, over
// m·n values) once on one thread and once split over a pool of 2 (threads.mjs with the *.shared.wasm kernels over one shared
// memory, random operands), compares the outputs bit for bit, and with
// reps > 0 times the two forms interleaved (so both see the same load on a
// shared machine), returning medians in ms.
const gemmsJS = `async ({ shapes, reps, base }) => {
  const { startPool } = await import(base + '/kernels/threads.mjs');
  const memory = new WebAssembly.Memory({ initial: 2048, maximum: 65536, shared: true });
  const modules = await Promise.all(['simd128', 'relaxed'].map((n) => WebAssembly.compileStreaming(fetch(base + '/kernels/' + n + '.shared.wasm'))));
  const one = {};
  for (const m of modules) Object.assign(one, (await WebAssembly.instantiate(m, { env: { mem: memory } })).exports);
  const pool = await startPool({ threads: 2, memory, modules });
  const split = pool.wrapKernels(one);
  let top = 1 << 20;
  const alloc = (bytes) => { const p = top; top += (bytes + 63) & ~63; return p; };
  const f32 = (p, n) => new Float32Array(memory.buffer, p, n);
  const rand = (a, lo, hi) => { for (let i = 0; i < a.length; i++) a[i] = lo + Math.floor(Math.random() * (hi - lo)); };
  const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const out = [];
  for (const [m, n, k] of shapes) {
    top = 1 << 20;
    const xf = alloc(4 * m * k), wf = alloc(4 * n * k), bias = alloc(4 * n);
    const x8 = alloc(m * k), w8 = alloc(n * k), sx = alloc(4 * m), zx = alloc(4 * m), sw = alloc(4 * n), wsum = alloc(4 * n);
    const d1 = alloc(4 * m * n), d2 = alloc(4 * m * n);
    f32(xf, m * k).forEach((_, i, a) => { a[i] = Math.random() - 0.5; });
    f32(wf, n * k).forEach((_, i, a) => { a[i] = Math.random() - 0.5; });
    f32(bias, n).forEach((_, i, a) => { a[i] = Math.random(); });
    rand(new Uint8Array(memory.buffer, x8, m * k), 0, 128); // 7-bit: the relaxed dot's range
    rand(new Int8Array(memory.buffer, w8, n * k), -127, 128);
    rand(new Int32Array(memory.buffer, zx, m), 0, 128);
    rand(new Int32Array(memory.buffer, wsum, n), -5000, 5000);
    f32(sx, m).forEach((_, i, a) => { a[i] = Math.random() / 100; });
    f32(sw, n).forEach((_, i, a) => { a[i] = Math.random() / 100; });
    const calls = {
      f32_gemm: [d1, n, xf, k, wf, k, bias, m, n, k],
      f32_gemm_relaxed: [d1, n, xf, k, wf, k, bias, m, n, k],
      f32_gemm_nn: [d1, n, xf, k, wf, n, m, n, k],
      i8_gemm: [d1, n, x8, k, sx, w8, k, sw, bias, m, n, k],
      i8_gemm_relaxed: [d1, n, x8, k, sx, zx, w8, k, sw, wsum, bias, m, n, k],
      gelu: [d1, m * n],
      quickgelu: [d1, m * n],
    };
    for (const [name, args] of Object.entries(calls)) {
      if (args.length === 2) { // in place: both forms start from the same values
        f32(d1, m * n).forEach((_, i, a) => { a[i] = 12 * Math.random() - 6; });
        f32(d2, m * n).set(f32(d1, m * n));
      }
      const other = [d2, ...args.slice(1)];
      const before = pool.stats().split;
      one[name](...args);
      split[name](...other);
      const a = new Uint32Array(memory.buffer, d1, m * n), b = new Uint32Array(memory.buffer, d2, m * n);
      const diff = a.findIndex((v, i) => v !== b[i]);
      const r = { kernel: name, m, n, k, split: pool.stats().split > before, firstDiff: diff };
      if (reps > 0) {
        const t1 = [], t2 = [];
        for (let i = 0; i < reps; i++) {
          let t0 = performance.now();
          one[name](...args);
          t1.push(performance.now() - t0);
          t0 = performance.now();
          split[name](...other);
          t2.push(performance.now() - t0);
        }
        r.oneMs = median(t1);
        r.twoMs = median(t2);
      }
      out.push(r);
    }
  }
  pool.close();
  return out;
}`

type gemmRun struct {
	Kernel       string
	M, N, K      int
	Split        bool
	FirstDiff    int
	OneMs, TwoMs float64
}

// gemmShapes are ViT-B/32's: m = 1 (one pooled token), 50 (image b1's
// tokens), 400 (b8), with its widths; odd ones with tails (n = 1000), too
// few columns for column blocks (n = 40: row blocks), and one below the
// threshold that stays on one thread.
var gemmShapes = [][3]int{{1, 768, 768}, {1, 3072, 768}, {50, 768, 768}, {50, 3072, 768}, {400, 768, 768}, {50, 1000, 77}, {101, 40, 300}, {7, 64, 37}}

// inWorkerJS runs the function source fn with data in a new module
// Worker and returns its result: the pool's caller uses Atomics.wait,
// which a page's main thread may not.
const inWorkerJS = `async ({ fn, data }) => {
  const src = 'onmessage = async ({ data }) => { try { postMessage({ ok: await (' + fn + ')(data) }); } catch (e) { postMessage({ error: String(e.stack ?? e) }); } };';
  const w = new Worker(URL.createObjectURL(new Blob([src], { type: 'text/javascript' })), { type: 'module' });
  try {
    const r = await new Promise((resolve) => {
      w.onmessage = (e) => resolve(e.data);
      w.onerror = (e) => resolve({ error: e.message });
      w.postMessage({ ...data, base: location.origin });
    });
    if (r.error) throw new Error(r.error);
    return r.ok;
  } finally {
    w.terminate();
  }
}`

// runGEMMs runs gemmsJS on gemmShapes, timing reps calls of each form.
func runGEMMs(tb testing.TB, reps int) []gemmRun {
	tb.Helper()
	var runs []gemmRun
	eval(tb, inWorkerJS, map[string]any{"fn": gemmsJS, "data": map[string]any{"shapes": gemmShapes, "reps": reps}}, &runs)
	return runs
}

// TestThreadedGEMMsMatchOneThread checks each GEMM kernel and activation split over 2
// threads against one call, bit for bit, on ViT-B/32's shapes.
func TestThreadedGEMMsMatchOneThread(t *testing.T) {
	for _, r := range runGEMMs(t, 0) {
		if r.FirstDiff >= 0 {
			t.Errorf("%s m=%d n=%d k=%d: output %d differs between one thread and two", r.Kernel, r.M, r.N, r.K, r.FirstDiff)
		}
		// threads.mjs: MIN_WORK, and blocks of at least 32 columns or 8
		// rows; an activation's m·n values count 16 each and split like
		// columns.
		wantSplit := r.M*r.N*r.K >= 1<<20 && (r.N >= 64 || r.M >= 16)
		if r.Kernel == "gelu" || r.Kernel == "quickgelu" {
			wantSplit = r.M*r.N*16 >= 1<<20
		}
		if r.Split != wantSplit {
			t.Errorf("%s m=%d n=%d k=%d: split %v, want %v", r.Kernel, r.M, r.N, r.K, r.Split, wantSplit)
		}
	}
}

// BenchmarkThreadedGEMMs times each GEMM kernel on one thread and split
// over 2, interleaved in one run, and reports the speed-up per shape:
//
//	go test -tags e2e -run '^$' -bench ThreadedGEMMs -benchtime 1x ./e2e
func BenchmarkThreadedGEMMs(b *testing.B) {
	for range b.N {
		for _, r := range runGEMMs(b, 30) {
			if r.FirstDiff >= 0 {
				b.Fatalf("%s m=%d n=%d k=%d: outputs differ", r.Kernel, r.M, r.N, r.K)
			}
			b.ReportMetric(r.OneMs/r.TwoMs, fmt.Sprintf("x_%s_m%d_n%d", r.Kernel, r.M, r.N))
			b.Logf("%-16s m=%-3d n=%-4d k=%-3d  1 thread %7.3f ms  2 threads %7.3f ms  %.2fx", r.Kernel, r.M, r.N, r.K, r.OneMs, r.TwoMs, r.OneMs/r.TwoMs)
		}
	}
}
