//go:build e2e

package e2e

import (
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
					t.Fatalf("threads: %d with {threads: 1}, %d (pool %d) with {threads: 2}; want 1 and %d", one.Threads, two.Threads, two.Stats.Threads, want)
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
