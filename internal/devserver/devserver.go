// Package devserver is a small static file server for the browser tests and
// demos of the wasm engine. It serves folders under URL prefixes with the
// headers the engine wants in production too: cross-origin isolation
// (COOP/COEP, so that the page may use SharedArrayBuffer and the engine
// runs on several threads; a page without them runs on one),
// CORS and CORP (so that a widget on another site can fetch the worker and
// the weights), and byte ranges through http.ServeContent (so that an
// interrupted shard download resumes).
//
// For tests it records every request and can drop one response midway, the
// way a flaky network does: the status and full Content-Length go out, then
// part of the body, then the connection is closed.
package devserver

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ControlPrefix is where the control endpoints live when Options.Control is
// set: GET log (the recorded requests as JSON), POST reset (forget them),
// POST drop?path=P&after=N (cut the next response for path P after N bytes).
const ControlPrefix = "/_devserver/"

// dropPause is how long a dropped response stalls before its connection
// closes.
const dropPause = 300 * time.Millisecond

// Options configure a Server.
type Options struct {
	// Mounts maps URL prefixes ("/", "/models/") to folders. The longest
	// matching prefix wins.
	Mounts map[string]string
	// Control enables the endpoints under ControlPrefix, for test drivers
	// that run in another process (a browser script). Never for a public
	// server: they let anyone break downloads.
	Control bool
	// NotIsolated leaves out the cross-origin isolation headers (COOP and
	// COEP), as on a site that has not opted in: its pages get no
	// SharedArrayBuffer and the engine runs on one thread.
	NotIsolated bool
}

// Request is one recorded request.
type Request struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Range  string `json:"range,omitempty"`
	Status int    `json:"status"`
	// Bytes is the body bytes written (a dropped response's part).
	Bytes   int64 `json:"bytes"`
	Dropped bool  `json:"dropped,omitempty"`
}

// Server serves the mounts and records requests. It is an http.Handler.
type Server struct {
	mounts   []mount
	control  bool
	isolated bool

	mu    sync.Mutex
	log   []Request
	drops map[string]int64 // URL path → bytes to send before cutting
}

type mount struct{ prefix, dir string }

func init() {
	// Browsers refuse module scripts and streaming wasm compilation under
	// the wrong type, and systems' mime tables vary.
	for ext, typ := range map[string]string{
		".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
		".wasm": "application/wasm", ".json": "application/json",
		".safetensors": "application/octet-stream",
	} {
		if err := mime.AddExtensionType(ext, typ); err != nil {
			panic(err)
		}
	}
}

// New returns a server for opts.
func New(opts Options) (*Server, error) {
	s := &Server{control: opts.Control, isolated: !opts.NotIsolated, drops: map[string]int64{}}
	for prefix, dir := range opts.Mounts {
		if !strings.HasPrefix(prefix, "/") || !strings.HasSuffix(prefix, "/") {
			return nil, fmt.Errorf("devserver: mount prefix %q must start and end with /", prefix)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("devserver: mount %s: %q is not a folder", prefix, dir)
		}
		s.mounts = append(s.mounts, mount{prefix, dir})
	}
	sort.Slice(s.mounts, func(i, j int) bool { return len(s.mounts[i].prefix) > len(s.mounts[j].prefix) })
	return s, nil
}

// DropOnce makes the next response for urlPath stop after n body bytes, with
// the connection closed.
func (s *Server) DropOnce(urlPath string, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drops[urlPath] = n
}

