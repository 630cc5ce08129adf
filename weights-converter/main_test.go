package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/shards"
	"github.com/clipwasm/clipwasm/tokenizer"
)

var cosineLine = regexp.MustCompile(`(image|text) +tower +([0-9.]+)`)

// cosines returns the self-check's cosines from the command's output.
func cosines(t *testing.T, out string) map[string]float64 {
	t.Helper()
	got := map[string]float64{}
	for _, m := range cosineLine.FindAllStringSubmatch(out, -1) {
		got[m[1]], _ = strconv.ParseFloat(m[2], 64)
	}
	if len(got) != 2 {
		t.Fatalf("no cosines in the output:\n%s", out)
	}
	return got
}

// TestRunEndToEnd converts OpenAI's TorchScript fixture to int8 through the
// command and checks what it reports.
func TestRunEndToEnd(t *testing.T) {
	fixtures.Require(t)
	out := filepath.Join(t.TempDir(), "bundle")
	var stdout, stderr bytes.Buffer
	err := run([]string{"--in", fixtures.Path("openai", "vit_tiny", "vit_tiny.jit.pt"), "--out", out, "--quant", "int8",
		"--shard-size", "2MiB", "--vocab", fixtures.VocabPath()}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	t.Logf("output:\n%s", &stdout)
	for tower, c := range cosines(t, stdout.String()) {
		if c < 0.999 {
			t.Errorf("%s cosine %.6f < 0.999", tower, c)
		}
	}
	if !strings.Contains(stdout.String(), "largest relative errors") {
		t.Error("no per-tensor error report")
	}
	if !strings.Contains(stdout.String(), "calibrated:") {
		t.Error("no calibration report")
	}
	b, err := shards.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, s := range b.Manifest.Shards {
		if s.Size > 2<<20 {
			t.Errorf("shard %s has %d bytes > 2 MiB", s.File, s.Size)
		}
	}
}

// TestRunCalibration converts a fixture to q4 calibrated (the default),
// calibrated with no budget, and rounded, and checks what each reports
// and stores.
func TestRunCalibration(t *testing.T) {
	fixtures.Require(t)
	for _, tc := range []struct {
		flags      []string
		calibrated bool
		kept       bool
	}{
		{nil, true, true},
		{[]string{"--budget", "0%"}, true, false},
		{[]string{"--calibrate=false"}, false, false},
	} {
		t.Run(strings.Join(append([]string{"default"}, tc.flags...), " "), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "bundle")
			var stdout, stderr bytes.Buffer
			args := append([]string{"--in", fixtures.Path("hf", "hf_tiny_quickgelu"), "--out", out, "--quant", "q4", "--vocab", fixtures.VocabPath()}, tc.flags...)
			if err := run(args, &stdout, &stderr); err != nil {
				t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
			}
			t.Logf("output:\n%s", &stdout)
			if got := strings.Contains(stdout.String(), "calibrated:"); got != tc.calibrated {
				t.Errorf("calibration reported: %v, want %v", got, tc.calibrated)
			}
			b, err := shards.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			kept := 0
			for _, e := range b.Manifest.Tensors {
				if strings.HasPrefix(e.Fallback, "kept int8") {
					kept++
					if e.Scheme != shards.Int8 || !strings.Contains(stdout.String(), e.Name+": kept int8") {
						t.Errorf("%s: %s, not reported", e.Name, e.Scheme)
					}
				}
			}
			if (kept > 0) != tc.kept {
				t.Errorf("%d matrices kept int8", kept)
			}
			if tc.kept {
				for tower, c := range cosines(t, stdout.String()) {
					if c < 0.99 {
						t.Errorf("%s cosine %.6f < 0.99", tower, c)
					}
				}
			}
		})
	}
}

// TestRunFromHub downloads a fixture Hugging Face folder from a local hub
// with a token, converts it, and converts it again from the cache alone.
func TestRunFromHub(t *testing.T) {
	fixtures.Require(t)
	src := fixtures.Path("hf", "hf_tiny_quickgelu")
	var requests, unauthorized atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.Header.Get("Authorization") != "Bearer hf_test" {
			unauthorized.Add(1)
		}
		file, ok := strings.CutPrefix(r.URL.Path, "/org/tiny/resolve/main/")
		if !ok || strings.Contains(file, "/") {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, filepath.Join(src, file))
	}))
	defer srv.Close()
	t.Setenv("HF_TOKEN", "hf_test")
	t.Setenv("HF_ENDPOINT", srv.URL)
	cache := t.TempDir()
	for i := 0; i < 2; i++ {
		out := filepath.Join(t.TempDir(), "bundle")
		var stdout, stderr bytes.Buffer
		err := run([]string{"--from-hub", "org/tiny", "--cache", cache, "--out", out, "--quant", "q4", "--vocab", fixtures.VocabPath()}, &stdout, &stderr)
		if err != nil {
			t.Fatalf("run %d: %v\nstdout:\n%s\nstderr:\n%s", i, err, &stdout, &stderr)
		}
		if stderr.Len() != 0 {
			t.Errorf("progress written to a non-terminal stderr: %q", &stderr)
		}
		if i == 0 {
			t.Logf("output:\n%s", &stdout)
		}
		cosines(t, stdout.String())
		if _, err := os.Stat(filepath.Join(cache, "org", "tiny", "main", "model.safetensors")); err != nil {
			t.Errorf("cache layout: %v", err)
		}
	}
	// config.json, model.safetensors, and 404s for open_clip_config.json,
	// vocab.json and merges.txt; nothing on the second run.
	if n := requests.Load(); n != 5 {
		t.Errorf("%d requests, want 5", n)
	}
	if n := unauthorized.Load(); n != 0 {
		t.Errorf("%d requests without the token", n)
	}
}

