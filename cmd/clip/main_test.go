package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/internal/npy"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(args, &out)
	return out.String(), err
}

func TestTokenize(t *testing.T) {
	fixtures.Require(t)
	t.Setenv("CLIPWASM_VOCAB", fixtures.VocabPath())
	var goldens struct {
		Cases []struct {
			Text     string `json:"text"`
			Tokenize []int  `json:"tokenize"`
			NBPE     int    `json:"n_bpe"`
			Category string `json:"category"`
		} `json:"cases"`
	}
	raw, err := os.ReadFile(fixtures.Path("openai", "tokenizer_goldens.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &goldens); err != nil {
		t.Fatal(err)
	}
	var texts []string
	var want [][]int
	for _, c := range goldens.Cases {
		texts = append(texts, c.Text)
		want = append(want, c.Tokenize[:min(c.NBPE+2, 77)])
	}
	out, err := runCLI(t, append([]string{"tokenize", "--"}, texts...)...)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	i := 0
	for ; sc.Scan(); i++ {
		var got struct {
			Text string `json:"text"`
			IDs  []int  `json:"ids"`
		}
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if got.Text != texts[i] || !slices.Equal(got.IDs, want[i]) {
			t.Errorf("case %d %q: got %q %v, want ids %v", i, texts[i], got.Text, got.IDs, want[i])
		}
	}
	if i != len(texts) {
		t.Errorf("%d lines for %d texts", i, len(texts))
	}
}

func TestPreprocess(t *testing.T) {
	fixtures.Require(t)
	out := filepath.Join(t.TempDir(), "x.npy")
	imgs := []string{"rgba_333x500.png", "palette_200x150.gif", "lossless_160x120.webp"}
	var paths []string
	for _, im := range imgs {
		paths = append(paths, fixtures.Path("images", im))
	}
	if _, err := runCLI(t, append([]string{"preprocess", "--size", "64", "--out", out}, paths...)...); err != nil {
		t.Fatal(err)
	}
	got, err := npy.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Shape, []int{3, 3, 64, 64}) {
		t.Fatalf("shape %v", got.Shape)
	}
	for i, im := range imgs {
		stem := strings.TrimSuffix(im, filepath.Ext(im))
		want := fixtures.LoadNpy(t, "openai", "preprocess", stem+".n64.npy").F32
		if d, _ := fixtures.MaxAbsDiff(got.F32[i*3*64*64:(i+1)*3*64*64], want); d > 1e-6 {
			t.Errorf("%s: max |Δ| %g", im, d)
		}
	}
}

func TestEmbed(t *testing.T) {
	fixtures.Require(t)
	t.Setenv("CLIPWASM_VOCAB", fixtures.VocabPath())
	dir := t.TempDir()
	model := fixtures.Path("openai", "vit_tiny", "vit_tiny.jit.pt")
	imageFeats := fixtures.LoadNpy(t, "openai", "vit_tiny", "image_features.npy").F32
	textFeats := fixtures.LoadNpy(t, "openai", "vit_tiny", "text_features.npy").F32
	cases := []struct {
		name string
		args []string
		want []float32
		tol  float64
	}{
		{"images-npy", []string{"--images-npy", fixtures.Path("openai", "vit_tiny", "images.npy")}, imageFeats, 1e-4},
		{"tokens-npy", []string{"--tokens-npy", fixtures.Path("openai", "vit_tiny", "tokens.npy")}, textFeats, 1e-4},
		{"text", []string{"--text", "a photo of a cat.", "小笼包"}, append(append([]float32(nil), textFeats[:64]...), textFeats[2*64:3*64]...), 1e-4},
		// Images 1 and 2 of the fixture order are PNGs: decoding is exact.
		{"image files", []string{"--image", fixtures.Path("images", "rgba_333x500.png"), fixtures.Path("images", "gray_256x256.png")}, imageFeats[64 : 3*64], 1e-4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, c.name+".npy")
			if _, err := runCLI(t, append(append([]string{"embed", "--model", model}, c.args...), "--out", out)...); err != nil {
				t.Fatal(err)
			}
			got, err := npy.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			fixtures.AssertClose(t, c.name, got.F32, c.want, c.tol)
		})
	}
	out := filepath.Join(dir, "norm.npy")
	if _, err := runCLI(t, "embed", "--model", model, "--text", "a photo of a cat.", "--normalize", "--out", out); err != nil {
		t.Fatal(err)
	}
	got, _ := npy.ReadFile(out)
	var s float64
	for _, v := range got.F32 {
		s += float64(v) * float64(v)
	}
	if s < 0.9999 || s > 1.0001 {
		t.Errorf("--normalize: squared norm %v", s)
	}
}

