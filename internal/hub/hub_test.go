package hub

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clipwasm/clipwasm/internal/fixtures"
)

func init() { retryDelay = time.Millisecond }

// fakeHub serves folders the way the Hub lays repositories out:
// /{repo}/resolve/{revision}/{file}, large files through a redirect to
// /lfs/..., with ETags, Range and HEAD support from http.ServeContent.
type fakeHub struct {
	repos map[string]string // repo → folder
	token string            // required bearer token, if set

	mu       sync.Mutex
	requests []string        // "METHOD path range auth"
	cut      map[string]bool // files whose next full GET is cut midway
}

func (h *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.requests = append(h.requests, fmt.Sprintf("%s %s range=%q auth=%q", r.Method, r.URL.Path, r.Header.Get("Range"), r.Header.Get("Authorization")))
	h.mu.Unlock()
	if h.token != "" && r.Header.Get("Authorization") != "Bearer "+h.token {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	p := r.URL.Path
	if rest, ok := strings.CutPrefix(p, "/lfs/"); ok {
		h.serve(w, r, rest)
		return
	}
	repo, file, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/resolve/main/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if strings.HasSuffix(file, ".safetensors") {
		http.Redirect(w, r, "/lfs/"+repo+"/"+file, http.StatusFound)
		return
	}
	h.serve(w, r, repo+"/"+file)
}

func (h *fakeHub) serve(w http.ResponseWriter, r *http.Request, repoFile string) {
	for repo, dir := range h.repos {
		file, ok := strings.CutPrefix(repoFile, repo+"/")
		if !ok {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(file)))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		sum := sha256.Sum256(data)
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
		h.mu.Lock()
		cut := h.cut[file] && r.Header.Get("Range") == ""
		delete(h.cut, file)
		h.mu.Unlock()
		if cut {
			// Promise everything, send half, drop the connection.
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.WriteHeader(http.StatusOK)
			w.Write(data[:len(data)/2])
			return
		}
		http.ServeContent(w, r, file, time.Time{}, bytes.NewReader(data))
		return
	}
	http.NotFound(w, r)
}

func (h *fakeHub) log() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.requests...)
}

func newHub(t *testing.T, repos map[string]string) (*fakeHub, *Client) {
	h := &fakeHub{repos: repos, cut: map[string]bool{}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, &Client{BaseURL: srv.URL, CacheDir: t.TempDir()}
}

func sameFile(t *testing.T, got, want string) {
	t.Helper()
	a, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("%s: %d bytes differ from %s (%d bytes)", got, len(a), want, len(b))
	}
}

// TestDownload fetches a fixture Hugging Face folder through a connection
// cut midway, with a token, then hits the cache without a request.
func TestDownload(t *testing.T) {
	fixtures.Require(t)
	src := fixtures.Path("hf", "hf_tiny_quickgelu")
	h, c := newHub(t, map[string]string{"org/tiny": src})
	h.token, c.Token = "secret", "secret"
	h.cut["model.safetensors"] = true
	var progress bytes.Buffer
	c.Progress = &progress

	dir, err := c.Download(context.Background(), "org/tiny", "main")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "model.safetensors"} {
		sameFile(t, filepath.Join(dir, f), filepath.Join(src, f))
	}
	for _, f := range []string{"vocab.json", "model.safetensors.part", "pytorch_model.bin"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s should not exist", f)
		}
	}
	first := h.log()
	resumed := false
	size := fileSize(t, filepath.Join(src, "model.safetensors"))
	for _, r := range first {
		if !strings.Contains(r, `auth="Bearer secret"`) {
			t.Errorf("request without the token: %s", r)
		}
		if strings.Contains(r, fmt.Sprintf(`range="bytes=%d-"`, size/2)) {
			resumed = true
		}
	}
	if !resumed {
		t.Errorf("no resumed request after the cut; requests:\n%s", strings.Join(first, "\n"))
	}
	if !strings.Contains(progress.String(), "model.safetensors") {
		t.Errorf("no progress line for model.safetensors: %q", progress.String())
	}

	again, err := c.Download(context.Background(), "org/tiny", "main")
	if err != nil || again != dir {
		t.Fatalf("second download: %q, %v", again, err)
	}
	if n := len(h.log()); n != len(first) {
		t.Errorf("cache hit made %d requests", n-len(first))
	}
}

