//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/internal/npy"
)

// memory returns the resident memory of the largest Chromium renderer
// process (the page's: its workers run there too) and of all Chromium's
// processes, in MB.
func memory(tb testing.TB) (renderer, all float64) {
	tb.Helper()
	v, err := browser.call("memory", nil)
	if err != nil {
		tb.Fatal(err)
	}
	var byType map[string]struct{ RssMB, MaxMB float64 }
	if err := json.Unmarshal(v, &byType); err != nil {
		tb.Fatal(err)
	}
	for _, m := range byType {
		all += m.RssMB
	}
	return byType["renderer"].MaxMB, all
}

// benchJS loads a bundle and times, after warm-up runs, the peers kit's
// tasks (../shared/peers: image b1 and b8 from images_u8.npy, the 80
// prompts), then reads back the first outputs for the correctness check.
const benchJS = `async ({ model, runs, warmup, threads }) => {
  const { ClipWasm } = await import('/clipwasm.js');
  const npy = async (url) => {
    const buf = await (await fetch(url)).arrayBuffer();
    const headerLen = new DataView(buf).getUint16(8, true);
    return new Uint8Array(buf, 10 + headerLen);
  };
  const u8 = await npy('/peers/images_u8.npy'); // [8,224,224,3]
  const images = [];
  for (let i = 0; i < 8; i++) {
    const rgba = new Uint8ClampedArray(224 * 224 * 4);
    for (let p = 0; p < 224 * 224; p++) {
      rgba.set(u8.subarray((i * 224 * 224 + p) * 3, (i * 224 * 224 + p + 1) * 3), 4 * p);
      rgba[4 * p + 3] = 255;
    }
    images.push(new ImageData(rgba, 224, 224));
  }
  const prompts = (await (await fetch('/peers/prompts.txt')).text()).split('\n').filter(Boolean);
  const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const time = async (f) => {
    for (let i = 0; i < warmup; i++) await f();
    const ts = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await f();
      ts.push(performance.now() - t0);
    }
    return median(ts);
  };
  const url = '/models/' + model + '/manifest.json';
  let t0 = performance.now();
  let clip = await ClipWasm.load(url, { threads });
  const loadMs = performance.now() - t0;
  clip.dispose();
  t0 = performance.now();
  clip = await ClipWasm.load(url, { threads });
  const cachedLoadMs = performance.now() - t0;
  const out = { backend: clip.backend, threads: clip.threads, loadMs, cachedLoadMs, info: clip.info };
  out.image_b1 = await time(() => clip.embedImage(images[0]));
  out.image_b8 = await time(() => clip.embedImages(images));
  out.text_80 = await time(() => clip.embedText(prompts));
  out.image = Array.from(await clip.embedImage(images[0]));
  out.text = (await clip.embedText(prompts)).map((e) => Array.from(e));
  out.stats = await clip.stats();
  window.benchClip = clip; // kept alive until the memory is read
  return out;
}`