func TestClassify(t *testing.T) {
	fixtures.Require(t)
	t.Setenv("CLIPWASM_VOCAB", fixtures.VocabPath())
	images := []string{fixtures.Path("images", "photo_640x480.jpg"), fixtures.Path("images", "tiny_17x29.png")}
	out, err := runCLI(t, append([]string{"classify", "--model", fixtures.Path("openai", "rn_tiny", "rn_tiny.state_dict.pt"),
		"--labels", "cat, dog,steamed bun", "--ensemble", "imagenet", "--template", "itap of a {}.", "--top", "3", "--json"}, images...)...)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(images) {
		t.Fatalf("%d result lines for %d images:\n%s", len(lines), len(images), out)
	}
	for i, line := range lines {
		var r struct {
			Image       string `json:"image"`
			Predictions []struct {
				Label string  `json:"label"`
				Prob  float64 `json:"prob"`
			} `json:"predictions"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r.Image != images[i] || len(r.Predictions) != 3 {
			t.Fatalf("result %d: %+v", i, r)
		}
		sum := 0.0
		for k, p := range r.Predictions {
			sum += p.Prob
			if k > 0 && p.Prob > r.Predictions[k-1].Prob {
				t.Errorf("image %d not sorted: %+v", i, r.Predictions)
			}
		}
		if sum < 0.9999 || sum > 1.0001 {
			t.Errorf("image %d: probabilities sum to %v", i, sum)
		}
	}
	text, err := runCLI(t, "classify", "--model", fixtures.Path("openai", "vit_tiny", "vit_tiny.state_dict.pt"),
		"--labels", "cat,dog", "--template-file", filepath.Join(fixtures.SharedDir(), "reference", "prompts.md")+"#CIFAR10", images[1])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "cat") || !strings.Contains(text, "%") {
		t.Errorf("text output:\n%s", text)
	}
}

func TestErrors(t *testing.T) {
	fixtures.Require(t)
	t.Setenv("CLIPWASM_VOCAB", fixtures.VocabPath())
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.jpg")
	os.WriteFile(corrupt, []byte("\xff\xd8\xff\xe0 not really a jpeg"), 0o644)
	notModel := filepath.Join(dir, "model.pt")
	os.WriteFile(notModel, []byte("hello"), 0o644)
	model := fixtures.Path("openai", "vit_tiny", "vit_tiny.state_dict.pt")
	img := fixtures.Path("images", "tiny_17x29.png")
	for name, args := range map[string][]string{
		"no command":        {},
		"unknown command":   {"frobnicate"},
		"tokenize nothing":  {"tokenize"},
		"unknown flag":      {"tokenize", "--nope", "x"},
		"bad vocab":         {"tokenize", "--vocab", notModel, "x"},
		"preprocess no out": {"preprocess", "--size", "32", img},
		"preprocess bad":    {"preprocess", "--size", "32", "--out", filepath.Join(dir, "o.npy"), corrupt},
		"embed no model":    {"embed", "--text", "x", "--out", filepath.Join(dir, "e.npy")},
		"embed two sources": {"embed", "--model", model, "--text", "x", "--image", img, "--out", filepath.Join(dir, "e.npy")},
		"embed bad model":   {"embed", "--model", notModel, "--text", "x", "--out", filepath.Join(dir, "e.npy")},
		"embed wrong npy":   {"embed", "--model", model, "--images-npy", fixtures.Path("openai", "rn_tiny", "images.npy"), "--out", filepath.Join(dir, "e.npy")},
		"classify no label": {"classify", "--model", model, img},
		"classify bad img":  {"classify", "--model", model, "--labels", "a,b", corrupt},
		"classify bad tmpl": {"classify", "--model", model, "--labels", "a,b", "--template", "no placeholder", img},
		"classify ensemble": {"classify", "--model", model, "--labels", "a,b", "--ensemble", "nope", img},
		"classify top":      {"classify", "--model", model, "--labels", "a,b", "--top", "x", img},
	} {
		if _, err := runCLI(t, args...); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "o.npy")); err == nil {
		t.Error("a failed preprocess left its output file behind")
	}
}
