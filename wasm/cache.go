//go:build js && wasm

package main

import (
	"context"
	"errors"
	"syscall/js"

	"github.com/gowebapi/webapi/fetch"
	"github.com/gowebapi/webapi/patch"
	"github.com/gowebapi/webapi/serviceworker"

	"github.com/clipwasm/clipwasm/wasm/worker"
)

// hashHeader carries a cached shard's SHA-256, so that a lookup can tell a
// shard stored for an older manifest without hashing it.
const hashHeader = "X-Clipwasm-Sha256"

// cacheStore is a worker.Store over the Cache API (one named cache, keyed
// by shard URL). The Cache API persists across page loads, is available to
// workers and holds Responses, which suits immutable shard files.
type cacheStore struct {
	caches *serviceworker.CacheStorage
	name   string
}

// newCacheStore returns the store, or nil where the Cache API is missing
// (insecure contexts, some private modes): loads then simply download.
func newCacheStore(name string) worker.Store {
	c := js.Global().Get("caches")
	if !c.Truthy() {
		return nil
	}
	return &cacheStore{caches: serviceworker.CacheStorageFromJS(c), name: name}
}

func (s *cacheStore) open() (*serviceworker.Cache, error) {
	v, err := await(s.caches.Open(s.name).JSValue())
	if err != nil {
		return nil, err
	}
	return serviceworker.CacheFromJS(v), nil
}

func request(url string) *serviceworker.Union {
	return serviceworker.UnionFromJS(js.ValueOf(url))
}

func byteString(s string) *patch.ByteString { return patch.ByteStringFromJS(js.ValueOf(s)) }

// Get implements worker.Store.
func (s *cacheStore) Get(_ context.Context, url string, dst []byte) (string, bool, error) {
	c, err := s.open()
	if err != nil {
		return "", false, err
	}
	v, err := await(c.Match(request(url), nil).JSValue())
	if err != nil || !v.Truthy() {
		return "", false, err
	}
	resp := fetch.ResponseFromJS(v)
	var sum string
	if h := resp.Headers().Get(byteString(hashHeader)); h != nil {
		sum = h.JSValue().String()
	}
	buf, err := await(resp.ArrayBuffer().JSValue())
	if err != nil {
		return "", false, err
	}
	if buf.Get("byteLength").Int() != len(dst) {
		return "", false, nil
	}
	js.CopyBytesToGo(dst, uint8Array.New(buf))
	return sum, true, nil
}

// Put implements worker.Store.
func (s *cacheStore) Put(_ context.Context, url string, data []byte, sum string) error {
	c, err := s.open()
	if err != nil {
		return err
	}
	resp := fetch.NewResponse(fetch.UnionFromJS(jsScratch(data)), &fetch.ResponseInit{
		Status:     200,
		StatusText: byteString("OK"),
		Headers: [][]*patch.ByteString{
			{byteString("Content-Type"), byteString("application/octet-stream")},
			{byteString(hashHeader), byteString(sum)},
		},
	})
	_, err = await(c.Put(request(url), resp).JSValue())
	var je *jsError
	if errors.As(err, &je) && je.name == "QuotaExceededError" {
		return errors.Join(worker.ErrQuota, err)
	}
	return err
}

// Delete implements worker.Store.
func (s *cacheStore) Delete(_ context.Context, url string) error {
	c, err := s.open()
	if err != nil {
		return err
	}
	_, err = await(c.Delete(request(url), nil).JSValue())
	return err
}

// Keys implements worker.Store.
func (s *cacheStore) Keys(context.Context) ([]string, error) {
	c, err := s.open()
	if err != nil {
		return nil, err
	}
	reqs, err := await(c.Keys(nil, nil).JSValue())
	if err != nil {
		return nil, err
	}
	keys := make([]string, reqs.Length())
	for i := range keys {
		keys[i] = reqs.Index(i).Get("url").String()
	}
	return keys, nil
}