// BenchmarkViTB32 runs the peers kit's ViT-B/32 tasks in the browser, on
// int8 and f32 bundles converted from the kit's weights, and reports
// median milliseconds, load times and Chromium's memory with both towers
// loaded, on 1 and 2 threads (the harness is cross-origin isolated). The
// weights are $CLIPWASM_PEERS_WEIGHTS, else the kit's work folder's
// ($PEERS_WORK, default ../.peers)
// models/ViT-B-32-seed0/weights.safetensors: run ../shared/peers/run.sh
// ViT-B/32, or node ../shared/peers/gen_weights.mjs --arch ViT-B/32 --seed 0
// --out DIR. Run it once per invocation:
//
//	go test -tags e2e -run '^$' -bench ViTB32 -benchtime 1x ./e2e
func BenchmarkViTB32(b *testing.B) {
	weights := os.Getenv("CLIPWASM_PEERS_WEIGHTS")
	if weights == "" {
		work := os.Getenv("PEERS_WORK")
		if work == "" {
			work = filepath.Join("..", ".peers")
		}
		weights = filepath.Join(work, "models", "ViT-B-32-seed0", "weights.safetensors")
	}
	if _, err := os.Stat(weights); err != nil {
		b.Skipf("no ViT-B/32 weights at %s (see the doc comment)", weights)
	}
	// The converter runs from the repository root.
	weights, err := filepath.Abs(weights)
	if err != nil {
		b.Fatal(err)
	}
	// PyTorch's outputs on the kit's seed-0 weights.
	expected := filepath.Join(fixtures.SharedDir(), "peers", "models", "ViT-B-32", "expected-seed0")
	wantImage, err := npy.ReadFile(filepath.Join(expected, "torch_image_b1.npy"))
	if err != nil {
		b.Fatal(err)
	}
	wantText, err := npy.ReadFile(filepath.Join(expected, "torch_text_80.npy"))
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{"int8", "f32"} {
		name := "vitb32-" + q
		cmd := exec.Command(converter, "--quiet", "--no-verify",
			"--in", weights, "--out", filepath.Join(bundles, name), "--quant", q)
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("converting: %v\n%s", err, out)
		}
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", q, threads), func(b *testing.B) {
				for range b.N {
					// A new page (and renderer) for each run: memory that
					// an earlier engine's worker freed is not always back
					// with the system yet.
					if _, err := browser.call("freshPage", map[string]any{"url": baseURL + "/e2e/harness.html"}); err != nil {
						b.Fatal(err)
					}
					// The page's renderer before the engine starts.
					baseRenderer, _ := memory(b)
					var r struct {
						Backend              string
						Threads              int
						LoadMs, CachedLoadMs float64
						ImageB1              float64 `json:"image_b1"`
						ImageB8              float64 `json:"image_b8"`
						Text80               float64 `json:"text_80"`
						Image                []float32
						Text                 [][]float32
						Stats                struct{ SysBytes, HeapBytes float64 }
					}
					eval(b, benchJS, map[string]any{"model": name, "runs": 5, "warmup": 1, "threads": threads}, &r)
					if r.Threads != threads {
						b.Fatalf("the engine runs on %d threads, asked for %d", r.Threads, threads)
					}
					renderer, all := memory(b)
					var text []float32
					for _, t := range r.Text {
						text = append(text, t...)
					}
					b.ReportMetric(r.ImageB1, "image_b1_ms")
					b.ReportMetric(r.ImageB8, "image_b8_ms")
					b.ReportMetric(r.Text80, "text_80_ms")
					b.ReportMetric(r.LoadMs, "load_ms")
					b.ReportMetric(r.CachedLoadMs, "cached_load_ms")
					b.ReportMetric(renderer, "renderer_MB")
					b.ReportMetric(all, "browser_MB")
					b.ReportMetric(r.Stats.SysBytes/(1<<20), "wasm_MB")
					b.ReportMetric(r.Stats.HeapBytes/(1<<20), "go_heap_MB")
					b.ReportMetric(baseRenderer, "renderer_idle_MB")
					b.ReportMetric(cosineMin(r.Image, wantImage.F32, 512), "image_min_cos")
					b.ReportMetric(cosineMin(text, wantText.F32, 512), "text_min_cos")
					b.ReportMetric(relDiff(r.Image, wantImage.F32, wantImage.F32), "image_rel_diff")
					b.ReportMetric(relDiff(text, wantText.F32, wantText.F32), "text_rel_diff")
					b.Logf("%s on %s, %d threads", name, r.Backend, r.Threads)
					eval(b, `() => { window.benchClip.dispose(); delete window.benchClip; }`, nil, nil)
				}
			})
		}
	}
}

// cosineMin is the lowest cosine between matching rows of length d.
func cosineMin(a, b []float32, d int) float64 {
	m := 1.0
	for i := 0; i+d <= len(a) && i+d <= len(b); i += d {
		m = min(m, cosine(a[i:i+d], b[i:i+d]))
	}
	return m
}
