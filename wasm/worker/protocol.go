// Package worker is the platform-independent part of the wasm engine's Web
// Worker: the message protocol between the page and the worker, the bundle
// loader (manifest, parallel shard downloads that resume, SHA-256 checks, a
// persistent shard cache), and the engine calls (image and text embeddings,
// zero-shot classification) with cancellation. The js/wasm main package
// binds it to the browser: messages, fetch and the Cache API. Everything
// here also runs natively, which is how it is tested.
//
// # Protocol (version 1)
//
// The page posts requests {v: 1, id, op, ...}; the worker answers each with
// zero or more {v: 1, id, type: "progress", progress} events and then
// exactly one {v: 1, id, type: "result", result} or {v: 1, id, type:
// "error", error: {code, message, shard?}}. Once started, the worker posts
// {v: 1, type: "ready", backend, ensembles} with no id.
//
//	op          fields                               result
//	load        url (of manifest.json)               LoadResult
//	embedImage  images | pixels                      Embeddings
//	embedText   texts | tokens                       Embeddings
//	classify    images, labels, templates | ensemble, Classification
//	            topK
//	cancel      target (the id to cancel)            {cancelled}
//	stats       -                                    Stats
//
// An image is {width, height, rgba} (straight-alpha RGBA pixels, rows packed,
// as the browser decodes them) or {encoded} (the file's bytes, for formats
// whose browser decoding cannot match Pillow; see Image). pixels (a
// Float32Array) and tokens (an Int32Array) are model inputs made elsewhere,
// for benchmarks and checks on fixed inputs (see Request).
package worker

import (
	"errors"
	"fmt"

	"github.com/clipwasm/clipwasm/clip"
)

// ProtocolVersion is the v field of every message.
const ProtocolVersion = 1

// The request ops.
const (
	OpLoad       = "load"
	OpEmbedImage = "embedImage"
	OpEmbedText  = "embedText"
	OpClassify   = "classify"
	OpCancel     = "cancel"
	OpStats      = "stats"
)

// The event types.
const (
	EventReady    = "ready"
	EventProgress = "progress"
	EventResult   = "result"
	EventError    = "error"
)

// Request is one message from the page.
type Request struct {
	V  int
	ID int
	Op string

	URL       string   // load: the manifest's URL
	Images    []Image  // embedImage, classify
	Texts     []string // embedText
	Labels    []string // classify
	Templates []string // classify: each holds "{}"; empty means the default
	Ensemble  string   // classify: a name in clip.Ensembles, instead of Templates
	TopK      int      // classify: keep this many labels per image; 0 keeps all
	Target    int      // cancel: the request to cancel

	// Pixels (embedImage, instead of Images) are n images already
	// preprocessed into the model's input, [n,3,R,R] as imageproc.Preprocess makes
	// them (R = Config.ImageResolution).
	Pixels []float32
	// Tokens (embedText, instead of Texts) are n rows of token ids as
	// clip.tokenize makes them, [n,ContextLength].
	Tokens []int32
}

// Image is one image to embed: either browser-decoded RGBA pixels or an
// encoded file. Pillow resizes palette images (GIF, indexed PNG) with
// NEAREST and keeps the palette colour of transparent pixels; browser pixels
// lose both, so the page sends such files encoded and imageproc decodes
// them as Pillow does.
type Image struct {
	Width, Height int
	RGBA          []byte // 4 bytes per pixel, straight alpha, no row padding
	Encoded       []byte // a JPEG, PNG, GIF or WebP file
}

// Event is one message to the page.
type Event struct {
	ID       int       `json:"id"`
	Type     string    `json:"type"`
	Progress *Progress `json:"progress,omitempty"`
	Result   any       `json:"result,omitempty"` // *LoadResult, *Embeddings, *Classification, *CancelResult or *Stats
	Error    *Error    `json:"error,omitempty"`
}

// Ready is the payload of the ready event.
type Ready struct {
	Backend   string   `json:"backend"`
	Ensembles []string `json:"ensembles"`
}

// Progress reports a load. Bytes and files read from the cache count as
// loaded.
type Progress struct {
	Phase       string `json:"phase"` // "manifest", "download" or "verify"
	LoadedBytes int64  `json:"loadedBytes"`
	TotalBytes  int64  `json:"totalBytes"`
	LoadedFiles int    `json:"loadedFiles"`
	TotalFiles  int    `json:"totalFiles"`
	CachedFiles int    `json:"cachedFiles"`
	CachedBytes int64  `json:"cachedBytes"`
}

// The load phases.
const (
	PhaseManifest = "manifest"
	PhaseDownload = "download"
	PhaseVerify   = "verify"
)

// The Cache values of LoadResult.
const (
	CacheStored      = "stored"         // every shard is in the persistent cache
	CacheQuota       = "quota-exceeded" // storage refused some shards; they were used from memory
	CacheError       = "error"          // the cache failed otherwise (see CacheError)
	CacheUnavailable = "unavailable"    // no persistent cache in this context
)

// LoadResult describes a loaded bundle.
type LoadResult struct {
	Config      clip.Config `json:"config"`
	Quant       string      `json:"quant"`
	Backend     string      `json:"backend"`
	Files       int         `json:"files"`
	Bytes       int64       `json:"bytes"`
	CachedFiles int         `json:"cachedFiles"`
	CachedBytes int64       `json:"cachedBytes"`
	// Downloaded counts the shard bytes fetched over the network, Resumed
	// the downloads continued with a Range request after a broken
	// connection.
	Downloaded int64  `json:"downloaded"`
	Resumed    int    `json:"resumed"`
	Cache      string `json:"cache"`
	CacheError string `json:"cacheError,omitempty"`
}

// Embeddings are N rows of Dim values: the projected embeddings as CLIP's
// encode_image and encode_text return them, not normalised.
//
// Data does not go through JSON: the host sends it as a Float32Array.
type Embeddings struct {
	Dim  int       `json:"dim"`
	Data []float32 `json:"-"`
}

// Classification holds, per image, the labels ranked by probability.
type Classification struct {
	Results [][]clip.Prediction `json:"results"`
}

// CancelResult answers a cancel request: whether the target was running.
type CancelResult struct {
	Cancelled bool `json:"cancelled"`
}

// Stats are the engine's memory figures. Go's wasm heap lives in the
// instance's linear memory, which grows and never shrinks: Sys is about
// its size.
type Stats struct {
	HeapBytes uint64 `json:"heapBytes"` // live and not yet collected heap objects
	SysBytes  uint64 `json:"sysBytes"`  // memory obtained from the host
	NumGC     uint32 `json:"numGC"`
}

// Error codes, so that the page can react without parsing messages.
const (
	CodeProtocol   = "protocol"    // a malformed request or unknown op
	CodeBadRequest = "bad-request" // arguments the engine refuses
	CodeNotLoaded  = "not-loaded"  // an engine call before a load
	CodeNetwork    = "network"     // a download failed
	CodeManifest   = "manifest"    // the manifest is missing or invalid
	CodeIntegrity  = "integrity"   // a shard failed its size or SHA-256 check
	CodeQuota      = "quota"       // storage quota exceeded
	CodeCancelled  = "cancelled"   // cancelled by the page
	CodeInternal   = "internal"    // anything else
)

// Error is an error with a code, as it crosses to the page. Shard names the
// shard file a load error is about.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Shard   string `json:"shard,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// errorf makes an *Error.
func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError turns any error into an *Error, classifying context cancellation.
func AsError(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, errCancelled):
		return &Error{Code: CodeCancelled, Message: "cancelled"}
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}
