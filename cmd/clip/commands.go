package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/convert"
	"github.com/clipwasm/clipwasm/imageproc"
	"github.com/clipwasm/clipwasm/internal/npy"
	"github.com/clipwasm/clipwasm/kernels/native"
	"github.com/clipwasm/clipwasm/tokenizer"
)

// imageBatch bounds how many images are encoded at once, which bounds the
// activation memory of a long file list.
const imageBatch = 16

// vocabCandidates lists where a vocabulary is looked for, in order: the
// flag, $CLIPWASM_VOCAB, beside the model (a Hugging Face folder's
// vocab.json + merges.txt, or OpenAI's merges file), then the shared
// reference copy relative to the working directory and to the executable.
func vocabCandidates(flag, model string) []string {
	if flag != "" {
		return []string{flag}
	}
	if env := os.Getenv("CLIPWASM_VOCAB"); env != "" {
		return []string{env}
	}
	const openai = "bpe_simple_vocab_16e6.txt.gz"
	var c []string
	if model != "" {
		dir := model
		if st, err := os.Stat(model); err == nil && !st.IsDir() {
			dir = filepath.Dir(model)
		}
		c = append(c, filepath.Join(dir, "vocab.json"), filepath.Join(dir, openai))
	}
	c = append(c, filepath.Join("..", "shared", "reference", openai))
	if exe, err := os.Executable(); err == nil {
		c = append(c, filepath.Join(filepath.Dir(exe), "..", "..", "shared", "reference", openai))
	}
	return c
}

// loadTokenizer loads the first vocabulary candidate that exists; one that
// exists but does not parse is an error, not a reason to look further.
func loadTokenizer(a *args, model string) (*tokenizer.Tokenizer, error) {
	cands := vocabCandidates(a.str("vocab", ""), model)
	for _, p := range cands {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if filepath.Base(p) == "vocab.json" {
			p = filepath.Dir(p) // tokenizer.Load takes the folder with vocab.json + merges.txt
		}
		tok, err := tokenizer.Load(p)
		if err != nil {
			return nil, fmt.Errorf("vocabulary %s: %w", p, err)
		}
		return tok, nil
	}
	return nil, fmt.Errorf("no BPE vocabulary found (looked for %s); pass --vocab PATH or set CLIPWASM_VOCAB", strings.Join(cands, ", "))
}

func loadModel(a *args) (*clip.Model, error) {
	path := a.str("model", "")
	if path == "" {
		return nil, fmt.Errorf("--model is required: %w", errUsage)
	}
	threads, err := a.int("threads", 0)
	if err != nil {
		return nil, err
	}
	b, err := native.New(threads)
	if err != nil {
		return nil, err
	}
	return convert.Load(path, b)
}

// tokenRow is the clip.tokenize row without its zero padding.
func tokenRow(tok *tokenizer.Tokenizer, text string, context int) []int {
	row := tok.Tokenize(text, context)
	n := min(len(tok.Encode(text))+2, context)
	return row[:n]
}

