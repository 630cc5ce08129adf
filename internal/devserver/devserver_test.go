package devserver

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func newTestServer(t *testing.T) (*Server, *httptest.Server, []byte) {
	t.Helper()
	web, models := t.TempDir(), t.TempDir()
	body := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	if err := os.WriteFile(filepath.Join(models, "shard.safetensors"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(web, "index.html"), []byte("<!doctype html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Mounts: map[string]string{"/": web, "/models/": models}, Control: true})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts, body
}

func TestServesWithIsolationAndRanges(t *testing.T) {
	s, ts, body := newTestServer(t)
	resp, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Cross-Origin-Embedder-Policy") != "require-corp" ||
		resp.Header.Get("Cross-Origin-Opener-Policy") != "same-origin" {
		t.Fatalf("GET /: %s, headers %v", resp.Status, resp.Header)
	}

	req, _ := http.NewRequest("GET", ts.URL+"/models/shard.safetensors", nil)
	req.Header.Set("Range", "bytes=1000-")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, body[1000:]) {
		t.Fatalf("range request: %s, %d bytes", resp.Status, len(got))
	}

	for _, p := range []string{"/models/missing", "/../devserver.go", "/models/"} {
		resp, err := http.Get(ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", p, resp.Status)
		}
	}

	log := s.Requests()
	if len(log) != 5 || log[1].Range != "bytes=1000-" || log[1].Status != 206 || log[1].Bytes != int64(len(body)-1000) {
		t.Errorf("log = %+v", log)
	}
}

func TestDropOnce(t *testing.T) {
	_, ts, body := newTestServer(t)
	resp, err := http.Post(ts.URL+ControlPrefix+"drop?path=/models/shard.safetensors&after=5000", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("arming the drop: %v %v", resp, err)
	}
	resp, err = http.Get(ts.URL + "/models/shard.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || len(got) != 5000 || !bytes.Equal(got, body[:5000]) {
		t.Fatalf("dropped response: %d bytes, err %v; want 5000 and an error", len(got), err)
	}
	// Only once: the next request gets all of it.
	resp, err = http.Get(ts.URL + "/models/shard.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(got) != len(body) {
		t.Fatalf("second response: %d bytes, %v", len(got), err)
	}

	resp, err = http.Get(ts.URL + ControlPrefix + "log")
	if err != nil {
		t.Fatal(err)
	}
	var log []Request
	err = json.NewDecoder(resp.Body).Decode(&log)
	resp.Body.Close()
	if err != nil || len(log) != 2 || !log[0].Dropped || log[0].Bytes != 5000 || log[1].Dropped {
		t.Fatalf("log = %+v, %v", log, err)
	}
}

func TestBadMount(t *testing.T) {
	if _, err := New(Options{Mounts: map[string]string{"models": t.TempDir()}}); err == nil {
		t.Error("prefix without slashes accepted")
	}
	if _, err := New(Options{Mounts: map[string]string{"/": filepath.Join(t.TempDir(), "nope")}}); err == nil {
		t.Error("missing folder accepted")
	}
}

func TestIsolationHeaders(t *testing.T) {
	web := t.TempDir()
	if err := os.WriteFile(filepath.Join(web, "index.html"), []byte("<!doctype html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		opts       Options
		coop, coep string
	}{
		{"isolated by default", Options{}, "same-origin", "require-corp"},
		{"not isolated", Options{NotIsolated: true}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Mounts = map[string]string{"/": web}
			s, err := New(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(s)
			defer ts.Close()
			resp, err := http.Get(ts.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if coop, coep := resp.Header.Get("Cross-Origin-Opener-Policy"), resp.Header.Get("Cross-Origin-Embedder-Policy"); resp.StatusCode != 200 || coop != tc.coop || coep != tc.coep {
				t.Errorf("GET /: %s, COOP %q COEP %q, want %q %q", resp.Status, coop, coep, tc.coop, tc.coep)
			}
			// CORS and CORP stay: a widget on another site still loads the engine.
			if resp.Header.Get("Cross-Origin-Resource-Policy") != "cross-origin" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("GET /: CORP/CORS headers missing: %v", resp.Header)
			}
		})
	}
}

// TestReplacedFileRevalidates: a file replaced within the second it was
// served in must not revalidate as unchanged, or the browser keeps the old
// manifest (Last-Modified has whole seconds; the ETag does not).
func TestReplacedFileRevalidates(t *testing.T) {
	s, ts, _ := newTestServer(t)
	get := func(h http.Header) (*http.Response, []byte) {
		req, err := http.NewRequest(http.MethodGet, ts.URL+"/index.html", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	first, _ := get(http.Header{})
	cond := http.Header{"If-None-Match": {first.Header.Get("ETag")}, "If-Modified-Since": {first.Header.Get("Last-Modified")}}
	if again, _ := get(cond); again.StatusCode != http.StatusNotModified {
		t.Fatalf("unchanged file: status %d, want 304", again.StatusCode)
	}
	file, _ := s.resolve("/index.html")
	replaced := []byte("<!doctype html><p>another page")
	if err := os.WriteFile(file, replaced, 0o644); err != nil {
		t.Fatal(err)
	}
	// Same second, most likely; the ETag must differ either way.
	resp, b := get(cond)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(b, replaced) {
		t.Errorf("replaced file: status %d, body %q; want 200 and the new body", resp.StatusCode, b)
	}
}