// TestArgs: bad command lines fail with a message and write nothing.
func TestArgs(t *testing.T) {
	ckpt := fixtures.Path("openai", "vit_tiny", "vit_tiny.state_dict.pt")
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--out", "x", "--quant", "int8"}, "exactly one of --in and --from-hub"},
		{[]string{"--in", ckpt, "--from-hub", "a/b", "--out", "x", "--quant", "int8"}, "exactly one"},
		{[]string{"--in", ckpt, "--quant", "int8"}, "--out is required"},
		{[]string{"--in", ckpt, "--out", "x"}, `--quant ""`},
		{[]string{"--in", ckpt, "--out", "x", "--quant", "int4"}, "int4"},
		{[]string{"--in", ckpt, "--out", "x", "--quant", "int8", "--scale-dtype", "bf16"}, "bf16"},
		{[]string{"--in", ckpt, "--out", "x", "--quant", "int8", "--shard-size", "lots"}, "bad size"},
		{[]string{"--in", ckpt, "--out", "x", "--quant", "int8", "extra"}, "unexpected arguments"},
		{[]string{"--in", ckpt, "--out", "x", "--quant", "int8", "--bogus"}, "bogus"},
		{[]string{"--in", ckpt, "--out", "x", "--quant", "q4", "--budget", "7"}, "bad budget"},
		{[]string{"--in", ckpt, "--out", "x", "--quant", "q4", "--budget", "-1%"}, "bad budget"},
		{[]string{"--in", ckpt, "--out", "x", "--quant", "q4", "--budget", "lots%"}, "bad budget"},
		{[]string{"--in", filepath.Join(t.TempDir(), "missing.pt"), "--out", "x", "--quant", "int8"}, "no such file"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(tc.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error()+stderr.String(), tc.err) {
				t.Errorf("error %v (stderr %q), want one mentioning %q", err, &stderr, tc.err)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"16MiB", 16 << 20}, {"16mib", 16 << 20}, {"4MB", 4e6}, {"1048576", 1 << 20}, {"512 KiB", 512 << 10},
		{"2G", 2 << 30}, {"1GB", 1e9}, {"100B", 100}, {"3k", 3 << 10},
		{"", -1}, {"MiB", -1}, {"0", -1}, {"-5MiB", -1}, {"1.5MiB", -1}, {"16XB", -1}, {"9999999999GiB", -1},
	} {
		got, err := parseSize(tc.in)
		if tc.want < 0 {
			if err == nil {
				t.Errorf("parseSize(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

// TestLoadTokenizer checks where the vocabulary comes from, in order.
func TestLoadTokenizer(t *testing.T) {
	fixtures.Require(t)
	vocab := fixtures.VocabPath()
	// A folder with vocab.json and merges.txt, made from CLIP's merges.
	hf := t.TempDir()
	tok, err := tokenizer.Load(vocab)
	if err != nil {
		t.Fatal(err)
	}
	writeHF(t, hf, tok)
	weights := filepath.Join(hf, "model.safetensors")
	os.WriteFile(weights, nil, 0o644)
	bare := t.TempDir()
	cwd := t.TempDir() // ../shared/reference/... resolves from here
	ref := filepath.Join(filepath.Dir(cwd), "shared", "reference")
	if err := os.MkdirAll(ref, 0o755); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(vocab)
	os.WriteFile(filepath.Join(ref, tokenizer.OpenAIVocabFile), raw, 0o644)
	t.Chdir(cwd)

	for _, tc := range []struct {
		name, flag, in, env, want string
	}{
		{"flag wins", vocab, hf, "", vocab},
		{"beside the weights file", "", weights, vocab, hf},
		{"beside the weights folder", "", hf, vocab, hf},
		{"environment", "", filepath.Join(bare, "x.pt"), vocab, vocab},
		{"default path", "", filepath.Join(bare, "x.pt"), "", defaultVocab},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CLIPWASM_VOCAB", tc.env)
			got, from, err := loadTokenizer(tc.flag, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if from != tc.want || got.VocabSize() != tok.VocabSize() {
				t.Errorf("loaded %d tokens from %s, want %s", got.VocabSize(), from, tc.want)
			}
		})
	}
	os.RemoveAll(ref)
	t.Setenv("CLIPWASM_VOCAB", "")
	if _, _, err := loadTokenizer("", filepath.Join(bare, "x.pt")); err == nil || !strings.Contains(err.Error(), "--vocab") {
		t.Errorf("no vocabulary anywhere: %v", err)
	}
}

// writeHF writes tok as Hugging Face's vocab.json and merges.txt.
func writeHF(t *testing.T, dir string, tok *tokenizer.Tokenizer) {
	v, err := json.Marshal(tok.Vocab())
	if err != nil {
		t.Fatal(err)
	}
	var m bytes.Buffer
	m.WriteString("#version: 0.2\n")
	for _, p := range tok.Merges() {
		m.WriteString(p[0] + " " + p[1] + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, tokenizer.HFVocabFile), v, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, tokenizer.HFMergesFile), m.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
