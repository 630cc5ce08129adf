package worker

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/imageproc"
	"github.com/clipwasm/clipwasm/kernels"
)

// textChunk is how many prompts go through the text tower per call: small
// enough that a cancel waits for little work and activations stay a few MB,
// large enough that the GEMMs stay efficient.
const textChunk = 16

// Engine runs a loaded model.
type Engine struct {
	model *clip.Model
	tok   clip.Tokenizer
	// yield lets the host run between units of work; in the browser that
	// is when the worker's event loop delivers a cancel message.
	yield func()
}

// NewEngine builds the model from weights on backend.
func NewEngine(cfg clip.Config, w clip.Weights, tok clip.Tokenizer, b kernels.Backend, yield func()) (*Engine, error) {
	m, err := clip.Build(cfg, w, b)
	if err != nil {
		return nil, err
	}
	return &Engine{model: m, tok: tok, yield: yield}, nil
}

// step checks for cancellation after letting the host run.
func (e *Engine) step(ctx context.Context) error {
	if e.yield != nil {
		e.yield()
	}
	if ctx.Err() != nil {
		return errCancelled
	}
	return nil
}

// preprocess turns one image into the model's input tensor.
func (e *Engine) preprocess(img Image) ([]float32, error) {
	var (
		m   *imageproc.Image
		err error
	)
	switch {
	case img.Encoded != nil:
		m, err = imageproc.Decode(bytes.NewReader(img.Encoded))
	default:
		m, err = imageproc.FromRGBA(img.RGBA, img.Width, img.Height, 4*img.Width)
	}
	if err != nil {
		return nil, errorf(CodeBadRequest, "%v", err)
	}
	c := &e.model.Config
	return imageproc.Preprocess(m, imageproc.Options{Size: c.ImageResolution, Mean: c.Mean, Std: c.Std})
}

// EmbedImages returns the image embeddings [len(imgs), EmbedDim], one image
// per pass so that a cancel takes effect between images.
func (e *Engine) EmbedImages(ctx context.Context, imgs []Image) (*Embeddings, error) {
	if len(imgs) == 0 {
		return nil, errorf(CodeBadRequest, "no images")
	}
	return e.embedEach(ctx, len(imgs), func(i int) ([]float32, error) {
		t, err := e.preprocess(imgs[i])
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		return t, nil
	})
}

// EmbedPixels returns the embeddings of images already preprocessed into
// the model's input tensor [n,3,R,R], one image per pass.
func (e *Engine) EmbedPixels(ctx context.Context, pixels []float32) (*Embeddings, error) {
	r := e.model.Config.ImageResolution
	size := 3 * r * r
	if len(pixels) == 0 || len(pixels)%size != 0 {
		return nil, errorf(CodeBadRequest, "%d pixel values are not a whole number of 3×%d×%d images", len(pixels), r, r)
	}
	return e.embedEach(ctx, len(pixels)/size, func(i int) ([]float32, error) {
		return pixels[i*size : (i+1)*size], nil
	})
}

// embedEach encodes n images, the input of image i from input, checking for
// a cancel before each.
func (e *Engine) embedEach(ctx context.Context, n int, input func(i int) ([]float32, error)) (*Embeddings, error) {
	d := e.model.Config.EmbedDim
	out := &Embeddings{Dim: d, Data: make([]float32, 0, n*d)}
	for i := range n {
		if err := e.step(ctx); err != nil {
			return nil, err
		}
		t, err := input(i)
		if err != nil {
			return nil, err
		}
		emb, err := e.model.EncodeImage(t, 1)
		if err != nil {
			return nil, err
		}
		out.Data = append(out.Data, emb...)
	}
	return out, nil
}

// EmbedTexts returns the text embeddings [len(texts), EmbedDim].
func (e *Engine) EmbedTexts(ctx context.Context, texts []string) (*Embeddings, error) {
	if len(texts) == 0 {
		return nil, errorf(CodeBadRequest, "no texts")
	}
	rows := make([][]int, len(texts))
	for i, t := range texts {
		rows[i] = e.tok.Tokenize(t, e.model.Config.ContextLength)
	}
	return e.embedRows(ctx, rows)
}

