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

	mu      sync.Mutex
	backend kernels.Backend

	cacheMu    sync.Mutex
	classCache map[string][]float32 // label embeddings per template set
	image      imageTower
	text       *textTransformer
}

// Backend returns the backend the model runs on.
func (m *Model) Backend() kernels.Backend { return m.backend }

func (m *Model) pass() *pass {
	return &pass{b: m.backend, act: m.Config.Activation, eps: m.Config.LayerNormEps, trace: m.Trace}
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

// EncodeText maps token rows (clip.tokenize rows; zero padding optional) to
// projected embeddings [len(tokens),EmbedDim], as encode_text returns them.
func (m *Model) EncodeText(tokens [][]int) ([]float32, error) {
	if len(tokens) == 0 {
		return nil, fmt.Errorf("clip: no token rows to encode")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.text.encode(m.pass(), tokens)
}
