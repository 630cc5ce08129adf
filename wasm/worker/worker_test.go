package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clipwasm/clipwasm/convert"
	"github.com/clipwasm/clipwasm/internal/devserver"
	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/kernels/purego"
	"github.com/clipwasm/clipwasm/shards"
	"github.com/clipwasm/clipwasm/tokenizer"
)

// bundle is the fixture ViT converted to an f32 bundle of 7 shards with the
// project's converter, made on first use (not in TestMain, so that the
// tests that need no bundle also run under GOOS=js, where there is no
// os/exec).
var bundle struct {
	once sync.Once
	dir  string
	err  error
}

func bundleDir(t *testing.T) string {
	t.Helper()
	bundle.once.Do(func() {
		if bundle.dir, bundle.err = os.MkdirTemp("", "worker-test"); bundle.err != nil {
			return
		}
		out := filepath.Join(bundle.dir, "vit_tiny")
		cmd := exec.Command("go", "run", "./weights-converter", "--quiet", "--no-verify",
			"--in", fixtures.Path("openai", "vit_tiny", "vit_tiny.state_dict.pt"), "--out", out,
			"--quant", "f32", "--shard-size", "4MiB")
		cmd.Dir = filepath.Join("..", "..")
		if msg, err := cmd.CombinedOutput(); err != nil {
			bundle.err = fmt.Errorf("making the test bundle: %v\n%s", err, msg)
		}
	})
	if bundle.err != nil {
		t.Fatal(bundle.err)
	}
	return filepath.Join(bundle.dir, "vit_tiny")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bundle.dir != "" {
		os.RemoveAll(bundle.dir)
	}
	os.Exit(code)
}

// memStore is an in-memory Store; failPut, if set, fails every Put.
type memStore struct {
	mu      sync.Mutex
	data    map[string][]byte
	sums    map[string]string
	failPut error
}

func newMemStore() *memStore {
	return &memStore{data: map[string][]byte{}, sums: map[string]string{}}
}

func (s *memStore) Get(_ context.Context, url string, dst []byte) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.data[url]
	if !ok || len(d) != len(dst) {
		return "", false, nil
	}
	copy(dst, d)
	return s.sums[url], true, nil
}

func (s *memStore) Put(_ context.Context, url string, data []byte, sum string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failPut != nil {
		return s.failPut
	}
	s.data[url], s.sums[url] = slices.Clone(data), sum
	return nil
}

func (s *memStore) Delete(_ context.Context, url string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.data, url)
	delete(s.sums, url)
	return nil
}

func (s *memStore) Keys(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.data {
		keys = append(keys, k)
	}
	return keys, nil
}

