// Package hub downloads CLIP checkpoints from the Hugging Face Hub, or any
// server with its layout (/{repo}/resolve/{revision}/{file}), into a local
// cache: resumable (HTTP Range on a .part file, retried when a connection
// breaks), with an optional progress line, sending a bearer token when one
// is given.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultURL is the Hugging Face Hub.
const DefaultURL = "https://huggingface.co"

// Client downloads repository files into a cache.
type Client struct {
	// BaseURL is the hub's address, DefaultURL if empty.
	BaseURL string
	// Token, if set, is sent as "Authorization: Bearer <token>".
	Token string
	// CacheDir holds the downloads: CacheDir/<repo>/<revision>/<file>.
	CacheDir string
	// HTTP is the client to use; nil means http.DefaultClient.
	HTTP *http.Client
	// Progress receives a progress line per file (bytes, rate); nil is quiet.
	Progress io.Writer
	// Attempts is how many times a file is tried, each try resuming where
	// the last stopped; 0 means 5.
	Attempts int
}

// retryDelay is the pause before the n-th retry is n times this.
var retryDelay = time.Second

// fileIndex is a sharded safetensors checkpoint's index.
const fileIndex = "model.safetensors.index.json"

// weightFiles are the weight file candidates, in the order checkpoint.Open
// prefers them.
var weightFiles = []string{"model.safetensors", fileIndex, "pytorch_model.bin", "open_clip_model.safetensors", "open_clip_pytorch_model.bin"}

// Optional files fetched when the repository has them.
var (
	configFiles    = []string{"config.json", "open_clip_config.json"}
	tokenizerFiles = []string{"vocab.json", "merges.txt"}
)

// completeMarker lists the files of a finished download; its presence makes
// a later Download a pure cache hit.
const completeMarker = ".clipwasm-complete.json"

var repoPart = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Dir returns the cache folder of repo at revision, after checking that
// both are well-formed ("owner/name" or "name"; any revision that is not
// empty, "." or "..").
func (c *Client) Dir(repo, revision string) (string, error) {
	parts := strings.Split(repo, "/")
	if len(parts) > 2 || slices.ContainsFunc(parts, func(p string) bool { return !repoPart.MatchString(p) || strings.Contains(p, "..") }) {
		return "", fmt.Errorf("hub: bad repository name %q (want owner/name)", repo)
	}
	rev := url.PathEscape(revision)
	if rev == "" || rev == "." || rev == ".." {
		return "", fmt.Errorf("hub: bad revision %q", revision)
	}
	if c.CacheDir == "" {
		return "", errors.New("hub: no cache folder")
	}
	return filepath.Join(append([]string{c.CacheDir}, append(parts, rev)...)...), nil
}

// Download fetches what a CLIP checkpoint needs from repo at revision — the
// configs, the weights (model.safetensors, or the sharded index and its
// shards, or pytorch_model.bin, or OpenCLIP's files) and the tokenizer
// files — and returns the local folder, ready for checkpoint.Open. Files
// the repository lacks are skipped, except that some weights must exist.
// Files already complete in the cache are not fetched again, and a folder
// whose download finished is returned without any request, so a branch
// such as "main" is not refreshed: pass a commit as the revision, or delete
// the folder, to fetch a newer one.
func (c *Client) Download(ctx context.Context, repo, revision string) (string, error) {
	dir, err := c.Dir(repo, revision)
	if err != nil {
		return "", err
	}
	if c.cached(dir) {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("hub: %w", err)
	}
	var got []string
	fetch := func(file string) (bool, error) {
		ok, err := c.fetch(ctx, repo, revision, file, dir)
		if ok {
			got = append(got, file)
		}
		return ok, err
	}
	for _, f := range configFiles {
		if _, err := fetch(f); err != nil {
			return "", err
		}
	}
	weights := ""
	for _, f := range weightFiles {
		ok, err := fetch(f)
		if err != nil {
			return "", err
		}
		if ok {
			weights = f
			break
		}
	}
	if weights == "" {
		return "", fmt.Errorf("hub: %s@%s has none of %s", repo, revision, strings.Join(weightFiles, ", "))
	}
	if weights == fileIndex {
		shards, err := indexShards(filepath.Join(dir, fileIndex))
		if err != nil {
			return "", err
		}
		for _, f := range shards {
			if ok, err := fetch(f); err != nil {
				return "", err
			} else if !ok {
				return "", fmt.Errorf("hub: %s@%s: shard %s named in %s not found", repo, revision, f, fileIndex)
			}
		}
	}
	for _, f := range tokenizerFiles {
		if _, err := fetch(f); err != nil {
			return "", err
		}
	}
	raw, _ := json.Marshal(map[string][]string{"files": got})
	if err := os.WriteFile(filepath.Join(dir, completeMarker), raw, 0o644); err != nil {
		return "", fmt.Errorf("hub: %w", err)
	}
	return dir, nil
}

