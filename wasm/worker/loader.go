package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/clipwasm/clipwasm/shards"
)

// Doer sends HTTP requests: tinyutil's fetch-based client in the browser,
// *http.Client natively.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Store keeps verified shards across page loads (the Cache API in the
// browser), keyed by the shard's absolute URL and stored with its SHA-256,
// so that a manifest naming other content for the same URL invalidates it.
type Store interface {
	// Get reads the stored bytes of url into dst and returns their hash;
	// ok is false if url is absent or holds another number of bytes than
	// len(dst).
	Get(ctx context.Context, url string, dst []byte) (sha256 string, ok bool, err error)
	// Put stores data, returning an error wrapping ErrQuota when storage is
	// full.
	Put(ctx context.Context, url string, data []byte, sha256 string) error
	Delete(ctx context.Context, url string) error
	// Keys lists the stored URLs.
	Keys(ctx context.Context) ([]string, error)
}

// ErrQuota is what a Store's Put wraps when the browser's storage quota is
// exhausted.
var ErrQuota = errors.New("storage quota exceeded")

// errCancelled wraps context cancellation inside the worker.
var errCancelled = errors.New("cancelled")

// maxManifestBytes bounds the manifest download; real ones are about 1.2 MB
// (the tokenizer's merges dominate).
const maxManifestBytes = 64 << 20

// Loader fetches bundles.
type Loader struct {
	Client Doer
	Store  Store // nil: no persistent cache
	// Parallel is how many shards download at once (browsers allow about
	// six connections per host; the rest is left for the page).
	Parallel int
	// Retries is how many consecutive attempts of one shard may fail
	// without receiving a byte before the load fails; an attempt that made
	// progress resets the count, since the next one resumes from there.
	Retries int
	// Backoff is the wait before the first retry, doubled for each further
	// one.
	Backoff time.Duration
	// OnProgress receives progress at most every ProgressEvery, and after
	// each file; never from two goroutines at once.
	OnProgress    func(Progress)
	ProgressEvery time.Duration
	// Hash returns the SHA-256 of data in lowercase hex. The browser's
	// WebCrypto does it about 20 times faster than Go compiled to wasm.
	Hash func(data []byte) (string, error)
	// OnManifest, if set, learns the manifest before any shard is read.
	OnManifest func(*shards.Manifest)
}

