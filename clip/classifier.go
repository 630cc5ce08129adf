package clip

import (
	"fmt"
	"strings"
)

// Tokenizer turns text into a clip.tokenize row of the given length.
// *tokenizer.Tokenizer implements it.
type Tokenizer interface {
	Tokenize(text string, contextLength int) []int
}

// Classifier is a zero-shot head: one unit-norm embedding per label, the
// mean of its prompts' normalised text embeddings, re-normalised (the
// ensembling of the CLIP paper).
type Classifier struct {
	Labels    []string
	Templates []string
	model     *Model
	weights   []float32 // [len(Labels), EmbedDim], unit rows
}

// classCacheKey names one label's embedding under one template set.
func classCacheKey(label string, templates []string) string {
	return strings.Join(templates, "\x1e") + "\x1f" + label
}

// NewClassifier embeds every label under the templates (DefaultTemplate if
// none). Label embeddings are cached in the model per template set, so a
// classifier over labels seen before costs no text encoding.
func (m *Model) NewClassifier(tok Tokenizer, labels, templates []string) (*Classifier, error) {
	if len(labels) == 0 {
		return nil, fmt.Errorf("clip: no labels to classify into")
	}
	if len(templates) == 0 {
		templates = []string{DefaultTemplate}
	}
	for _, l := range labels {
		if strings.TrimSpace(l) == "" {
			return nil, fmt.Errorf("clip: empty label in %q", labels)
		}
	}
	e := m.Config.EmbedDim
	c := &Classifier{Labels: labels, Templates: templates, model: m, weights: make([]float32, len(labels)*e)}

	var missing []string
	m.cacheMu.Lock()
	for i, l := range labels {
		if w, ok := m.classCache[classCacheKey(l, templates)]; ok {
			copy(c.weights[i*e:], w)
		} else {
			missing = append(missing, l)
		}
	}
	m.cacheMu.Unlock()
	if len(missing) == 0 {
		return c, nil
	}

	var rows [][]int
	for _, l := range missing {
		for _, p := range Prompts(l, templates) {
			rows = append(rows, tok.Tokenize(p, m.Config.ContextLength))
		}
	}
	emb, err := m.EncodeText(rows)
	if err != nil {
		return nil, err
	}
	Normalize(emb, e)
	fresh := map[string][]float32{}
	for j, l := range missing {
		w := make([]float32, e)
		for t := range templates {
			row := emb[(j*len(templates)+t)*e:]
			for k := range w {
				w[k] += row[k]
			}
		}
		Normalize(w, e)
		fresh[l] = w
	}
	m.cacheMu.Lock()
	if m.classCache == nil {
		m.classCache = map[string][]float32{}
	}
	for l, w := range fresh {
		m.classCache[classCacheKey(l, templates)] = w
	}
	m.cacheMu.Unlock()
	for i, l := range labels {
		if w, ok := fresh[l]; ok {
			copy(c.weights[i*e:], w)
		}
	}
	return c, nil
}

// Classify ranks the labels for each image embedding of images [n,
// EmbedDim] (as EncodeImage returns them), keeping the top k per image (all
// if k <= 0).
func (c *Classifier) Classify(images []float32, k int) [][]Prediction {
	e := c.model.Config.EmbedDim
	logits := Logits(images, c.weights, e, c.model.LogitScale)
	n, l := len(images)/e, len(c.Labels)
	out := make([][]Prediction, n)
	for i := range out {
		out[i] = Rank(c.Labels, logits[i*l:(i+1)*l], k)
	}
	return out
}

// Embeddings returns the label embeddings [len(Labels), EmbedDim], one unit
// row per label. The slice is the classifier's own: do not modify it.
func (c *Classifier) Embeddings() []float32 { return c.weights }