// EmbedTokens returns the text embeddings of token rows [n,ContextLength]
// as clip.tokenize makes them.
func (e *Engine) EmbedTokens(ctx context.Context, tokens []int32) (*Embeddings, error) {
	c := &e.model.Config
	if len(tokens) == 0 || len(tokens)%c.ContextLength != 0 {
		return nil, errorf(CodeBadRequest, "%d token ids are not a whole number of rows of %d", len(tokens), c.ContextLength)
	}
	rows := make([][]int, len(tokens)/c.ContextLength)
	for i := range rows {
		rows[i] = make([]int, c.ContextLength)
		for j := range rows[i] {
			id := tokens[i*c.ContextLength+j]
			if id < 0 || int(id) >= c.VocabSize {
				return nil, errorf(CodeBadRequest, "token row %d position %d: id %d outside the vocabulary [0, %d)", i, j, id, c.VocabSize)
			}
			rows[i][j] = int(id)
		}
	}
	return e.embedRows(ctx, rows)
}

// embedRows encodes token rows textChunk at a time, checking for a cancel
// before each chunk. Chunks follow the model's length order, so each holds
// rows of similar length and runs only as far as its longest; embeddings
// go back to the rows' own order.
func (e *Engine) embedRows(ctx context.Context, rows [][]int) (*Embeddings, error) {
	d := e.model.Config.EmbedDim
	order, err := e.model.TextLengthOrder(rows)
	if err != nil {
		return nil, err
	}
	out := &Embeddings{Dim: d, Data: make([]float32, len(rows)*d)}
	chunk := make([][]int, 0, textChunk)
	for idx := range slices.Chunk(order, textChunk) {
		if err := e.step(ctx); err != nil {
			return nil, err
		}
		chunk = chunk[:0]
		for _, r := range idx {
			chunk = append(chunk, rows[r])
		}
		emb, err := e.model.EncodeText(chunk)
		if err != nil {
			return nil, err
		}
		for i, r := range idx {
			copy(out.Data[r*d:(r+1)*d], emb[i*d:(i+1)*d])
		}
	}
	return out, nil
}

// Templates resolves a classify request's template choice: an ensemble by
// name, the given templates, or clip.DefaultTemplate.
func Templates(ensemble string, templates []string) ([]string, error) {
	if ensemble != "" {
		if len(templates) > 0 {
			return nil, errorf(CodeBadRequest, "give templates or an ensemble, not both")
		}
		t, ok := clip.Ensembles[ensemble]
		if !ok {
			return nil, errorf(CodeBadRequest, "unknown ensemble %q (have %s)", ensemble, strings.Join(EnsembleNames(), ", "))
		}
		return t, nil
	}
	for _, t := range templates {
		if !strings.Contains(t, "{}") {
			return nil, errorf(CodeBadRequest, "template %q has no {} for the label", t)
		}
	}
	if len(templates) == 0 {
		return []string{clip.DefaultTemplate}, nil
	}
	return templates, nil
}

// EnsembleNames lists clip.Ensembles, sorted.
func EnsembleNames() []string {
	names := make([]string, 0, len(clip.Ensembles))
	for n := range clip.Ensembles {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Classify ranks labels for each image, keeping topK per image (all if 0).
// templates come from Templates.
func (e *Engine) Classify(ctx context.Context, imgs []Image, labels, templates []string, topK int) (*Classification, error) {
	if len(imgs) == 0 || len(labels) == 0 || len(templates) == 0 {
		return nil, errorf(CodeBadRequest, "classify needs images, labels and templates")
	}
	for _, l := range labels {
		if strings.TrimSpace(l) == "" {
			return nil, errorf(CodeBadRequest, "empty label")
		}
	}
	// The model caches label embeddings per template set, so building
	// classifiers over chunks of labels fills that cache piecewise, and
	// the final classifier over all labels encodes nothing. That keeps
	// each text batch small and lets a cancel through between chunks.
	perChunk := max(1, textChunk/len(templates))
	for chunk := range slices.Chunk(labels, perChunk) {
		if err := e.step(ctx); err != nil {
			return nil, err
		}
		if _, err := e.model.NewClassifier(e.tok, chunk, templates); err != nil {
			return nil, err
		}
	}
	cls, err := e.model.NewClassifier(e.tok, labels, templates)
	if err != nil {
		return nil, err
	}
	emb, err := e.EmbedImages(ctx, imgs)
	if err != nil {
		return nil, err
	}
	return &Classification{Results: cls.Classify(emb.Data, topK)}, nil
}