// SHA256 is the Go implementation of Loader.Hash.
func SHA256(data []byte) (string, error) {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// NewLoader returns a loader with the defaults the worker uses.
func NewLoader(client Doer, store Store, onProgress func(Progress)) *Loader {
	return &Loader{Client: client, Store: store, Parallel: 4, Retries: 4, Backoff: 250 * time.Millisecond,
		OnProgress: onProgress, ProgressEvery: 100 * time.Millisecond, Hash: SHA256}
}

// Load fetches the bundle whose manifest is at manifestURL, taking shards
// from the Store where it holds them with the manifest's hash, downloading
// the others (resuming broken downloads with Range requests), verifying
// every shard's size and SHA-256, and storing new ones. Store entries under
// the bundle's folder that the manifest no longer names are deleted first,
// which frees their quota for the new shards.
func (l *Loader) Load(ctx context.Context, manifestURL string) (*shards.Bundle, *LoadResult, error) {
	base, err := url.Parse(manifestURL)
	if err != nil || !base.IsAbs() {
		return nil, nil, errorf(CodeBadRequest, "load: %q is not an absolute URL", manifestURL)
	}
	p := &progress{l: l, Progress: Progress{Phase: PhaseManifest}}
	p.emit(true)
	m, err := l.manifest(ctx, manifestURL)
	if err != nil {
		return nil, nil, err
	}
	if l.OnManifest != nil {
		l.OnManifest(m)
	}

	res := &LoadResult{Config: m.Config, Quant: string(m.Quant), Files: len(m.Shards), Bytes: m.TotalSize(), Cache: CacheStored}
	urls := make([]string, len(m.Shards))
	for i, s := range m.Shards {
		urls[i] = base.ResolveReference(&url.URL{Path: s.File}).String()
	}
	c := &cache{store: l.Store, res: res, off: l.Store == nil, verify: l.verify}
	if l.Store == nil {
		res.Cache = CacheUnavailable
	}
	c.prune(ctx, base.ResolveReference(&url.URL{Path: "./"}).String(), urls)

	p.mu.Lock()
	p.Phase, p.TotalBytes, p.TotalFiles = PhaseDownload, res.Bytes, res.Files
	p.mu.Unlock()
	// Every shard goes into one allocation made up front: the model keeps
	// them all (quantized matrices alias them), and sixteen-odd separate
	// 16 MiB buffers allocated among the download's garbage left the
	// wasm heap (which never shrinks) ~60 MB above the live bytes.
	// Each shard starts 8-byte aligned, so that f32 tensors can alias it
	// (see shards' f32View).
	data := make(map[string][]byte, len(m.Shards))
	arena := make([]byte, res.Bytes+7*int64(len(m.Shards)))
	for _, s := range m.Shards {
		data[s.File], arena = arena[:s.Size:s.Size], arena[(s.Size+7)&^7:]
	}
	var missing []int
	for i, s := range m.Shards {
		if c.get(ctx, s, urls[i], data[s.File]) {
			res.CachedFiles++
			res.CachedBytes += s.Size
			p.add(s.Size, 1, true)
		} else {
			missing = append(missing, i)
		}
	}
	p.emit(true)

	// Downloads run in parallel, but one shard at a time is hashed and
	// stored: each of those hands the browser its own copy of the shard,
	// and four at once kept ~50 MB more in the renderer at the load's peak.
	var mu, handOver sync.Mutex
	err = l.parallel(ctx, len(missing), func(ctx context.Context, j int) error {
		s := m.Shards[missing[j]]
		b := data[s.File]
		resumed, err := l.download(ctx, s, urls[missing[j]], b, p)
		if err != nil {
			return err
		}
		handOver.Lock()
		err = l.verify(s, b)
		if err == nil {
			c.put(ctx, urls[missing[j]], b, s.SHA256)
		}
		handOver.Unlock()
		if err != nil {
			return err
		}
		mu.Lock()
		res.Downloaded += s.Size
		res.Resumed += resumed
		mu.Unlock()
		p.add(0, 1, false)
		p.emit(true)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}

	p.mu.Lock()
	p.Phase = PhaseVerify
	p.mu.Unlock()
	p.emit(true)
	b, err := shards.NewBundle(m, data)
	if err != nil {
		// Every shard was verified on arrival, so this is a bug or
		// memory corruption rather than a bad download.
		return nil, nil, errorf(CodeIntegrity, "%v", err)
	}
	return b, res, nil
}

// manifest downloads and parses the manifest.
func (l *Loader) manifest(ctx context.Context, manifestURL string) (*shards.Manifest, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, manifestURL, nil)
	if err != nil {
		return nil, errorf(CodeBadRequest, "load: %v", err)
	}
	resp, err := l.Client.Do(req)
	if err != nil {
		return nil, netError(ctx, shards.ManifestFile, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errorf(CodeManifest, "%s: HTTP %d %s", manifestURL, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestBytes+1))
	if err != nil {
		return nil, netError(ctx, shards.ManifestFile, err)
	}
	if len(body) > maxManifestBytes {
		return nil, errorf(CodeManifest, "%s is over %d MiB", manifestURL, maxManifestBytes>>20)
	}
	m, err := shards.ParseManifest(body)
	if err != nil {
		return nil, errorf(CodeManifest, "%s: %v", manifestURL, err)
	}
	return m, nil
}

// parallel runs fn(ctx, 0..n-1) on l.Parallel goroutines and returns the
// first error, cancelling the other calls when one fails.
func (l *Loader) parallel(ctx context.Context, n int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for range min(max(l.Parallel, 1), n) {
		wg.Go(func() {
			for j := range next {
				if err := fn(ctx, j); err != nil {
					once.Do(func() { firstErr = err; cancel() })
				}
			}
		})
	}
feed:
	for j := range n {
		select {
		case next <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		// Cancelled from outside before every shard was handed out.
		firstErr = netError(ctx, "", ctx.Err())
	}
	return firstErr
}

// download fetches one shard into buf (of its manifest size), resuming
// after broken connections, and returns how many times it resumed. The
// caller verifies the bytes.
func (l *Loader) download(ctx context.Context, s shards.ShardEntry, u string, buf []byte, p *progress) (int, error) {
	var got int64
	resumed, failures := 0, 0
	for {
		n, err := l.fetchInto(ctx, s.File, u, buf, got, p)
		if err == nil {
			break
		}
		var e *Error
		if ctx.Err() != nil || (errors.As(err, &e) && e.Code != CodeNetwork) {
			return 0, err
		}
		if n > got {
			failures = 0
		} else {
			failures++
		}
		if failures > l.Retries {
			return 0, err
		}
		if n > 0 {
			resumed++
		}
		got = n
		select {
		case <-time.After(l.Backoff << max(failures-1, 0)):
		case <-ctx.Done():
			return 0, netError(ctx, s.File, ctx.Err())
		}
	}
	return resumed, nil
}

// verify checks data against the shard's manifest entry. (Its length is
// the manifest's by construction.)
func (l *Loader) verify(s shards.ShardEntry, data []byte) error {
	sum, err := l.Hash(data)
	if err != nil {
		return err
	}
	if int64(len(data)) != s.Size || sum != s.SHA256 {
		return &Error{Code: CodeIntegrity, Shard: s.File,
			Message: fmt.Sprintf("shard %s is corrupt: %d bytes with sha256 %s, the manifest says %d bytes with sha256 %s", s.File, len(data), sum, s.Size, s.SHA256)}
	}
	return nil
}

// fetchInto GETs u into buf from byte off (with a Range request when off >
// 0) and returns how much of buf is filled. A nil error means all of it.
// Errors with CodeNetwork are worth retrying; others are not.
func (l *Loader) fetchInto(ctx context.Context, file, u string, buf []byte, off int64, p *progress) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return off, errorf(CodeBadRequest, "shard %s: %v", file, err)
	}
	if off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
	}
	resp, err := l.Client.Do(req)
	if err != nil {
		return off, netError(ctx, file, err)
	}
	defer resp.Body.Close()
	// A fetch body does not watch the request's context once the headers
	// are in; closing it ends a pending read.
	defer context.AfterFunc(ctx, func() { resp.Body.Close() })()

	switch code := resp.StatusCode; {
	case code == http.StatusPartialContent && off > 0:
		if start, size, ok := contentRange(resp.Header.Get("Content-Range")); !ok || start != off || size != int64(len(buf)) {
			p.add(-off, 0, false)
			return 0, &Error{Code: CodeNetwork, Shard: file, Message: fmt.Sprintf("shard %s: resuming at byte %d got Content-Range %q; starting over", file, off, resp.Header.Get("Content-Range"))}
		}
	case code == http.StatusOK:
		// A server that ignores Range sends everything again.
		p.add(-off, 0, false)
		off = 0
	case code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests:
		return off, &Error{Code: CodeNetwork, Shard: file, Message: fmt.Sprintf("shard %s: HTTP %d %s", file, code, http.StatusText(code))}
	default:
		return off, &Error{Code: CodeManifest, Shard: file, Message: fmt.Sprintf("shard %s: HTTP %d %s", file, code, http.StatusText(code))}
	}
	for off < int64(len(buf)) {
		n, err := resp.Body.Read(buf[off:])
		off += int64(n)
		p.add(int64(n), 0, false)
		p.emit(false)
		if err == io.EOF {
			break
		}
		if err != nil {
			return off, netError(ctx, file, err)
		}
	}
	if off < int64(len(buf)) {
		return off, &Error{Code: CodeNetwork, Shard: file, Message: fmt.Sprintf("shard %s: the connection ended after %d of %d bytes", file, off, len(buf))}
	}
	var extra [1]byte
	if n, _ := io.ReadFull(resp.Body, extra[:]); n > 0 {
		return off, &Error{Code: CodeIntegrity, Shard: file, Message: fmt.Sprintf("shard %s is larger than the %d bytes the manifest says", file, len(buf))}
	}
	return off, nil
}

