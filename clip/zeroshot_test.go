package clip_test

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/convert"

	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/kernels/purego"
)

func TestSoftmaxAndRank(t *testing.T) {
	p := clip.Softmax([]float32{1000, 1000, -1000})
	if math.Abs(float64(p[0])-0.5) > 1e-6 || p[2] != 0 {
		t.Errorf("softmax of large logits = %v, want [0.5 0.5 0]", p)
	}
	preds := clip.Rank([]string{"a", "b", "c"}, []float32{0, 2, 1}, 2)
	if len(preds) != 2 || preds[0].Label != "b" || preds[1].Label != "c" {
		t.Errorf("Rank top-2 = %+v, want b then c", preds)
	}
	var sum float32
	for _, q := range clip.Rank([]string{"a", "b", "c"}, []float32{0, 2, 1}, 0) {
		sum += q.Prob
	}
	if math.Abs(float64(sum)-1) > 1e-6 {
		t.Errorf("probabilities sum to %v", sum)
	}
}

func TestPrompts(t *testing.T) {
	got := clip.Prompts("tench", []string{"a photo of a {}.", "itap of a {}.", "{} and {}"})
	want := []string{"a photo of a tench.", "itap of a tench.", "tench and tench"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLoadTemplates(t *testing.T) {
	fixtures.Require(t)
	md := filepath.Join(fixtures.SharedDir(), "reference", "prompts.md")
	cifar, err := clip.LoadTemplates(md + "#CIFAR10")
	if err != nil {
		t.Fatal(err)
	}
	if len(cifar) != 18 || cifar[0] != "a photo of a {}." {
		t.Errorf("CIFAR10: %d templates starting %q, want 18 starting %q", len(cifar), cifar[0], "a photo of a {}.")
	}
	all, err := clip.LoadTemplates(md)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) <= len(cifar) {
		t.Errorf("the whole file gave %d templates, fewer than CIFAR10 alone", len(all))
	}
	for _, tmpl := range all {
		if !strings.Contains(tmpl, "{}") {
			t.Errorf("template without {}: %q", tmpl)
		}
	}

	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain, err := clip.LoadTemplates(write("plain.txt", "# mine\na photo of a {}.\n\n  a sketch of a {}.  \n"))
	if err != nil || !slices.Equal(plain, []string{"a photo of a {}.", "a sketch of a {}."}) {
		t.Errorf("plain file: %q, %v", plain, err)
	}
	for name, spec := range map[string]string{
		"missing file":     filepath.Join(dir, "nope.txt"),
		"no placeholder":   write("bad.txt", "a photo\n"),
		"empty":            write("empty.txt", "\n# only a comment\n"),
		"unknown section":  md + "#NoSuchDataset",
		"section of plain": write("p2.txt", "a {}\n") + "#X",
	} {
		if _, err := clip.LoadTemplates(spec); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// fixtureTokenizer maps the fixture prompts to their golden token rows, so
// the classifier test does not depend on the tokenizer package.
type fixtureTokenizer map[string][]int

func (f fixtureTokenizer) Tokenize(text string, _ int) []int { return f[text] }

// TestClassifier checks the zero-shot head against the golden logits: with
// one template "{}" each label's embedding is its prompt's normalised text
// embedding, so probabilities equal the golden softmax over prompts.
func TestClassifier(t *testing.T) {
	fixtures.Require(t)
	m, err := convert.Load(fixtures.Path("openai", "vit_tiny", "vit_tiny.state_dict.pt"), purego.New(0))
	if err != nil {
		t.Fatal(err)
	}
	tokens := rowsOf(fixtures.LoadNpy(t, "openai", "vit_tiny", "tokens.npy"))
	prompts := []string{"a photo of a cat.", "a photo of a shanghai dumpling, a type of food.", "小笼包", "a photo of a purple steamed bun."}
	tok := fixtureTokenizer{}
	for i, p := range prompts {
		tok[p] = tokens[i]
	}
	cls, err := m.NewClassifier(tok, prompts, []string{"{}"})
	if err != nil {
		t.Fatal(err)
	}
	images := fixtures.LoadNpy(t, "openai", "vit_tiny", "images.npy")
	img, err := m.EncodeImage(images.F32, images.Shape[0])
	if err != nil {
		t.Fatal(err)
	}
	logits := fixtures.LoadNpy(t, "openai", "vit_tiny", "logits_per_image.npy")
	nt := logits.Shape[1]
	for i, preds := range cls.Classify(img, 0) {
		want := clip.Softmax(logits.F32[i*nt : i*nt+len(prompts)])
		for _, p := range preds {
			j := slices.Index(prompts, p.Label)
			if math.Abs(float64(p.Prob-want[j])) > 1e-4 {
				t.Errorf("image %d %q: prob %v, want %v", i, p.Label, p.Prob, want[j])
			}
		}
		for k := 1; k < len(preds); k++ {
			if preds[k].Prob > preds[k-1].Prob {
				t.Errorf("image %d: predictions not sorted: %+v", i, preds)
			}
		}
	}

	// A second classifier over known labels is served from the cache: a
	// tokenizer that knows nothing must not be consulted.
	if _, err := m.NewClassifier(fixtureTokenizer{}, prompts[:2], []string{"{}"}); err != nil {
		t.Errorf("cached labels: %v", err)
	}
	if _, err := m.NewClassifier(tok, nil, nil); err == nil {
		t.Error("no labels: no error")
	}
	if _, err := m.NewClassifier(tok, []string{" "}, nil); err == nil {
		t.Error("blank label: no error")
	}
}

// TestEnsembleAveraging checks that a label's embedding under several
// templates is the re-normalised mean of the normalised prompt embeddings.
func TestEnsembleAveraging(t *testing.T) {
	fixtures.Require(t)
	m, err := convert.Load(fixtures.Path("openai", "vit_tiny", "vit_tiny.state_dict.pt"), purego.New(0))
	if err != nil {
		t.Fatal(err)
	}
	tokens := rowsOf(fixtures.LoadNpy(t, "openai", "vit_tiny", "tokens.npy"))
	feats := fixtures.LoadNpy(t, "openai", "vit_tiny", "text_features.npy").F32
	e := m.Config.EmbedDim
	// Templates "{}" and "{}!" applied to "x": map the two prompts to fixture rows 0 and 3.
	tok := fixtureTokenizer{"x": tokens[0], "x!": tokens[3]}
	cls, err := m.NewClassifier(tok, []string{"x"}, []string{"{}", "{}!"})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, e)
	for _, row := range []int{0, 3} {
		v := append([]float32(nil), feats[row*e:(row+1)*e]...)
		clip.Normalize(v, e)
		for k := range want {
			want[k] += v[k]
		}
	}
	clip.Normalize(want, e)
	fixtures.AssertClose(t, "ensemble embedding", cls.Embeddings(), want, 1e-4)
}
