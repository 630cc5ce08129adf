package clip

import (
	"fmt"
	"sync"

	"github.com/clipwasm/clipwasm/kernels"
)

// imageTower is a ViT or a ModifiedResNet.
type imageTower interface {
	encode(p *pass, images []float32, n int) []float32
}

// Model is a loaded CLIP model bound to a compute backend. Its methods are
// safe for concurrent use; calls run one at a time, since each already uses
// every thread the backend has.
type Model struct {
	Config Config
	// LogitScale is the stored (log) temperature: similarities are scaled by
	// exp(LogitScale) before the softmax.
	LogitScale float32
	// Trace, if set, receives intermediate activations of item 0 of each batch.
	Trace Tracer
	// OneTextBatch makes EncodeText run its rows as one batch instead of
	// in length groups: for callers that must see each matrix multiplied
	// once per call (a converter recording calibration inputs, or one
	// streaming the weights, which would read them again for every group).
	OneTextBatch bool

	mu      sync.Mutex
	backend kernels.Backend
	// scratch is reused by every forward pass (under mu): in the browser
	// each new buffer is garbage that brings the next collection closer,
	// and the heap is kept tight there (the wasm memory never shrinks).
	scratch scratch

	cacheMu    sync.Mutex
	classCache map[string][]float32 // label embeddings per template set
	image      imageTower
	text       *textTransformer
}

// Backend returns the backend the model runs on.
func (m *Model) Backend() kernels.Backend { return m.backend }

func (m *Model) pass() *pass {
	return &pass{b: m.backend, act: m.Config.Activation, eps: m.Config.LayerNormEps, trace: m.Trace, scratch: &m.scratch}
}

// EncodeImage maps n preprocessed images [n,3,R,R] (NCHW, normalised with
// Config.Mean and Std) to projected embeddings [n,EmbedDim], as OpenAI's
// encode_image returns them (not normalised).
func (m *Model) EncodeImage(images []float32, n int) ([]float32, error) {
	r := m.Config.ImageResolution
	if n <= 0 || len(images) != n*3*r*r {
		return nil, fmt.Errorf("clip: %d image values do not make %d images of 3×%d×%d", len(images), n, r, r)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.image.encode(m.pass(), images, n), nil
}

// TextLengthOrder returns the indices of token rows ordered by their
// length (the position each pools), stable: the order in which EncodeText
// groups them. A caller that feeds EncodeText a few rows at a time keeps
// rows of similar length together by following it.
func (m *Model) TextLengthOrder(tokens [][]int) ([]int, error) {
	pooled, err := m.text.pooledRows(tokens)
	if err != nil {
		return nil, err
	}
	return lengthOrder(pooled), nil
}

// EncodeText maps token rows (clip.tokenize rows; zero padding optional) to
// projected embeddings [len(tokens),EmbedDim], as encode_text returns them.
//
// Rows run in groups of similar length, each only up to its longest row
// (the causal mask makes later positions irrelevant to the pooled token):
// the same numbers as one batch, for much less work when lengths differ.
// With a Trace attached, or OneTextBatch set, the batch runs as one, so
// that traced intermediates keep the batch's layout.
func (m *Model) EncodeText(tokens [][]int) ([]float32, error) {
	if len(tokens) == 0 {
		return nil, fmt.Errorf("clip: no token rows to encode")
	}
	pooled, err := m.text.pooledRows(tokens)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pass()
	if m.Trace != nil || m.OneTextBatch {
		return m.text.encode(p, tokens, pooled), nil
	}
	e := m.Config.EmbedDim
	out := make([]float32, len(tokens)*e)
	for _, group := range lengthGroups(pooled) {
		rows, at := make([][]int, len(group)), make([]int, len(group))
		for i, r := range group {
			rows[i], at[i] = tokens[r], pooled[r]
		}
		emb := m.text.encode(p, rows, at)
		for i, r := range group {
			copy(out[r*e:(r+1)*e], emb[i*e:(i+1)*e])
		}
	}
	return out, nil
}