// Requests returns the requests recorded since the last Reset.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// Reset forgets the recorded requests and pending drops.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
	clear(s.drops)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.control && strings.HasPrefix(r.URL.Path, ControlPrefix) {
		s.serveControl(w, r)
		return
	}
	h := w.Header()
	if s.isolated {
		// Cross-origin isolation: SharedArrayBuffer, so threads.
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Embedder-Policy", "require-corp")
	}
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("Access-Control-Allow-Origin", "*")
	// Revalidate every time: shards are content-named, but the manifest and
	// the page change while one develops.
	h.Set("Cache-Control", "no-cache")

	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	s.mu.Lock()
	if n, ok := s.drops[r.URL.Path]; ok {
		delete(s.drops, r.URL.Path)
		rec.cut, rec.armed = n, true
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.log = append(s.log, Request{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"),
			Status: rec.status, Bytes: rec.written, Dropped: rec.dropped})
		s.mu.Unlock()
		if rec.dropped {
			// The documented way to abort a response: the server closes
			// the connection without finishing the body.
			panic(http.ErrAbortHandler)
		}
	}()

	file, ok := s.resolve(r.URL.Path)
	if !ok {
		http.NotFound(rec, r)
		return
	}
	f, err := os.Open(file)
	if err != nil {
		http.NotFound(rec, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.IsDir() {
		http.NotFound(rec, r)
		return
	}
	// Last-Modified has whole seconds, so a file replaced within the second
	// it was served in would revalidate as unchanged (304) and the browser
	// would keep the old one; an ETag from the size and the nanosecond
	// modification time tells them apart, and ServeContent checks it
	// before If-Modified-Since.
	h.Set("ETag", fmt.Sprintf(`"%x-%x"`, fi.Size(), fi.ModTime().UnixNano()))
	http.ServeContent(rec, r, fi.Name(), fi.ModTime(), f)
}

// resolve maps a URL path to a file under the longest matching mount, or
// reports false. A path ending in / serves index.html.
func (s *Server) resolve(urlPath string) (string, bool) {
	clean := path.Clean(urlPath)
	if strings.HasSuffix(urlPath, "/") {
		clean = path.Join(clean, "index.html")
	}
	for _, m := range s.mounts {
		if rel, ok := strings.CutPrefix(clean, m.prefix); ok || clean+"/" == m.prefix {
			// path.Clean removed every "..", so rel stays inside the mount.
			return filepath.Join(m.dir, filepath.FromSlash(rel)), true
		}
	}
	return "", false
}

func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	switch op := strings.TrimPrefix(r.URL.Path, ControlPrefix); {
	case op == "log" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(s.Requests())
	case op == "reset" && r.Method == http.MethodPost:
		s.Reset()
	case op == "drop" && r.Method == http.MethodPost:
		n, err := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
		p := r.URL.Query().Get("path")
		if err != nil || n < 0 || !strings.HasPrefix(p, "/") {
			http.Error(w, "want path=/url/path&after=bytes", http.StatusBadRequest)
			return
		}
		s.DropOnce(p, n)
	default:
		http.Error(w, "unknown control request", http.StatusNotFound)
	}
}

// recorder notes the status and body bytes of a response, and cuts the body
// after cut bytes when armed.
type recorder struct {
	http.ResponseWriter
	status  int
	written int64
	cut     int64
	armed   bool
	dropped bool
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.dropped {
		return 0, http.ErrAbortHandler
	}
	if r.armed && r.written+int64(len(p)) > r.cut {
		n, _ := r.ResponseWriter.Write(p[:r.cut-r.written])
		r.written += int64(n)
		// Flush what was written and let the client read it before the
		// connection closes, as over a real network, where data trickles
		// in before a drop. A browser discards body chunks it has queued
		// but not handed to the page when the stream fails, so on
		// localhost, without the pause, the page would see almost nothing.
		http.NewResponseController(r.ResponseWriter).Flush()
		time.Sleep(dropPause)
		r.dropped = true
		return n, http.ErrAbortHandler
	}
	n, err := r.ResponseWriter.Write(p)
	r.written += int64(n)
	return n, err
}

// ListenAndServe serves s on addr until the process ends, with timeouts
// that suit a local server.
func ListenAndServe(addr string, s *Server) error {
	srv := &http.Server{Addr: addr, Handler: s, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}