func cmdTokenize(argv []string, stdout io.Writer) error {
	a, err := parseArgs(argv, []string{"vocab"}, nil, nil)
	if err != nil {
		return fmt.Errorf("tokenize: %v: %w", err, errUsage)
	}
	if len(a.positional) == 0 {
		return fmt.Errorf("tokenize: no text given: %w", errUsage)
	}
	tok, err := loadTokenizer(a, "")
	if err != nil {
		return fmt.Errorf("tokenize: %w", err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	for _, text := range a.positional {
		if err := enc.Encode(struct {
			Text string `json:"text"`
			IDs  []int  `json:"ids"`
		}{text, tokenRow(tok, text, tokenizer.ContextLength)}); err != nil {
			return err
		}
	}
	return nil
}

func cmdPreprocess(argv []string, _ io.Writer) error {
	a, err := parseArgs(argv, []string{"size", "out", "model"}, nil, nil)
	if err != nil {
		return fmt.Errorf("preprocess: %v: %w", err, errUsage)
	}
	size, err := a.int("size", 224)
	if err != nil {
		return fmt.Errorf("preprocess: %w", err)
	}
	out := a.str("out", "")
	if out == "" || len(a.positional) == 0 || size <= 0 {
		return fmt.Errorf("preprocess: need --out, a positive --size and at least one image: %w", errUsage)
	}
	opts := imageproc.Options{Size: size, Mean: imageproc.OpenAIMean, Std: imageproc.OpenAIStd}
	var data []float32
	for _, path := range a.positional {
		x, err := imageproc.PreprocessFile(path, opts)
		if err != nil {
			return fmt.Errorf("preprocess: %w", err)
		}
		data = append(data, x...)
	}
	return npy.WriteFile(out, []int{len(a.positional), 3, size, size}, data)
}

// encodeImageFiles preprocesses and encodes image files in batches.
func encodeImageFiles(m *clip.Model, paths []string) ([]float32, error) {
	c := m.Config
	opts := imageproc.Options{Size: c.ImageResolution, Mean: c.Mean, Std: c.Std}
	var out []float32
	for start := 0; start < len(paths); start += imageBatch {
		batch := paths[start:min(start+imageBatch, len(paths))]
		var pixels []float32
		for _, p := range batch {
			x, err := imageproc.PreprocessFile(p, opts)
			if err != nil {
				return nil, err
			}
			pixels = append(pixels, x...)
		}
		emb, err := m.EncodeImage(pixels, len(batch))
		if err != nil {
			return nil, err
		}
		out = append(out, emb...)
	}
	return out, nil
}

func cmdEmbed(argv []string, _ io.Writer) error {
	a, err := parseArgs(argv, []string{"model", "images-npy", "tokens-npy", "out", "threads", "vocab"}, []string{"image", "text"}, []string{"normalize"})
	if err != nil {
		return fmt.Errorf("embed: %v: %w", err, errUsage)
	}
	sources := 0
	for _, f := range []string{"images-npy", "tokens-npy", "image", "text"} {
		if a.has(f) {
			sources++
		}
	}
	out := a.str("out", "")
	if sources != 1 || out == "" || len(a.positional) > 0 {
		return fmt.Errorf("embed: need --out and exactly one of --images-npy, --tokens-npy, --image, --text: %w", errUsage)
	}
	m, err := loadModel(a)
	if err != nil {
		return fmt.Errorf("embed: %w", err)
	}
	var emb []float32
	switch {
	case a.has("images-npy"):
		emb, err = embedImagesNpy(m, a.str("images-npy", ""))
	case a.has("tokens-npy"):
		emb, err = embedTokensNpy(m, a.str("tokens-npy", ""))
	case a.has("image"):
		emb, err = encodeImageFiles(m, a.list("image"))
	case a.has("text"):
		var tok *tokenizer.Tokenizer
		tok, err = loadTokenizer(a, a.str("model", ""))
		if err == nil {
			rows := make([][]int, len(a.list("text")))
			for i, t := range a.list("text") {
				rows[i] = tok.Tokenize(t, m.Config.ContextLength)
			}
			emb, err = m.EncodeText(rows)
		}
	}
	if err != nil {
		return fmt.Errorf("embed: %w", err)
	}
	e := m.Config.EmbedDim
	if a.has("normalize") {
		clip.Normalize(emb, e)
	}
	return npy.WriteFile(out, []int{len(emb) / e, e}, emb)
}

func embedImagesNpy(m *clip.Model, path string) ([]float32, error) {
	arr, err := npy.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := m.Config.ImageResolution
	if arr.F32 == nil || len(arr.Shape) != 4 || arr.Shape[1] != 3 || arr.Shape[2] != r || arr.Shape[3] != r {
		return nil, fmt.Errorf("%s: want float32 [n,3,%d,%d], got %s %v", path, r, r, arr.DType, arr.Shape)
	}
	var out []float32
	per := 3 * r * r
	for start := 0; start < arr.Shape[0]; start += imageBatch {
		n := min(imageBatch, arr.Shape[0]-start)
		emb, err := m.EncodeImage(arr.F32[start*per:(start+n)*per], n)
		if err != nil {
			return nil, err
		}
		out = append(out, emb...)
	}
	return out, nil
}

func embedTokensNpy(m *clip.Model, path string) ([]float32, error) {
	arr, err := npy.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rows, err := arr.TokenRows()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m.EncodeText(rows)
}

func cmdClassify(argv []string, stdout io.Writer) error {
	a, err := parseArgs(argv, []string{"model", "labels", "template", "template-file", "ensemble", "top", "threads", "vocab"}, nil, []string{"json"})
	if err != nil {
		return fmt.Errorf("classify: %v: %w", err, errUsage)
	}
	var labels []string
	for _, l := range strings.Split(a.str("labels", ""), ",") {
		if l = strings.TrimSpace(l); l != "" {
			labels = append(labels, l)
		}
	}
	if len(labels) == 0 || len(a.positional) == 0 {
		return fmt.Errorf("classify: need --labels and at least one image: %w", errUsage)
	}
	top, err := a.int("top", 5)
	if err != nil {
		return fmt.Errorf("classify: %w", err)
	}
	templates := a.list("template")
	for _, f := range a.list("template-file") {
		t, err := clip.LoadTemplates(f)
		if err != nil {
			return fmt.Errorf("classify: %w", err)
		}
		templates = append(templates, t...)
	}
	for _, name := range a.list("ensemble") {
		t, ok := clip.Ensembles[name]
		if !ok {
			return fmt.Errorf("classify: unknown ensemble %q (known: imagenet)", name)
		}
		templates = append(templates, t...)
	}
	for _, t := range templates {
		if !strings.Contains(t, "{}") {
			return fmt.Errorf("classify: template %q has no {} for the label", t)
		}
	}

	m, err := loadModel(a)
	if err != nil {
		return fmt.Errorf("classify: %w", err)
	}
	tok, err := loadTokenizer(a, a.str("model", ""))
	if err != nil {
		return fmt.Errorf("classify: %w", err)
	}
	cls, err := m.NewClassifier(tok, labels, templates)
	if err != nil {
		return fmt.Errorf("classify: %w", err)
	}
	emb, err := encodeImageFiles(m, a.positional)
	if err != nil {
		return fmt.Errorf("classify: %w", err)
	}
	results := cls.Classify(emb, top)
	if a.has("json") {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		for i, preds := range results {
			if err := enc.Encode(struct {
				Image       string            `json:"image"`
				Predictions []clip.Prediction `json:"predictions"`
			}{a.positional[i], preds}); err != nil {
				return err
			}
		}
		return nil
	}
	for i, preds := range results {
		fmt.Fprintln(stdout, a.positional[i])
		for _, p := range preds {
			fmt.Fprintf(stdout, "  %6.2f%%  %s\n", 100*p.Prob, p.Label)
		}
	}
	return nil
}
