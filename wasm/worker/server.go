package worker

import (
	"context"
	"runtime"
	"sync"

	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/shards"
)

// Server answers requests: it runs each in its own goroutine, tracks the
// running ones for cancellation, and holds the loaded engine.
type Server struct {
	// SetMemoryLimit, if set, receives a bound for the heap in bytes (see
	// runtime/debug.SetMemoryLimit) whenever the model changes.
	SetMemoryLimit func(int64)

	send    func(Event)
	loader  func(onProgress func(Progress)) *Loader
	backend kernels.Backend
	yield   func()

	mu      sync.Mutex
	engine  *Engine
	running map[int]context.CancelFunc
}

// memoryHeadroom is the room the Go runtime may take beyond what it holds
// once a model is loaded: for activations (up to about 20 MB for a text
// chunk of 77-token prompts at ViT-B widths) and garbage between
// collections, besides the free heap the load left behind. Activations
// beyond it are no error: the limit is soft, and the heap grows.
const memoryHeadroom = 8 << 20

// loadHeadroom is the room while a model loads. The download's garbage
// (the fetch glue copies each chunk of a response into a new slice, as
// much again as the shards) is collected whenever it fills this: the
// collections are cheap (shard bytes hold no pointers), and every MB of
// room would stay in the wasm memory for good.
const loadHeadroom = 8 << 20

// limitMemory bounds the Go runtime's memory to what it holds now (after
// a collection), plus incoming bytes of a model being loaded, plus
// headroom. In the browser the heap lives in wasm memory, which never
// shrinks, so GOGC's default of letting the heap double would keep room
// for a second model for good. The limit is on all the runtime's memory,
// free spans and metadata included, not only on live objects: a limit of
// live heap + 16 MB left ViT-B/32 about 2 MB for garbage, and a
// collection every 1.4 images. The runtime counts Sys − HeapReleased
// against it; the base here is Sys, because pages the scavenger
// "releases" stay in the wasm memory (which cannot give them back) and
// reusing them costs nothing: so the memory grows by at most headroom
// (plus incoming).
func (s *Server) limitMemory(incoming, headroom int64) {
	if s.SetMemoryLimit == nil {
		return
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.SetMemoryLimit(int64(ms.Sys) + incoming + headroom)
}

// NewServer returns a server that posts events with send, loads bundles
// with the loaders newLoader makes (one per load, reporting to its
// onProgress), runs models on backend and calls yield between units of
// work (see Engine).
func NewServer(send func(Event), newLoader func(onProgress func(Progress)) *Loader, backend kernels.Backend, yield func()) *Server {
	return &Server{send: send, loader: newLoader, backend: backend, yield: yield, running: map[int]context.CancelFunc{}}
}

// Handle starts answering req and returns at once: it is called from the
// host's message handler, which must not block.
func (s *Server) Handle(req Request) {
	if req.V != ProtocolVersion {
		s.fail(req.ID, errorf(CodeProtocol, "protocol version %d, this worker speaks %d", req.V, ProtocolVersion))
		return
	}
	if req.Op == OpCancel {
		s.mu.Lock()
		cancel, ok := s.running[req.Target]
		s.mu.Unlock()
		if ok {
			cancel()
		}
		s.send(Event{ID: req.ID, Type: EventResult, Result: &CancelResult{Cancelled: ok}})
		return
	}
	s.mu.Lock()
	if _, dup := s.running[req.ID]; dup {
		s.mu.Unlock()
		s.fail(req.ID, errorf(CodeProtocol, "request id %d is already running", req.ID))
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.running[req.ID] = cancel
	s.mu.Unlock()
	go func() {
		defer func() {
			s.mu.Lock()
			delete(s.running, req.ID)
			s.mu.Unlock()
			cancel()
		}()
		res, err := s.run(ctx, req)
		if err != nil {
			s.fail(req.ID, err)
			return
		}
		s.send(Event{ID: req.ID, Type: EventResult, Result: res})
	}()
}

func (s *Server) fail(id int, err error) {
	s.send(Event{ID: id, Type: EventError, Error: AsError(err)})
}

func (s *Server) run(ctx context.Context, req Request) (any, error) {
	switch req.Op {
	case OpLoad:
		return s.load(ctx, req)
	case OpStats:
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return &Stats{HeapBytes: ms.HeapAlloc, SysBytes: ms.Sys, NumGC: ms.NumGC}, nil
	}
	s.mu.Lock()
	e := s.engine
	s.mu.Unlock()
	if e == nil && (req.Op == OpEmbedImage || req.Op == OpEmbedText || req.Op == OpClassify) {
		return nil, errorf(CodeNotLoaded, "%s before a model was loaded", req.Op)
	}
	switch req.Op {
	case OpEmbedImage:
		if req.Pixels != nil {
			if req.Images != nil {
				return nil, errorf(CodeBadRequest, "give images or pixels, not both")
			}
			return e.EmbedPixels(ctx, req.Pixels)
		}
		return e.EmbedImages(ctx, req.Images)
	case OpEmbedText:
		if req.Tokens != nil {
			if req.Texts != nil {
				return nil, errorf(CodeBadRequest, "give texts or tokens, not both")
			}
			return e.EmbedTokens(ctx, req.Tokens)
		}
		return e.EmbedTexts(ctx, req.Texts)
	case OpClassify:
		templates, err := Templates(req.Ensemble, req.Templates)
		if err != nil {
			return nil, err
		}
		return e.Classify(ctx, req.Images, req.Labels, templates, req.TopK)
	}
	return nil, errorf(CodeProtocol, "unknown op %q", req.Op)
}

// load fetches a bundle and makes it the engine that later requests use.
func (s *Server) load(ctx context.Context, req Request) (*LoadResult, error) {
	l := s.loader(func(p Progress) {
		s.send(Event{ID: req.ID, Type: EventProgress, Progress: &p})
	})
	// While loading, the old model and the new one are both alive. Should
	// the new one take more than its shard bytes (tensors decoded rather
	// than aliased), the limit is soft: the heap grows as it must.
	l.OnManifest = func(m *shards.Manifest) { s.limitMemory(m.TotalSize(), loadHeadroom) }
	defer s.limitMemory(0, memoryHeadroom)
	b, res, err := l.Load(ctx, req.URL)
	if err != nil {
		return nil, err
	}
	e, err := NewEngine(b.Config, b, b.Tokenizer(), s.backend, s.yield)
	if err != nil {
		return nil, errorf(CodeManifest, "%v", err)
	}
	if ctx.Err() != nil {
		return nil, errCancelled
	}
	s.mu.Lock()
	s.engine = e
	s.mu.Unlock()
	res.Backend = s.backend.Name()
	return res, nil
}