// cached reports whether dir holds a finished download with all its files.
func (c *Client) cached(dir string) bool {
	raw, err := os.ReadFile(filepath.Join(dir, completeMarker))
	if err != nil {
		return false
	}
	var m struct{ Files []string }
	if json.Unmarshal(raw, &m) != nil || len(m.Files) == 0 {
		return false
	}
	for _, f := range m.Files {
		if !filepath.IsLocal(f) {
			return false
		}
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	return true
}

// indexShards returns the shard files a model.safetensors.index.json names,
// sorted, each checked to stay inside the repository folder.
func indexShards(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		return nil, fmt.Errorf("hub: %s: %w", fileIndex, err)
	}
	var files []string
	for _, f := range index.WeightMap {
		if !validFile(f) {
			return nil, fmt.Errorf("hub: %s names a bad shard file %q", fileIndex, f)
		}
		if !slices.Contains(files, f) {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("hub: %s has an empty weight_map", fileIndex)
	}
	slices.Sort(files)
	return files, nil
}

// validFile reports whether a repository file path is relative, clean and
// stays inside the repository.
func validFile(f string) bool {
	return f != "" && path.Clean(f) == f && filepath.IsLocal(f) && !strings.Contains(f, `\`)
}

// fetch downloads one file into dir unless it is already there, retrying
// and resuming after broken transfers. It returns false if the repository
// has no such file.
func (c *Client) fetch(ctx context.Context, repo, revision, file, dir string) (bool, error) {
	dest := filepath.Join(dir, filepath.FromSlash(file))
	if _, err := os.Stat(dest); err == nil {
		return true, nil
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return false, fmt.Errorf("hub: %w", err)
	}
	base := c.BaseURL
	if base == "" {
		base = DefaultURL
	}
	u := strings.TrimSuffix(base, "/") + "/" + repo + "/resolve/" + url.PathEscape(revision) + "/" + escapePath(file)
	attempts := c.Attempts
	if attempts <= 0 {
		attempts = 5
	}
	var err error
	for try := 0; try < attempts; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(time.Duration(try) * retryDelay):
			}
		}
		var found bool
		found, err = c.get(ctx, u, file, dest)
		if err == nil || !found {
			return found, err
		}
		var perm permanentError
		if errors.As(err, &perm) {
			break
		}
	}
	return false, fmt.Errorf("hub: %s: %w", u, err)
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// permanentError is a failure that retrying will not fix.
type permanentError struct{ error }

// get makes one attempt at u, resuming dest+".part" if it exists. It
// returns found=false with a nil error on 404, found=true with a nil error
// once dest is complete, and found=true with an error for a transfer to
// retry.
func (c *Client) get(ctx context.Context, u, file, dest string) (found bool, err error) {
	part := dest + ".part"
	var have int64
	if st, err := os.Stat(part); err == nil {
		have = st.Size()
	}
	etag, _ := os.ReadFile(part + ".etag")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return true, permanentError{err}
	}
	req.Header.Set("User-Agent", "clipwasm-weights-converter")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
		if len(etag) > 0 {
			// A changed file comes back whole (200) instead of a mix.
			req.Header.Set("If-Range", string(etag))
		}
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	var total int64
	flags := os.O_WRONLY | os.O_CREATE
	switch resp.StatusCode {
	case http.StatusNotFound:
		return false, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return true, permanentError{fmt.Errorf("%s (gated or private repository? set HF_TOKEN)", resp.Status)}
	case http.StatusRequestedRangeNotSatisfiable:
		// The partial file is no prefix of this one: start over.
		os.Remove(part)
		return true, errors.New(resp.Status)
	case http.StatusOK:
		have, total = 0, resp.ContentLength
		flags |= os.O_TRUNC
	case http.StatusPartialContent:
		start, size, err := contentRange(resp.Header.Get("Content-Range"))
		if err != nil || start != have {
			os.Remove(part)
			return true, fmt.Errorf("bad Content-Range %q for a resume at %d", resp.Header.Get("Content-Range"), have)
		}
		total = size
		flags |= os.O_APPEND
	default:
		return true, permanentError{errors.New(resp.Status)}
	}
	if e := resp.Header.Get("ETag"); e != "" && resp.StatusCode == http.StatusOK {
		os.WriteFile(part+".etag", []byte(e), 0o644)
	}
	f, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return true, permanentError{err}
	}
	var body io.Reader = resp.Body
	if c.Progress != nil {
		p := newProgress(c.Progress, file, have, total)
		defer p.finish()
		body = io.TeeReader(body, p)
	}
	n, err := io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return true, fmt.Errorf("transfer stopped after %d bytes: %w", have+n, err)
	}
	if total >= 0 && have+n != total {
		return true, fmt.Errorf("transfer stopped after %d of %d bytes", have+n, total)
	}
	if err := os.Rename(part, dest); err != nil {
		return true, permanentError{err}
	}
	os.Remove(part + ".etag")
	return true, nil
}

// contentRange parses "bytes start-end/size".
func contentRange(h string) (start, size int64, err error) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	span, total, ok2 := strings.Cut(rest, "/")
	first, _, ok3 := strings.Cut(span, "-")
	if !ok || !ok2 || !ok3 {
		return 0, 0, fmt.Errorf("bad Content-Range %q", h)
	}
	if start, err = strconv.ParseInt(first, 10, 64); err != nil {
		return 0, 0, err
	}
	if size, err = strconv.ParseInt(total, 10, 64); err != nil {
		return 0, 0, err
	}
	return start, size, nil
}