// contentRange parses "bytes START-END/SIZE".
func contentRange(h string) (start, size int64, ok bool) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, 0, false
	}
	rng, total, ok := strings.Cut(rest, "/")
	first, _, ok2 := strings.Cut(rng, "-")
	start, err1 := strconv.ParseInt(first, 10, 64)
	size, err2 := strconv.ParseInt(total, 10, 64)
	return start, size, ok && ok2 && err1 == nil && err2 == nil
}

// netError classifies a transport error: cancellation if ctx is done,
// otherwise a network error naming the file.
func netError(ctx context.Context, file string, err error) *Error {
	if ctx.Err() != nil {
		return &Error{Code: CodeCancelled, Message: "cancelled"}
	}
	if file == "" {
		return &Error{Code: CodeNetwork, Message: err.Error()}
	}
	return &Error{Code: CodeNetwork, Shard: file, Message: fmt.Sprintf("downloading %s: %v", file, err)}
}

// cache wraps the Store: a failing store never fails a load, it only
// changes LoadResult.Cache, and after the first failure of a Put no more
// are tried (they would fail the same way).
type cache struct {
	store  Store
	res    *LoadResult
	verify func(shards.ShardEntry, []byte) error
	mu     sync.Mutex
	off    bool // no store, or it failed
}