// serve serves dir under /models/ and returns the server and the manifest URL.
func serve(t *testing.T, dir string) (*devserver.Server, string) {
	t.Helper()
	s, err := devserver.New(devserver.Options{Mounts: map[string]string{"/models/": dir}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL + "/models/manifest.json"
}

func newTestLoader(store Store) *Loader {
	l := NewLoader(http.DefaultClient, store, nil)
	l.Backoff = time.Millisecond
	return l
}

// shardRequests counts the recorded requests for shard files.
func shardRequests(s *devserver.Server) []devserver.Request {
	var out []devserver.Request
	for _, r := range s.Requests() {
		if strings.HasSuffix(r.Path, ".safetensors") {
			out = append(out, r)
		}
	}
	return out
}

func TestLoadEmbedAndCache(t *testing.T) {
	srv, manifestURL := serve(t, bundleDir(t))
	store := newMemStore()
	var events []Progress
	l := newTestLoader(store)
	l.OnProgress = func(p Progress) { events = append(events, p) }
	b, res, err := l.Load(context.Background(), manifestURL)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 7 || res.CachedFiles != 0 || res.Downloaded != res.Bytes || res.Cache != CacheStored || len(store.data) != 7 {
		t.Fatalf("first load: %+v, %d stored", res, len(store.data))
	}
	last := events[len(events)-1]
	if last.Phase != PhaseVerify || last.LoadedBytes != res.Bytes || last.LoadedFiles != 7 || last.TotalFiles != 7 {
		t.Errorf("last progress %+v", last)
	}

	e, err := NewEngine(b.Config, b, b.Tokenizer(), purego.New(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := fixtures.LoadNpy(t, "openai", "vit_tiny", "image_features.npy")
	d := want.Shape[1]
	// The fixture order: 1 is rgba_333x500.png, 4 tiny_17x29.png.
	for _, c := range []struct {
		file string
		row  int
	}{{"rgba_333x500.png", 1}, {"tiny_17x29.png", 4}} {
		got, err := e.EmbedImages(context.Background(), []Image{rgbaPixels(t, c.file)})
		if err != nil {
			t.Fatal(err)
		}
		fixtures.AssertClose(t, c.file, got.Data, want.F32[c.row*d:(c.row+1)*d], 1e-4)
	}
	gif, err := os.ReadFile(fixtures.Path("images", "palette_200x150.gif"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.EmbedImages(context.Background(), []Image{{Encoded: gif}})
	if err != nil {
		t.Fatal(err)
	}
	fixtures.AssertClose(t, "palette_200x150.gif (encoded)", got.Data, want.F32[5*d:6*d], 1e-4)

	// More prompts than a text chunk, so that chunking is exercised.
	var prompts []string
	for range 3 {
		prompts = append(prompts, fixturePrompts(t)...)
	}
	text, err := e.EmbedTexts(context.Background(), prompts)
	if err != nil {
		t.Fatal(err)
	}
	wantText := fixtures.LoadNpy(t, "openai", "vit_tiny", "text_features.npy")
	for i := range 3 {
		n := len(wantText.F32)
		fixtures.AssertClose(t, "text features", text.Data[i*n:(i+1)*n], wantText.F32, 1e-4)
	}

	cls, err := e.Classify(context.Background(), []Image{rgbaPixels(t, "tiny_17x29.png")},
		[]string{"cat", "dog", "dumpling"}, imagenetTemplates(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(cls.Results) != 1 || len(cls.Results[0]) != 2 || cls.Results[0][0].Prob < cls.Results[0][1].Prob {
		t.Errorf("classify: %+v", cls.Results)
	}

	// Second load: every shard from the store, none downloaded.
	srv.Reset()
	_, res, err = newTestLoader(store).Load(context.Background(), manifestURL)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(shardRequests(srv)); n != 0 || res.CachedFiles != 7 || res.Downloaded != 0 {
		t.Errorf("second load: %d shard requests, %+v", n, res)
	}
}

func imagenetTemplates(t *testing.T) []string {
	t.Helper()
	tpl, err := Templates("imagenet", nil)
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

// rgbaPixels decodes a fixture image into straight-alpha RGBA, as a browser
// canvas hands pixels over.
func rgbaPixels(t *testing.T, name string) Image {
	t.Helper()
	f, err := os.Open(fixtures.Path("images", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	m := image.NewNRGBA(src.Bounds())
	draw.Draw(m, m.Bounds(), src, src.Bounds().Min, draw.Src)
	return Image{Width: m.Rect.Dx(), Height: m.Rect.Dy(), RGBA: m.Pix}
}

func fixturePrompts(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(fixtures.Path("openai", "vit_tiny", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man struct{ Prompts []string }
	if err := json.Unmarshal(data, &man); err != nil {
		t.Fatal(err)
	}
	return man.Prompts
}

// copyBundle copies the test bundle so that a test may change it.
func copyBundle(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(bundleDir(t))); err != nil {
		t.Fatal(err)
	}
	return dir
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

func TestTamperedShardIsNamed(t *testing.T) {
	dir := copyBundle(t)
	victim := manifestOf(t, dir).Shards[3].File
	p := filepath.Join(dir, victim)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, manifestURL := serve(t, dir)
	store := newMemStore()
	_, _, err = newTestLoader(store).Load(context.Background(), manifestURL)
	e := AsError(err)
	if e.Code != CodeIntegrity || e.Shard != victim || !strings.Contains(e.Message, victim) {
		t.Fatalf("tampered %s: got %+v", victim, e)
	}
	for u := range store.data {
		if strings.HasSuffix(u, victim) {
			t.Errorf("the tampered shard was stored")
		}
	}
}

func TestInterruptedDownloadResumes(t *testing.T) {
	srv, manifestURL := serve(t, bundleDir(t))
	victim := manifestOf(t, bundleDir(t)).Shards[2]
	cut := victim.Size / 3
	srv.DropOnce("/models/"+victim.File, cut)
	_, res, err := newTestLoader(nil).Load(context.Background(), manifestURL)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != 1 || res.Cache != CacheUnavailable {
		t.Errorf("result %+v, want one resumed download", res)
	}
	var reqs []devserver.Request
	for _, r := range shardRequests(srv) {
		if strings.HasSuffix(r.Path, victim.File) {
			reqs = append(reqs, r)
		}
	}
	if len(reqs) != 2 || !reqs[0].Dropped || reqs[0].Bytes != cut {
		t.Fatalf("requests for %s: %+v", victim.File, reqs)
	}
	// The client may hold slightly less than was sent when the
	// connection broke, never more.
	from, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(reqs[1].Range, "bytes="), "-"), 10, 64)
	if err != nil || from <= 0 || from > cut || reqs[1].Status != http.StatusPartialContent {
		t.Errorf("second request %+v, want a Range request from at most byte %d", reqs[1], cut)
	}
}

func TestChangedManifestInvalidatesStore(t *testing.T) {
	srv, manifestURL := serve(t, bundleDir(t))
	store := newMemStore()
	base := strings.TrimSuffix(manifestURL, shards.ManifestFile)
	m := manifestOf(t, bundleDir(t))
	// An old shard no longer in the manifest, one stored under a current
	// name but for other content, and an entry of another bundle.
	store.data[base+"shard-old.safetensors"], store.sums[base+"shard-old.safetensors"] = []byte("old"), strings.Repeat("0", 64)
	stale := base + m.Shards[0].File
	store.data[stale], store.sums[stale] = []byte("stale"), strings.Repeat("1", 64)
	other := "http://elsewhere.example/models/shard.safetensors"
	store.data[other], store.sums[other] = []byte("other"), strings.Repeat("2", 64)

	_, res, err := newTestLoader(store).Load(context.Background(), manifestURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := store.data[base+"shard-old.safetensors"]; ok {
		t.Error("the shard the manifest dropped is still stored")
	}
	if _, ok := store.data[other]; !ok {
		t.Error("another bundle's shard was deleted")
	}
	if store.sums[stale] != m.Shards[0].SHA256 || res.CachedFiles != 0 || len(shardRequests(srv)) != 7 {
		t.Errorf("stale entry not replaced: %+v", res)
	}
}

func TestQuotaIsReported(t *testing.T) {
	_, manifestURL := serve(t, bundleDir(t))
	store := newMemStore()
	store.failPut = errors.Join(ErrQuota, errors.New("QuotaExceededError"))
	b, res, err := newTestLoader(store).Load(context.Background(), manifestURL)
	if err != nil || b == nil {
		t.Fatalf("load with a full store: %v", err)
	}
	if res.Cache != CacheQuota || !strings.Contains(res.CacheError, "quota") {
		t.Errorf("result %+v, want the quota reported", res)
	}
}

// blockingDoer answers the manifest from a real server and holds every
// other request until its context ends.
type blockingDoer struct{ started chan struct{} }

func (d blockingDoer) Do(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, shards.ManifestFile) {
		return http.DefaultClient.Do(req)
	}
	select {
	case d.started <- struct{}{}:
	default:
	}
	<-req.Context().Done()
	return nil, req.Context().Err()
}

func TestServer(t *testing.T) {
	_, manifestURL := serve(t, bundleDir(t))
	events := make(chan Event, 100)
	started := make(chan struct{}, 1)
	block := true
	s := NewServer(func(e Event) { events <- e }, func(on func(Progress)) *Loader {
		l := newTestLoader(nil)
		if block {
			l.Client = blockingDoer{started}
		}
		l.OnProgress = on
		return l
	}, purego.New(1), nil)
	final := func(id int) Event {
		t.Helper()
		for {
			select {
			case e := <-events:
				if e.ID == id && e.Type != EventProgress {
					return e
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("no reply to request %d", id)
			}
		}
	}

	s.Handle(Request{V: 2, ID: 1, Op: OpLoad})
	if e := final(1); e.Error == nil || e.Error.Code != CodeProtocol {
		t.Errorf("version 2: %+v", e)
	}
	s.Handle(Request{V: 1, ID: 2, Op: OpEmbedText, Texts: []string{"x"}})
	if e := final(2); e.Error == nil || e.Error.Code != CodeNotLoaded {
		t.Errorf("embed before load: %+v", e)
	}

	s.Handle(Request{V: 1, ID: 3, Op: OpLoad, URL: manifestURL})
	<-started
	s.Handle(Request{V: 1, ID: 4, Op: OpCancel, Target: 3})
	if e := final(4); e.Result.(*CancelResult).Cancelled != true {
		t.Errorf("cancel reply %+v", e)
	}
	if e := final(3); e.Error == nil || e.Error.Code != CodeCancelled {
		t.Errorf("cancelled load: %+v", e.Error)
	}

	block = false
	var limits []int64
	s.SetMemoryLimit = func(n int64) { limits = append(limits, n) }
	s.Handle(Request{V: 1, ID: 5, Op: OpLoad, URL: manifestURL})
	e := final(5)
	if e.Error != nil || e.Result.(*LoadResult).Backend != "purego" {
		t.Fatalf("load: %+v", e.Error)
	}
	// Set for the incoming model, then for the one kept: both hold it.
	size := e.Result.(*LoadResult).Bytes
	if len(limits) != 2 || limits[0] < size+loadHeadroom || limits[1] < size+memoryHeadroom {
		t.Errorf("memory limits %v for a %d-byte model", limits, size)
	}
	s.Handle(Request{V: 1, ID: 6, Op: OpClassify, Images: []Image{rgbaPixels(t, "tiny_17x29.png")},
		Labels: []string{"cat", "dog"}, Ensemble: "nope"})
	if e := final(6); e.Error == nil || e.Error.Code != CodeBadRequest || !strings.Contains(e.Error.Message, "imagenet") {
		t.Errorf("unknown ensemble: %+v", e.Error)
	}
	s.Handle(Request{V: 1, ID: 7, Op: OpClassify, Images: []Image{rgbaPixels(t, "tiny_17x29.png")},
		Labels: []string{"cat", "dog"}, Templates: []string{"a {} photo"}})
	if e := final(7); e.Error != nil || len(e.Result.(*Classification).Results[0]) != 2 {
		t.Errorf("classify: %+v", e)
	}
	s.Handle(Request{V: 1, ID: 9, Op: OpStats})
	if e := final(9); e.Error != nil || e.Result.(*Stats).SysBytes == 0 {
		t.Errorf("stats: %+v", e)
	}
	s.Handle(Request{V: 1, ID: 8, Op: "fly"})
	if e := final(8); e.Error == nil || e.Error.Code != CodeProtocol {
		t.Errorf("unknown op: %+v", e)
	}
}

func TestEngineCancelsBetweenChunks(t *testing.T) {
	b, err := shards.Open(bundleDir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	steps := 0
	e, err := NewEngine(b.Config, b, b.Tokenizer(), purego.New(1), func() {
		if steps++; steps == 2 {
			cancel()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	texts := make([]string, 5*textChunk)
	for i := range texts {
		texts[i] = "a photo of a cat"
	}
	if _, err := e.EmbedTexts(ctx, texts); AsError(err).Code != CodeCancelled || steps != 2 {
		t.Errorf("after %d steps: %v", steps, err)
	}
}

// TestTextStopsAtLastEOT checks that the text tower runs only up to the
// last EOT of a batch (package clip's truncation), here and in the wasm
// build: `make e2e` runs it under GOOS=js GOARCH=wasm in Node.
func TestTextStopsAtLastEOT(t *testing.T) {
	m, err := convert.Open(fixtures.Path("openai", "vit_tiny", "vit_tiny.state_dict.pt"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(fixtures.VocabPath())
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(m.Config, m, tok, purego.New(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	var seq int
	e.model.Trace = func(name string, _ []float32, shape []int) {
		if name == "text0_embed" {
			seq = shape[0]
		}
	}
	short := "a photo of a cat." // SOT, 6 tokens, EOT: pooled at 7
	long := strings.Repeat("dog ", 100)
	for _, c := range []struct {
		texts []string
		seq   int
	}{{[]string{short}, 8}, {[]string{short, short + " on a mat"}, 11}, {[]string{short, long}, 77}} {
		if _, err := e.EmbedTexts(context.Background(), c.texts); err != nil {
			t.Fatal(err)
		}
		if seq != c.seq {
			t.Errorf("%q: the text tower ran over %d positions, want %d", c.texts, seq, c.seq)
		}
	}
}

// TestModelInputs embeds the fixture's own model inputs (images.npy, the
// preprocessed images, and tokens.npy, clip.tokenize's rows) sent as the
// protocol's pixels and tokens, and refuses malformed ones.
func TestModelInputs(t *testing.T) {
	b, err := shards.Open(bundleDir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	e, err := NewEngine(b.Config, b, b.Tokenizer(), purego.New(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(func(Event) {}, nil, purego.New(1), nil)
	s.engine = e
	pixels := fixtures.LoadNpy(t, "openai", "vit_tiny", "images.npy").F32
	rows := fixtures.LoadNpy(t, "openai", "vit_tiny", "tokens.npy").I64
	tokens := make([]int32, len(rows))
	for i, id := range rows {
		tokens[i] = int32(id)
	}
	outside := slices.Clone(tokens)
	outside[80] = int32(b.Config.VocabSize)
	for _, c := range []struct {
		name string
		req  Request
		want string // a golden file, or "" for a bad request
	}{
		{"pixels", Request{Op: OpEmbedImage, Pixels: pixels}, "image_features.npy"},
		{"tokens", Request{Op: OpEmbedText, Tokens: tokens}, "text_features.npy"},
		{"a partial image", Request{Op: OpEmbedImage, Pixels: pixels[:len(pixels)-1]}, ""},
		{"pixels and images", Request{Op: OpEmbedImage, Pixels: pixels, Images: []Image{rgbaPixels(t, "tiny_17x29.png")}}, ""},
		{"a partial row", Request{Op: OpEmbedText, Tokens: tokens[:b.Config.ContextLength+1]}, ""},
		{"an id outside the vocabulary", Request{Op: OpEmbedText, Tokens: outside}, ""},
		{"tokens and texts", Request{Op: OpEmbedText, Tokens: tokens, Texts: []string{"a cat"}}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := s.run(context.Background(), c.req)
			if c.want == "" {
				if AsError(err).Code != CodeBadRequest {
					t.Fatalf("got %v, want a bad-request error", err)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := fixtures.LoadNpy(t, "openai", "vit_tiny", c.want)
			fixtures.AssertClose(t, c.want, res.(*Embeddings).Data, want.F32, 1e-4)
		})
	}
}