func fileSize(t *testing.T, path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestResumeAcrossRuns: a run that gives up after a cut leaves a .part
// that the next run continues with a Range request.
func TestResumeAcrossRuns(t *testing.T) {
	fixtures.Require(t)
	src := fixtures.Path("hf", "hf_tiny_gelu_fp16")
	h, c := newHub(t, map[string]string{"org/tiny": src})
	h.cut["model.safetensors"] = true
	c.Attempts = 1
	if _, err := c.Download(context.Background(), "org/tiny", "main"); err == nil {
		t.Fatal("a cut transfer with one attempt succeeded")
	}
	dir, _ := c.Dir("org/tiny", "main")
	size := fileSize(t, filepath.Join(src, "model.safetensors"))
	if got := fileSize(t, filepath.Join(dir, "model.safetensors.part")); got != size/2 {
		t.Fatalf(".part holds %d bytes, want %d", got, size/2)
	}
	n := len(h.log())
	if _, err := c.Download(context.Background(), "org/tiny", "main"); err != nil {
		t.Fatal(err)
	}
	sameFile(t, filepath.Join(dir, "model.safetensors"), filepath.Join(src, "model.safetensors"))
	second := h.log()[n:]
	want := fmt.Sprintf(`range="bytes=%d-"`, size/2)
	if !slices.ContainsFunc(second, func(r string) bool { return strings.Contains(r, want) }) {
		t.Errorf("second run did not resume with %s:\n%s", want, strings.Join(second, "\n"))
	}
	// config.json was complete after the first run: not fetched again.
	if slices.ContainsFunc(second, func(r string) bool { return strings.Contains(r, "config.json") && !strings.Contains(r, "open_clip") }) {
		t.Errorf("config.json fetched again:\n%s", strings.Join(second, "\n"))
	}
}

// TestDownloadLayouts covers the other weight layouts and the failures.
func TestDownloadLayouts(t *testing.T) {
	repos := map[string]map[string]string{
		"o/sharded": {
			"config.json":                      "{}",
			"model.safetensors.index.json":     `{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"}}`,
			"model-00001-of-00002.safetensors": "shard one",
			"model-00002-of-00002.safetensors": "shard two",
			"vocab.json":                       "{}",
			"merges.txt":                       "#version: 0.2\n",
		},
		"o/openclip":  {"open_clip_config.json": "{}", "open_clip_pytorch_model.bin": "bin"},
		"o/escaping":  {"model.safetensors.index.json": `{"weight_map": {"a": "../../etc/passwd"}}`},
		"o/no-weight": {"config.json": "{}"},
	}
	dirs := map[string]string{}
	for repo, files := range repos {
		dirs[repo] = t.TempDir()
		for f, body := range files {
			if err := os.WriteFile(filepath.Join(dirs[repo], f), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, c := newHub(t, dirs)
	for _, tc := range []struct {
		repo, rev string
		err       string // substring of the expected error; "" for success
	}{
		{repo: "o/sharded", rev: "main"},
		{repo: "o/openclip", rev: "main"},
		{repo: "o/escaping", rev: "main", err: "bad shard file"},
		{repo: "o/no-weight", rev: "main", err: "has none of"},
		{repo: "../x", rev: "main", err: "bad repository"},
		{repo: "a/b/c", rev: "main", err: "bad repository"},
		{repo: "o/sharded", rev: "..", err: "bad revision"},
	} {
		t.Run(tc.repo+"@"+tc.rev, func(t *testing.T) {
			dir, err := c.Download(context.Background(), tc.repo, tc.rev)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for f, body := range repos[tc.repo] {
				if got, err := os.ReadFile(filepath.Join(dir, f)); err != nil || string(got) != body {
					t.Errorf("%s: %q, %v; want %q", f, got, err, body)
				}
			}
		})
	}
}

// TestUnauthorized: a 401 fails at once with a hint about HF_TOKEN.
func TestUnauthorized(t *testing.T) {
	h, c := newHub(t, map[string]string{"o/r": t.TempDir()})
	h.token = "needed"
	_, err := c.Download(context.Background(), "o/r", "main")
	if err == nil || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Fatalf("error %v, want a hint about HF_TOKEN", err)
	}
	if n := len(h.log()); n != 1 {
		t.Errorf("%d requests, want 1 (no retries on 401)", n)
	}
}
