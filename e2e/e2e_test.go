//go:build e2e

// Package e2e tests the engine in the browser: headless Chromium (Debian's,
// driven by playwright-core through driver.mjs) loads fixture bundles
// through web/clipwasm.js from internal/devserver, and the test compares
// what the wasm engine computes with the native engine and the PyTorch
// goldens, and checks caching, integrity, resumption, quota and
// cancellation, and the page.
//
// Run with `make e2e` (it builds web/clipwasm.wasm and runs npm ci first).
// Numbers go to the test log and to e2e/out/results.json, the page's
// screenshot to e2e/out/page.png.
package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/clipwasm/clipwasm/internal/devserver"
	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/kernels/purego"
	"github.com/clipwasm/clipwasm/shards"
	"github.com/clipwasm/clipwasm/wasm/worker"
)

var (
	server    *devserver.Server
	baseURL   string
	bundles   string // folder of the test bundles, served under /models/
	converter string // the weights-converter binary
	browser   *driver
	outDir    = "out"
)

// models and quants are the fixture bundles every check runs on.
var (
	models = []string{"vit_tiny", "rn_tiny"}
	quants = []string{"f32", "int8"}
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	for _, need := range []string{"../web/clipwasm.wasm", "../web/wasm_exec.js", "../web/kernels/glue.mjs", "node_modules/playwright-core"} {
		if _, err := os.Stat(need); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %s is missing: run `make e2e` (make wasm, npm ci in e2e/)\n", need)
			return 1
		}
	}
	dir, err := os.MkdirTemp("", "clipwasm-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bundles = filepath.Join(dir, "models")
	if err := os.Mkdir(bundles, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := makeBundles(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	server, err = devserver.New(devserver.Options{Mounts: map[string]string{
		"/": "../web", "/models/": bundles, "/e2e/": ".", "/fixtures/": fixtures.Path("images"),
		"/peers/": filepath.Join(fixtures.SharedDir(), "peers", "inputs"),
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ts := httptest.NewServer(server)
	defer ts.Close()
	baseURL = ts.URL
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	browser, err = startDriver()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting Chromium:", err)
		return 1
	}
	defer browser.close()
	if _, err := browser.call("goto", map[string]any{"url": baseURL + "/e2e/harness.html"}); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// makeBundles converts every fixture model in every quantization with the
// project's converter, into bundles/<model>-<quant>, with 4 MiB shards so
// that there are several.
func makeBundles(dir string) error {
	converter = filepath.Join(dir, "weights-converter")
	build := exec.Command("go", "build", "-o", converter, "./weights-converter")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the converter: %v\n%s", err, out)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(models)*len(quants))
	for _, model := range models {
		for _, q := range quants {
			wg.Go(func() {
				cmd := exec.Command(converter, "--quiet", "--no-verify", "--in", fixtures.Path("openai", model, model+".state_dict.pt"),
					"--out", filepath.Join(bundles, model+"-"+q), "--quant", q, "--shard-size", "4MiB")
				cmd.Dir = ".."
				if out, err := cmd.CombinedOutput(); err != nil {
					errs <- fmt.Errorf("converting %s to %s: %v\n%s", model, q, err, out)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// copies numbers the bundle copies, so that every copy has a new URL.
var copies atomic.Int64

// copyBundle copies bundle name under a name never used before (a new URL,
// so nothing of it is cached in the browser yet) and returns the copy's
// name and folder.
func copyBundle(t *testing.T, name, purpose string) (string, string) {
	t.Helper()
	to := fmt.Sprintf("%s-%d", purpose, copies.Add(1))
	dst := filepath.Join(bundles, to)
	if err := os.CopyFS(dst, os.DirFS(filepath.Join(bundles, name))); err != nil {
		t.Fatal(err)
	}
	return to, dst
}

func manifestOf(t *testing.T, dir string) *shards.Manifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, shards.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	m, err := shards.ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// --- the driver -------------------------------------------------------

// driver talks to driver.mjs: one JSON command per line each way.
type driver struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	mu   sync.Mutex
	next int
}

func startDriver() (*driver, error) {
	cmd := exec.Command("node", "driver.mjs")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &driver{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}
	if _, err := d.read(0); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *driver) read(id int) (json.RawMessage, error) {
	line, err := d.out.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("driver: %w", err)
	}
	var r struct {
		ID    int             `json:"id"`
		OK    bool            `json:"ok"`
		Value json.RawMessage `json:"value"`
		Error string          `json:"error"`
	}
	if err := json.Unmarshal(line, &r); err != nil {
		return nil, fmt.Errorf("driver: %w: %.200s", err, line)
	}
	if r.ID != id {
		return nil, fmt.Errorf("driver: answer %d to command %d", r.ID, id)
	}
	if !r.OK {
		return nil, fmt.Errorf("driver: %s", r.Error)
	}
	return r.Value, nil
}

// call runs one command and returns its value.
func (d *driver) call(cmd string, args map[string]any) (json.RawMessage, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next++
	msg := map[string]any{"id": d.next, "cmd": cmd}
	for k, v := range args {
		msg[k] = v
	}
	b, _ := json.Marshal(msg)
	if _, err := d.in.Write(append(b, '\n')); err != nil {
		return nil, err
	}
	return d.read(d.next)
}

// eval runs the JavaScript function source fn(arg) in the page and decodes
// its result into out.
func eval(t testing.TB, fn string, arg any, out any) {
	t.Helper()
	v, err := browser.call("eval", map[string]any{"fn": fn, "arg": arg})
	if err != nil {
		logConsole(t)
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(v, out); err != nil {
			t.Fatalf("decoding %.200s: %v", v, err)
		}
	}
}

// logConsole logs what the page and its workers printed.
func logConsole(t testing.TB) {
	t.Helper()
	if v, err := browser.call("console", nil); err == nil {
		var lines []string
		json.Unmarshal(v, &lines)
		for _, l := range lines {
			t.Log("console:", l)
		}
	}
}

func (d *driver) close() {
	d.call("close", nil)
	d.in.Close()
	d.cmd.Wait()
}

// --- embeddings -------------------------------------------------------

// embedJS loads a bundle and embeds every fixture image and the prompts,
// returning the engine's inputs as the worker got them (browser-decoded
// pixels, or the file for palette images) beside the embeddings.
const embedJS = `async ({ model, images, prompts }) => {
  const { ClipWasm } = await import('/clipwasm.js');
  const { decodeImage } = await import('/decode.js');
  const b64 = (u8) => {
    let s = '';
    for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode(...u8.subarray(i, i + 0x8000));
    return btoa(s);
  };
  const clip = await ClipWasm.load('/models/' + model + '/manifest.json');
  try {
    const out = { info: clip.info, backend: clip.backend, images: [] };
    for (const name of images) {
      const blob = await (await fetch('/fixtures/' + name)).blob();
      const d = await decodeImage(blob);
      const emb = await clip.embedImage(blob);
      out.images.push({ name, width: d.width ?? 0, height: d.height ?? 0,
        rgba: d.rgba ? b64(new Uint8Array(d.rgba.buffer)) : '', encoded: !!d.encoded, emb: Array.from(emb) });
    }
    out.texts = (await clip.embedText(prompts)).map((e) => Array.from(e));
    return out;
  } finally {
    clip.dispose();
  }
}`

type pageImage struct {
	Name          string
	Width, Height int
	RGBA          string
	Encoded       bool
	Emb           []float32
}

type embedResult struct {
	Info    worker.LoadResult
	Backend string
	Images  []pageImage
	Texts   [][]float32
}

// fixtureModel is what the fixture manifest says about a model.
type fixtureModel struct {
	ImageOrder []string `json:"image_order"`
	Prompts    []string `json:"prompts"`
}

func loadFixtureModel(t *testing.T, model string) fixtureModel {
	t.Helper()
	data, err := os.ReadFile(fixtures.Path("openai", model, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fm fixtureModel
	if err := json.Unmarshal(data, &fm); err != nil {
		t.Fatal(err)
	}
	return fm
}

// engineInput rebuilds the worker's input for a page image.
func engineInput(t *testing.T, im pageImage) worker.Image {
	t.Helper()
	if im.Encoded {
		data, err := os.ReadFile(fixtures.Path("images", im.Name))
		if err != nil {
			t.Fatal(err)
		}
		return worker.Image{Encoded: data}
	}
	px, err := base64.StdEncoding.DecodeString(im.RGBA)
	if err != nil {
		t.Fatal(err)
	}
	return worker.Image{Width: im.Width, Height: im.Height, RGBA: px}
}

// nativeRun runs the native engine, turning a kernel panic into an error
// so that the browser's numbers are still checked and reported.
func nativeRun(f func() (*worker.Embeddings, error)) (e *worker.Embeddings, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return f()
}

func isJPEG(name string) bool { return strings.HasSuffix(name, ".jpg") }

// relDiff is max |a−b| / max |ref|; cosine the cosine similarity.
func relDiff(a, b, ref []float32) float64 {
	d, _ := fixtures.MaxAbsDiff(a, b)
	return d / fixtures.MaxAbs(ref)
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

// comparison is one bundle's numbers, as results.json records them.
type comparison struct {
	Bundle  string `json:"bundle"`
	Backend string `json:"backend"`
	// Relative max |Δ| (over max |reference|) and lowest cosine of the wasm
	// engine against: the native engine on the same pixels; the PyTorch
	// goldens (PNG/GIF/WebP, and JPEG apart); the f32 bundle in the browser.
	NativeOK    bool    `json:"native_ok"` // the native engine ran
	VsNativeRel float64 `json:"vs_native_rel"`
	VsNativeCos float64 `json:"vs_native_min_cos"`
	// The native engine's lowest cosine to the goldens (PNG/GIF/WebP and
	// texts): for int8, the weights' share of the error, since the
	// portable backend keeps activations in float32.
	NativeGoldenCos   float64  `json:"native_golden_min_cos"`
	GoldenImageRel    float64  `json:"golden_image_rel,omitempty"`
	GoldenJPEGRel     float64  `json:"golden_jpeg_rel,omitempty"`
	GoldenJPEGCos     float64  `json:"golden_jpeg_min_cos,omitempty"`
	GoldenTextRel     float64  `json:"golden_text_rel,omitempty"`
	GoldenCos         float64  `json:"golden_min_cos"`
	VsBrowserF32Cos   float64  `json:"vs_browser_f32_min_cos,omitempty"`
	EncodedInGoImages []string `json:"decoded_by_go,omitempty"`
	// Per image and per prompt, the cosine to the f32 bundle's result.
	ImageCosVsF32 []float64 `json:"image_cos_vs_f32,omitempty"`
	TextCosVsF32  []float64 `json:"text_cos_vs_f32,omitempty"`
}

var results struct {
	mu          sync.Mutex
	Comparisons []comparison   `json:"comparisons"`
	Checks      map[string]any `json:"checks"`
}

func record(name string, v any) {
	results.mu.Lock()
	defer results.mu.Unlock()
	if results.Checks == nil {
		results.Checks = map[string]any{}
	}
	results.Checks[name] = v
	b, _ := json.MarshalIndent(&results, "", "  ")
	os.WriteFile(filepath.Join(outDir, "results.json"), b, 0o644)
}

func TestEmbeddings(t *testing.T) {
	fixtures.Require(t)
	for _, model := range models {
		fm := loadFixtureModel(t, model)
		goldImg := fixtures.LoadNpy(t, "openai", model, "image_features.npy")
		goldTxt := fixtures.LoadNpy(t, "openai", model, "text_features.npy")
		d := goldImg.Shape[1]
		var f32 *embedResult
		for _, q := range quants {
			name := model + "-" + q
			t.Run(name, func(t *testing.T) {
				var r embedResult
				eval(t, embedJS, map[string]any{"model": name, "images": fm.ImageOrder, "prompts": fm.Prompts}, &r)
				if q == "f32" {
					f32 = &r
				}
				c := comparison{Bundle: name, Backend: r.Backend, NativeOK: true, VsNativeCos: 1, NativeGoldenCos: 1, GoldenCos: 1, GoldenJPEGCos: 1, VsBrowserF32Cos: 1}

				// The native engine on the same inputs.
				b, err := shards.Open(filepath.Join(bundles, name))
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				native, err := worker.NewEngine(b.Config, b, b.Tokenizer(), purego.New(0), nil)
				if err != nil {
					t.Fatal(err)
				}
				for i, im := range r.Images {
					if im.Encoded {
						c.EncodedInGoImages = append(c.EncodedInGoImages, im.Name)
					}
					if want, err := nativeRun(func() (*worker.Embeddings, error) {
						return native.EmbedImages(context.Background(), []worker.Image{engineInput(t, im)})
					}); err != nil {
						t.Errorf("native engine, %s: %v", im.Name, err)
						c.NativeOK = false
					} else {
						c.VsNativeRel = max(c.VsNativeRel, relDiff(im.Emb, want.Data, want.Data))
						c.VsNativeCos = min(c.VsNativeCos, cosine(im.Emb, want.Data))
						if !isJPEG(im.Name) {
							c.NativeGoldenCos = min(c.NativeGoldenCos, cosine(want.Data, goldImg.F32[i*d:(i+1)*d]))
						}
					}

					gold := goldImg.F32[i*d : (i+1)*d]
					cos := cosine(im.Emb, gold)
					if isJPEG(im.Name) {
						c.GoldenJPEGRel = max(c.GoldenJPEGRel, relDiff(im.Emb, gold, goldImg.F32))
						c.GoldenJPEGCos = min(c.GoldenJPEGCos, cos)
					} else {
						c.GoldenImageRel = max(c.GoldenImageRel, relDiff(im.Emb, gold, goldImg.F32))
						c.GoldenCos = min(c.GoldenCos, cos)
					}
					if f32 != nil && q != "f32" {
						cos := cosine(im.Emb, f32.Images[i].Emb)
						c.ImageCosVsF32 = append(c.ImageCosVsF32, cos)
						c.VsBrowserF32Cos = min(c.VsBrowserF32Cos, cos)
					}
				}
				nativeText, err := nativeRun(func() (*worker.Embeddings, error) {
					return native.EmbedTexts(context.Background(), fm.Prompts)
				})
				if err != nil {
					t.Errorf("native engine, texts: %v", err)
					c.NativeOK = false
				}
				for i, e := range r.Texts {
					gold := goldTxt.F32[i*d : (i+1)*d]
					c.GoldenTextRel = max(c.GoldenTextRel, relDiff(e, gold, goldTxt.F32))
					c.GoldenCos = min(c.GoldenCos, cosine(e, gold))
					if nativeText != nil {
						nat := nativeText.Data[i*d : (i+1)*d]
						c.VsNativeRel = max(c.VsNativeRel, relDiff(e, nat, nat))
						c.VsNativeCos = min(c.VsNativeCos, cosine(e, nat))
						c.NativeGoldenCos = min(c.NativeGoldenCos, cosine(nat, gold))
					}
					if f32 != nil && q != "f32" {
						cos := cosine(e, f32.Texts[i])
						c.TextCosVsF32 = append(c.TextCosVsF32, cos)
						c.VsBrowserF32Cos = min(c.VsBrowserF32Cos, cos)
					}
				}
				vsNative := "n/a"
				if c.NativeOK {
					vsNative = fmt.Sprintf("rel %.2g (min cos %.7f; native to the goldens: min cos %.7f)", c.VsNativeRel, c.VsNativeCos, c.NativeGoldenCos)
				}
				t.Logf("%s on %s: vs native %s; vs golden: PNG/GIF/WebP rel %.2g, text rel %.2g, min cos %.7f; JPEG rel %.2g (min cos %.6f); int8 vs f32 in the browser min cos %.6f; decoded by Go: %v",
					name, c.Backend, vsNative, c.GoldenImageRel, c.GoldenTextRel, c.GoldenCos, c.GoldenJPEGRel, c.GoldenJPEGCos, c.VsBrowserF32Cos, c.EncodedInGoImages)
				results.mu.Lock()
				results.Comparisons = append(results.Comparisons, c)
				results.mu.Unlock()
				record("embeddings", len(results.Comparisons))

				if r.Info.Files != len(manifestOf(t, filepath.Join(bundles, name)).Shards) {
					t.Errorf("load result %+v", r.Info)
				}
				if q == "f32" {
					// The fixtures' tolerance: 1e-4 of the largest golden value.
					if c.GoldenImageRel > 1e-4 || c.GoldenTextRel > 1e-4 {
						t.Errorf("f32 against the goldens: image rel %.3g, text rel %.3g; want ≤ 1e-4", c.GoldenImageRel, c.GoldenTextRel)
					}
					if c.VsNativeRel > 1e-4 {
						t.Errorf("against the native engine: rel %.3g, want ≤ 1e-4", c.VsNativeRel)
					}
				} else if c.GoldenCos < 0.999 || c.VsBrowserF32Cos < 0.999 {
					t.Errorf("%s: cosine to the goldens %.6f, to the f32 bundle %.6f; want ≥ 0.999", q, c.GoldenCos, c.VsBrowserF32Cos)
				}
				// JPEG: browser (libjpeg-turbo) vs Pillow decoding; reported,
				// and only grossly wrong results fail.
				if c.GoldenJPEGCos < 0.99 {
					t.Errorf("JPEG against the goldens: min cosine %.4f", c.GoldenJPEGCos)
				}
			})
		}
	}
}

// --- loading ----------------------------------------------------------

// loadJS loads a bundle and returns its load result, or the error.
const loadJS = `async ({ model }) => {
  const { ClipWasm } = await import('/clipwasm.js');
  try {
    const clip = await ClipWasm.load('/models/' + model + '/manifest.json');
    clip.dispose();
    return { info: clip.info };
  } catch (err) {
    return { error: { name: err.name, code: err.code, shard: err.shard, message: err.message } };
  }
}`

type loadOutcome struct {
	Info  *worker.LoadResult
	Error *struct{ Name, Code, Shard, Message string }
}

func load(t *testing.T, model string) loadOutcome {
	t.Helper()
	var r loadOutcome
	eval(t, loadJS, map[string]any{"model": model}, &r)
	return r
}

// requestsFor returns the recorded requests under /models/<model>/ for
// shard files.
func requestsFor(model string) []devserver.Request {
	var out []devserver.Request
	for _, r := range server.Requests() {
		if strings.HasPrefix(r.Path, "/models/"+model+"/") && strings.HasSuffix(r.Path, ".safetensors") {
			out = append(out, r)
		}
	}
	return out
}

func TestSecondLoadDownloadsNothing(t *testing.T) {
	name, _ := copyBundle(t, "vit_tiny-int8", "second-load")
	server.Reset()
	first := load(t, name)
	if first.Error != nil {
		t.Fatal(first.Error)
	}
	n1 := len(requestsFor(name))
	server.Reset()
	second := load(t, name)
	if second.Error != nil {
		t.Fatal(second.Error)
	}
	n2 := len(requestsFor(name))
	record("second_load", map[string]any{"first_shard_requests": n1, "second_shard_requests": n2, "second": second.Info})
	t.Logf("first load: %d shard requests, %d bytes downloaded; second: %d requests, %d of %d files from the cache",
		n1, first.Info.Downloaded, n2, second.Info.CachedFiles, second.Info.Files)
	if n1 != first.Info.Files || n2 != 0 || second.Info.CachedFiles != second.Info.Files || second.Info.Downloaded != 0 {
		t.Errorf("second load: %d shard requests, %+v", n2, second.Info)
	}
}

// cacheKeysJS lists the shard cache's URLs under a prefix.
const cacheKeysJS = `async ({ prefix }) => {
  const cache = await caches.open('clipwasm-shards-v1');
  return (await cache.keys()).map((r) => r.url).filter((u) => u.startsWith(prefix)).sort();
}`

func TestChangedManifestInvalidatesCache(t *testing.T) {
	name, dir := copyBundle(t, "vit_tiny-int8", "changed")
	if r := load(t, name); r.Error != nil {
		t.Fatal(r.Error)
	}
	// The same URL now serves another bundle: other shards, other hashes.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(bundles, "vit_tiny-f32"))); err != nil {
		t.Fatal(err)
	}
	server.Reset()
	r := load(t, name)
	if r.Error != nil {
		t.Fatal(r.Error)
	}
	var keys []string
	eval(t, cacheKeysJS, map[string]any{"prefix": baseURL + "/models/" + name + "/"}, &keys)
	var want []string
	for _, s := range manifestOf(t, dir).Shards {
		want = append(want, baseURL+"/models/"+name+"/"+s.File)
	}
	slices.Sort(want)
	record("changed_manifest", map[string]any{"result": r.Info, "cached": keys})
	t.Logf("after the change: %d shards downloaded, %d cached for the new manifest", len(requestsFor(name)), len(keys))
	if r.Info.CachedFiles != 0 || len(requestsFor(name)) != r.Info.Files || !slices.Equal(keys, want) {
		t.Errorf("cache after the manifest changed: %q, want %q; load %+v", keys, want, r.Info)
	}
}

func TestTamperedShardIsRefused(t *testing.T) {
	name, dir := copyBundle(t, "vit_tiny-int8", "tampered")
	victim := manifestOf(t, dir).Shards[1].File
	p := filepath.Join(dir, victim)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-100] ^= 0x40
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := load(t, name)
	record("tampered", r.Error)
	if r.Error == nil || r.Error.Code != worker.CodeIntegrity || r.Error.Shard != victim || !strings.Contains(r.Error.Message, victim) {
		t.Fatalf("tampered %s: got %+v", victim, r)
	}
	t.Logf("refused: %s", r.Error.Message)
}

func TestInterruptedDownloadResumes(t *testing.T) {
	name, dir := copyBundle(t, "vit_tiny-f32", "resume")
	victim := manifestOf(t, dir).Shards[2]
	cut := victim.Size / 2
	server.Reset()
	server.DropOnce("/models/"+name+"/"+victim.File, cut)
	r := load(t, name)
	if r.Error != nil {
		t.Fatal(r.Error)
	}
	var reqs []devserver.Request
	for _, q := range requestsFor(name) {
		if strings.HasSuffix(q.Path, victim.File) {
			reqs = append(reqs, q)
		}
	}
	record("resume", map[string]any{"cut_after": cut, "requests": reqs, "result": r.Info})
	t.Logf("requests for %s (%d bytes, cut after %d): %+v", victim.File, victim.Size, cut, reqs)
	if r.Info.Resumed != 1 || len(reqs) != 2 || !reqs[0].Dropped {
		t.Fatalf("want a dropped request then one resumed one; result %+v", r.Info)
	}
	var from int64
	if _, err := fmt.Sscanf(reqs[1].Range, "bytes=%d-", &from); err != nil || from <= 0 || from > cut || reqs[1].Status != 206 {
		t.Errorf("second request %+v: want Range from a byte in (0, %d] answered 206", reqs[1], cut)
	}
}

func TestQuotaIsReported(t *testing.T) {
	name, _ := copyBundle(t, "vit_tiny-int8", "quota")
	if _, err := browser.call("quota", map[string]any{"origin": baseURL, "bytes": 1}); err != nil {
		t.Fatal(err)
	}
	defer browser.call("quota", map[string]any{"origin": baseURL}) // back to the default
	r := load(t, name)
	record("quota", r)
	if r.Error != nil {
		t.Fatal(r.Error)
	}
	t.Logf("load with a 1-byte quota: cache %q: %s", r.Info.Cache, r.Info.CacheError)
	if r.Info.Cache != worker.CacheQuota {
		t.Errorf("cache %q (%s), want %q", r.Info.Cache, r.Info.CacheError, worker.CacheQuota)
	}
}

// cancelJS aborts a long text request and then a load, and checks the
// engine answers afterwards.
const cancelJS = `async ({ model, fresh }) => {
  const { ClipWasm } = await import('/clipwasm.js');
  const out = {};
  const clip = await ClipWasm.load('/models/' + model + '/manifest.json');
  try {
    const ac = new AbortController();
    const texts = Array.from({ length: 4000 }, (_, i) => 'a photo of thing number ' + i);
    const pending = clip.embedText(texts, { signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    try { await pending; out.text = 'finished'; } catch (e) { out.text = e.name; }
    const t0 = performance.now();
    out.after = (await clip.embedText('a photo of a cat.')).length;
    out.afterMs = performance.now() - t0;
  } finally {
    clip.dispose();
  }
  const ac = new AbortController();
  try {
    await ClipWasm.load('/models/' + fresh + '/manifest.json', {
      signal: ac.signal,
      onProgress: (p) => { if (p.phase === 'download' && p.loadedBytes > 0) ac.abort(); },
    });
    out.load = 'finished';
  } catch (e) { out.load = e.name; }
  const again = await ClipWasm.load('/models/' + fresh + '/manifest.json');
  out.reload = again.info.files;
  again.dispose();
  return out;
}`

func TestCancel(t *testing.T) {
	name, _ := copyBundle(t, "vit_tiny-f32", "cancel")
	var r struct {
		Text, Load    string
		After, Reload int
		AfterMs       float64
	}
	eval(t, cancelJS, map[string]any{"model": "vit_tiny-f32", "fresh": name}, &r)
	record("cancel", r)
	t.Logf("cancel: %+v", r)
	if r.Text != "AbortError" || r.Load != "AbortError" || r.After != 64 || r.Reload == 0 {
		t.Errorf("cancel: %+v", r)
	}
}

// --- the page ---------------------------------------------------------

func TestPage(t *testing.T) {
	steps := []struct {
		cmd  string
		args map[string]any
	}{
		{"goto", map[string]any{"url": baseURL + "/?model=/models/vit_tiny-int8/manifest.json"}},
		{"waitFor", map[string]any{"selector": "#prompts option[value^=ensemble]", "state": "attached"}},
		{"setFiles", map[string]any{"selector": "clip-classifier input[type=file]", "files": []string{fixtures.Path("images", "rgba_333x500.png")}}},
		{"fill", map[string]any{"selector": "#labels", "value": "cat, dog, dumpling, diagram"}},
		{"click", map[string]any{"selector": "#classify"}},
		{"waitFor", map[string]any{"selector": "clip-classifier li.result"}},
	}
	for _, s := range steps {
		if _, err := browser.call(s.cmd, s.args); err != nil {
			logConsole(t)
			t.Fatalf("%s %v: %v", s.cmd, s.args, err)
		}
	}
	shot, err := filepath.Abs(filepath.Join(outDir, "page.png"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := browser.call("screenshot", map[string]any{"path": shot}); err != nil {
		t.Fatal(err)
	}
	var rows []string
	eval(t, `() => [...document.querySelector('clip-classifier').shadowRoot.querySelectorAll('li.result')].map((li) => li.textContent)`, nil, &rows)
	record("page", rows)
	t.Logf("page results: %q (screenshot %s)", rows, shot)
	if len(rows) != 4 {
		t.Errorf("%d result rows, want 4", len(rows))
	}
	// Back to the test page for whatever runs next.
	if _, err := browser.call("goto", map[string]any{"url": baseURL + "/e2e/harness.html"}); err != nil {
		t.Fatal(err)
	}
}