func (c *cache) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.off {
		return
	}
	c.off = true
	c.res.Cache, c.res.CacheError = CacheError, err.Error()
	if errors.Is(err, ErrQuota) {
		c.res.Cache = CacheQuota
	}
}

func (c *cache) enabled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.off
}

// prune deletes stored URLs under prefix that keep is missing.
func (c *cache) prune(ctx context.Context, prefix string, keep []string) {
	if !c.enabled() {
		return
	}
	keys, err := c.store.Keys(ctx)
	if err != nil {
		c.fail(err)
		return
	}
	wanted := make(map[string]bool, len(keep))
	for _, k := range keep {
		wanted[k] = true
	}
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) && !wanted[k] {
			if err := c.store.Delete(ctx, k); err != nil {
				c.fail(err)
				return
			}
		}
	}
}

// get reads the stored bytes of shard s into dst and reports whether they
// were there and verify. An entry stored for other content is deleted.
func (c *cache) get(ctx context.Context, s shards.ShardEntry, u string, dst []byte) bool {
	if !c.enabled() {
		return false
	}
	sum, ok, err := c.store.Get(ctx, u, dst)
	if err != nil {
		c.fail(err)
		return false
	}
	if ok && sum == s.SHA256 && c.verify(s, dst) == nil {
		return true
	}
	if err := c.store.Delete(ctx, u); err != nil {
		c.fail(err)
	}
	return false
}

func (c *cache) put(ctx context.Context, u string, data []byte, sum string) {
	if !c.enabled() {
		return
	}
	if err := c.store.Put(ctx, u, data, sum); err != nil {
		c.fail(err)
	}
}

// progress accumulates a load's progress and sends it, throttled.
type progress struct {
	l *Loader
	Progress
	mu   sync.Mutex
	last time.Time
}

// add counts bytes and files (cached ones also as cached).
func (p *progress) add(bytes int64, files int, cached bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.LoadedBytes += bytes
	p.LoadedFiles += files
	if cached {
		p.CachedBytes += bytes
		p.CachedFiles += files
	}
}

// emit sends the progress if force is set or ProgressEvery has passed. It
// sends under the lock, so that the callback is never called concurrently
// and the page sees counts that only grow.
func (p *progress) emit(force bool) {
	if p.l.OnProgress == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if !force && now.Sub(p.last) < p.l.ProgressEvery {
		return
	}
	p.last = now
	p.l.OnProgress(p.Progress)
}
