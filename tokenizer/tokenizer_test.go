package tokenizer

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/internal/npy"
)

var (
	clipOnce sync.Once
	clipTok  *Tokenizer
	clipErr  error
)

// clipTokenizer loads CLIP's vocabulary from the shared reference data once
// per test binary; a missing file fails the test.
func clipTokenizer(tb testing.TB) *Tokenizer {
	tb.Helper()
	fixtures.Require(tb)
	clipOnce.Do(func() { clipTok, clipErr = Load(fixtures.VocabPath()) })
	if clipErr != nil {
		tb.Fatal(clipErr)
	}
	return clipTok
}

// golden is one case of openai/tokenizer_goldens.json.
type golden struct {
	ID        int      `json:"id"`
	Category  string   `json:"category"`
	Text      string   `json:"text"`
	Cleaned   string   `json:"cleaned"`
	Words     []string `json:"words"`
	BPEIDs    []int    `json:"bpe_ids"`
	BPETokens []string `json:"bpe_tokens"`
	NBPE      int      `json:"n_bpe"`
	Truncated bool     `json:"truncated"`
	Tokenize  []int    `json:"tokenize"`
	EOTIndex  int      `json:"eot_index"`
	Decoded   string   `json:"decoded"`
}

func loadGoldens(tb testing.TB) []golden {
	tb.Helper()
	fixtures.Require(tb)
	data, err := os.ReadFile(fixtures.Path("openai", "tokenizer_goldens.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var file struct {
		Meta struct {
			SOT           int    `json:"sot"`
			EOT           int    `json:"eot"`
			VocabSize     int    `json:"vocab_size"`
			NMerges       int    `json:"n_merges"`
			ContextLength int    `json:"context_length"`
			Pattern       string `json:"pattern"`
			NCases        int    `json:"n_cases"`
		} `json:"meta"`
		Cases []golden `json:"cases"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		tb.Fatalf("tokenizer_goldens.json: %v", err)
	}
	m := file.Meta
	if m.SOT != SOT || m.EOT != EOT || m.ContextLength != ContextLength || m.NMerges != OpenAIMerges || m.Pattern != Pattern {
		tb.Fatalf("goldens meta %+v disagrees with the package constants", m)
	}
	if len(file.Cases) != m.NCases || len(file.Cases) != 333 {
		tb.Fatalf("got %d cases, meta says %d, want 333", len(file.Cases), m.NCases)
	}
	return file.Cases
}

func TestGoldens(t *testing.T) {
	tok := clipTokenizer(t)
	if tok.VocabSize() != 49408 {
		t.Errorf("VocabSize = %d, want 49408", tok.VocabSize())
	}
	if sot, eot := tok.SpecialIDs(); sot != SOT || eot != EOT {
		t.Errorf("SpecialIDs = %d, %d, want %d, %d", sot, eot, SOT, EOT)
	}
	for _, c := range loadGoldens(t) {
		t.Run(fmt.Sprintf("%d_%s", c.ID, c.Category), func(t *testing.T) {
			if got := Clean(c.Text); got != c.Cleaned {
				t.Errorf("Clean(%q) = %q, want %q", c.Text, got, c.Cleaned)
			}
			if got := PreTokenize(c.Cleaned); !slices.Equal(got, c.Words) {
				t.Errorf("PreTokenize(%q) = %q, want %q", c.Cleaned, got, c.Words)
			}
			ids := tok.Encode(c.Text)
			if !slices.Equal(ids, c.BPEIDs) {
				t.Errorf("Encode(%q) = %v, want %v", c.Text, ids, c.BPEIDs)
			}
			tokens := make([]string, len(ids))
			for i, id := range ids {
				tokens[i] = tok.tokens.at(id)
			}
			if !slices.Equal(tokens, c.BPETokens) {
				t.Errorf("tokens of %q = %q, want %q", c.Text, tokens, c.BPETokens)
			}
			if len(ids) != c.NBPE || (len(ids)+2 > ContextLength) != c.Truncated {
				t.Errorf("n_bpe %d, want %d (truncated %v)", len(ids), c.NBPE, c.Truncated)
			}
			row := tok.Tokenize(c.Text, ContextLength)
			if !slices.Equal(row, c.Tokenize) {
				t.Errorf("Tokenize(%q) =\n%v\nwant\n%v", c.Text, row, c.Tokenize)
			}
			if got := EOTIndex(row); got != c.EOTIndex {
				t.Errorf("EOTIndex = %d, want %d", got, c.EOTIndex)
			}
			if got := tok.Decode(c.BPEIDs); got != c.Decoded {
				t.Errorf("Decode = %q, want %q", got, c.Decoded)
			}
		})
	}
}

// TestPeerPrompts checks the 80 prompts the performance peers feed to ONNX
// Runtime against the ids OpenAI's tokenizer gave them.
func TestPeerPrompts(t *testing.T) {
	tok := clipTokenizer(t)
	prompts, want := peerPrompts(t)
	rows := tok.TokenizeAll(prompts, ContextLength)
	for i, row := range rows {
		for j, id := range row {
			if int64(id) != want.I64[i*ContextLength+j] {
				t.Errorf("prompt %d %q: row %v,\nwant %v", i, prompts[i], row, want.I64[i*ContextLength:(i+1)*ContextLength])
				break
			}
		}
	}
}

// peerPrompts reads peers/inputs/prompts.txt and tokens.npy.
func peerPrompts(tb testing.TB) ([]string, *npy.Array) {
	tb.Helper()
	fixtures.Require(tb)
	dir := filepath.Join(fixtures.SharedDir(), "peers", "inputs")
	data, err := os.ReadFile(filepath.Join(dir, "prompts.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	prompts := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	want, err := npy.ReadFile(filepath.Join(dir, "tokens.npy"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(prompts) != 80 || !slices.Equal(want.Shape, []int{80, ContextLength}) || want.I64 == nil {
		tb.Fatalf("%d prompts, tokens %s %v; want 80 prompts and int64 [80 77]", len(prompts), want.DType, want.Shape)
	}
	return prompts, want
}

// TestLoadHF writes the Hugging Face form of CLIP's vocabulary, built here
// the way transformers' CLIP vocab.json is laid out (byte symbols in
// bytes_to_unicode order, the same with </w>, the merges, the two special
// tokens), and checks that it loads to a tokenizer identical to the OpenAI
// one.
func TestLoadHF(t *testing.T) {
	want := clipTokenizer(t)
	merges := want.Merges()
	if len(merges) != OpenAIMerges {
		t.Fatalf("%d merges, want %d", len(merges), OpenAIMerges)
	}
	var vocab []string
	// bytes_to_unicode: printable bytes keep their code point, the other 68
	// follow from U+0100 in byte order; the dict lists the printable first.
	var printable, rest []string
	next := 256
	for b := range 256 {
		if '!' <= b && b <= '~' || 0xa1 <= b && b <= 0xac || 0xae <= b && b <= 0xff {
			printable = append(printable, string(rune(b)))
		} else {
			rest = append(rest, string(rune(next)))
			next++
		}
	}
	symbols := append(printable, rest...)
	vocab = append(vocab, symbols...)
	for _, s := range symbols {
		vocab = append(vocab, s+"</w>")
	}
	var mergesTxt strings.Builder
	mergesTxt.WriteString("#version: 0.2\n")
	for _, m := range merges {
		vocab = append(vocab, m[0]+m[1])
		fmt.Fprintf(&mergesTxt, "%s %s\n", m[0], m[1])
	}
	vocab = append(vocab, "<|startoftext|>", "<|endoftext|>")
	ids := make(map[string]int, len(vocab))
	for i, s := range vocab {
		ids[s] = i
	}
	vocabJSON, err := json.Marshal(ids)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, HFVocabFile), vocabJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, HFMergesFile), []byte(mergesTxt.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !sameTokens(got.tokens, want.tokens) {
		t.Fatal("HF vocabulary differs from the OpenAI one")
	}
	if !maps.Equal(got.Vocab(), want.Vocab()) || !slices.Equal(got.Merges(), merges) {
		t.Fatal("Vocab() or Merges() differ")
	}
	prompts, _ := peerPrompts(t)
	for _, c := range loadGoldens(t) {
		prompts = append(prompts, c.Text)
	}
	for _, p := range prompts {
		if g, w := got.Tokenize(p, ContextLength), want.Tokenize(p, ContextLength); !slices.Equal(g, w) {
			t.Errorf("Tokenize(%q): HF %v, OpenAI %v", p, g, w)
		}
	}
}

// TestNewRoundTrip rebuilds the tokenizer from its exported merges, with and
// without the exported vocabulary, as a weight bundle manifest would.
func TestNewRoundTrip(t *testing.T) {
	want := clipTokenizer(t)
	for _, vocab := range []map[string]int{nil, want.Vocab()} {
		got, err := New(want.Merges(), vocab)
		if err != nil {
			t.Fatal(err)
		}
		text := "a photo of a Ångström <|endoftext|> 中文 😀 &amp; it's"
		if g, w := got.Tokenize(text, ContextLength), want.Tokenize(text, ContextLength); !slices.Equal(g, w) {
			t.Errorf("vocab given %v: %v, want %v", vocab != nil, g, w)
		}
	}
}

// TestLoadPlainAndDir loads the merges uncompressed and from a directory.
func TestLoadPlainAndDir(t *testing.T) {
	want := clipTokenizer(t)
	dir := t.TempDir()
	plain := filepath.Join(dir, "merges.txt")
	var b strings.Builder
	b.WriteString("#version: 0.2\n")
	for _, m := range want.Merges() {
		b.WriteString(m[0] + " " + m[1] + "\n")
	}
	if err := os.WriteFile(plain, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Load(plain)
	if err != nil {
		t.Fatal(err)
	}
	if !sameTokens(got.tokens, want.tokens) || !slices.Equal(got.merges, want.merges) {
		t.Error("plain-text merges load differently")
	}
	gzDir := t.TempDir()
	data, err := os.ReadFile(fixtures.VocabPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(gzDir, OpenAIVocabFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(gzDir); err != nil || !sameTokens(got.tokens, want.tokens) {
		t.Errorf("Load(dir with %s): %v", OpenAIVocabFile, err)
	}
}

func TestTokenizeContextLength(t *testing.T) {
	tok := clipTokenizer(t)
	ids := tok.Encode("a photo of a dog") // 5 ids
	for _, tc := range []struct {
		n    int
		want []int
	}{
		{0, []int{}},
		{-3, []int{}},
		{1, []int{EOT}},
		{2, []int{SOT, EOT}},
		{3, []int{SOT, ids[0], EOT}},
		{7, append(append([]int{SOT}, ids...), EOT)},
		{8, append(append([]int{SOT}, ids...), EOT, 0)},
	} {
		if got := tok.Tokenize("a photo of a dog", tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("Tokenize(_, %d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

func TestEOTIndex(t *testing.T) {
	for _, tc := range []struct {
		row  []int
		want int
	}{
		{nil, -1},
		{[]int{SOT, 5, EOT, 0}, 2},
		{[]int{SOT, EOT, 7, EOT, 0}, 1},
		{[]int{0, 0}, 0},
	} {
		if got := EOTIndex(tc.row); got != tc.want {
			t.Errorf("EOTIndex(%v) = %d, want %d", tc.row, got, tc.want)
		}
	}
}

// TestDecodeReplacement checks Python's errors="replace" decoding on byte
// sequences cut or malformed in the ways a truncated row produces; ids
// below 256 are single byte symbols. Expected strings are Python's.
func TestDecodeReplacement(t *testing.T) {
	tok := clipTokenizer(t)
	byteID := make(map[byte]int)
	for id := range 256 {
		byteID[byte(runeBytes[[]rune(tok.tokens.at(id))[0]])] = id
	}
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"\xe4\xb8", "\ufffd"},
		{"\xe4\xb8A", "\ufffdA"},
		{"\xf0\x9f\x98", "\ufffd"},
		{"\xf0\x80\x80", "\ufffd\ufffd\ufffd"},
		{"\xed\xa0\x80", "\ufffd\ufffd\ufffd"},
		{"\xc0\xaf", "\ufffd\ufffd"},
		{"\xff", "\ufffd"},
		{"\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"},
		{"\xe0\x80\xaf", "\ufffd\ufffd\ufffd"},
		{"\xf0\x9f\x98\x80\xf0\x9f", "\U0001f600\ufffd"},
		{"a\x80b", "a\ufffdb"},
	} {
		var ids []int
		for i := 0; i < len(tc.in); i++ {
			ids = append(ids, byteID[tc.in[i]])
		}
		if got := tok.Decode(ids); got != tc.want {
			t.Errorf("Decode(% x) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := tok.Decode([]int{-1, 1 << 30, SOT, EOT, 0}); got != "<|startoftext|><|endoftext|>!" {
		t.Errorf("Decode with out-of-range ids = %q", got)
	}
}

// TestConcurrent encodes from many goroutines with a cache too small for
// the words, so that generations rotate while others read (run with -race).
func TestConcurrent(t *testing.T) {
	tok := clipTokenizer(t)
	prompts, _ := peerPrompts(t)
	want := tok.TokenizeAll(prompts, ContextLength)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				p := (g + i) % len(prompts)
				text := prompts[p]
				if i%3 == 0 {
					text = fmt.Sprintf("%s unique%dword%d", text, g, i)
					if got := tok.Tokenize(text, ContextLength); got[0] != SOT {
						t.Errorf("bad row %v", got)
						return
					}
					continue
				}
				if got := tok.Tokenize(text, ContextLength); !slices.Equal(got, want[p]) {
					t.Errorf("prompt %d: %v, want %v", p, got, want[p])
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestWordCacheBounded(t *testing.T) {
	c := newWordCache()
	for i := range 3 * cacheGeneration {
		c.put(fmt.Sprint(i), []int{i})
	}
	if n := len(c.cur) + len(c.old); n > 2*cacheGeneration {
		t.Errorf("cache holds %d entries, bound %d", n, 2*cacheGeneration)
	}
	// A hit in the old generation survives the next rotation.
	c = newWordCache()
	c.put("keep", []int{1})
	for i := range cacheGeneration {
		c.put(fmt.Sprint(i), nil)
	}
	if _, ok := c.get("keep"); !ok {
		t.Fatal("entry lost after one rotation")
	}
	for i := range cacheGeneration - 1 {
		c.put(fmt.Sprint("x", i), nil)
	}
	if ids, ok := c.get("keep"); !ok || !slices.Equal(ids, []int{1}) {
		t.Error("promoted entry lost")
	}
	c.put(strings.Repeat("x", maxCachedWord+1), nil)
	if _, ok := c.get(strings.Repeat("x", maxCachedWord+1)); ok {
		t.Error("over-long word was cached")
	}
}

// TestLongInputs encodes megabyte-sized words and runs. The point is that it
// finishes quickly: a quadratic step would take minutes here.
func TestLongInputs(t *testing.T) {
	tok := clipTokenizer(t)
	var emoji strings.Builder
	for i := range 100_000 {
		emoji.WriteRune([]rune("😀👍🏽🎉🐶")[i%5])
	}
	for name, text := range map[string]string{
		"letters":     strings.Repeat("abcdefghij", 100_000),
		"one letter":  strings.Repeat("a", 1<<20),
		"punctuation": strings.Repeat("!?.,;:-", 150_000),
		"emoji":       emoji.String(),
		"digits":      strings.Repeat("0123456789", 100_000),
		"spaces":      "a" + strings.Repeat(" \t\n\u3000", 250_000) + "b",
		"entities":    strings.Repeat("&amp;amp;&notit;&#x1F600;&", 40_000),
		"sigma":       strings.Repeat("Σ'''", 250_000),
		"specials":    strings.Repeat("<|endoftext|>", 80_000),
		"no match":    strings.Repeat("\u0345", 500_000),
	} {
		t.Run(name, func(t *testing.T) {
			ids := tok.Encode(text)
			row := tok.Tokenize(text, ContextLength)
			want := append([]int{SOT}, ids...)
			if len(want) > ContextLength-1 {
				want = want[:ContextLength-1]
			}
			want = append(want, EOT)
			want = append(want, make([]int, ContextLength-len(want))...)
			if !slices.Equal(row, want) {
				t.Errorf("Tokenize disagrees with Encode: %v vs %v", row, want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"empty", write("empty.txt", ""), "header"},
		{"short", write("short.txt", "#version: 0.2\na b\n"), "has 1 merges, CLIP needs 48894"},
		{"three fields", write("bad.txt", "#version: 0.2\na b c\n"), "line 2: want two symbols"},
		{"bad gzip", write("bad.gz", "\x1f\x8b\x08garbage"), "gzip"},
		{"empty dir", t.TempDir(), "holds neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadHFErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		vocab  string
		merges string
		want   string
	}{
		{"not json", "{", "", "parsing vocab.json"},
		{"null", "null", "", "null"},
		{"trailing", "{}{}", "", "trailing data"},
		{"float id", `{"a": 1.5}`, "", "parsing vocab.json"},
		{"no specials", vocabJSON(t, func(v map[string]int) { delete(v, EndOfText) }), "", "lacks <|endoftext|>"},
		{"no byte", vocabJSON(t, func(v map[string]int) { delete(v, "a</w>") }), "", `lacks the symbol "a</w>"`},
		{"negative id", vocabJSON(t, func(v map[string]int) { v["x"] = -1 }), "", "out of range"},
		{"huge id", vocabJSON(t, func(v map[string]int) { v["x"] = 1 << 40 }), "", "out of range"},
		{"shared id", vocabJSON(t, func(v map[string]int) { v["zz"] = v["a"] }), "", "the same id"},
		{"empty token", vocabJSON(t, func(v map[string]int) { v[""] = 9999 }), "", "empty token"},
		{"merge result missing", vocabJSON(t, nil), "#version: 0.2\na c\n", `"ac" is not in the vocabulary`},
		{"merge part missing", vocabJSON(t, nil), "#version: 0.2\nab zz\n", `"zz" is not in the vocabulary`},
		{"merge line", vocabJSON(t, nil), "#version: 0.2\na b\nabc\n", "merges.txt line 3: want two symbols"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadHF(strings.NewReader(tc.vocab), strings.NewReader(tc.merges))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadHF: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// And the same vocabulary with a valid merges file works: "ab" as a
	// whole word ends in "b</w>", which the merge (a, b) does not cover.
	v := openAIVocab([][2]string{{"a", "b"}})
	tok, err := LoadHF(strings.NewReader(vocabJSON(t, nil)), strings.NewReader("#version: 0.2\n\na b\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tok.Encode("ab abc"), []int{v["a"], v["b</w>"], v["ab"], v["c</w>"]}; !slices.Equal(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}
	if _, err := New([][2]string{{"", "a"}}, nil); err == nil || !strings.Contains(err.Error(), "empty symbol") {
		t.Errorf("New with an empty symbol: %v", err)
	}
}

// vocabJSON is a minimal valid vocabulary (the byte symbols, their </w>
// forms, the merge (a, b) and the specials), edited by edit, as JSON.
func vocabJSON(t *testing.T, edit func(map[string]int)) string {
	v := openAIVocab([][2]string{{"a", "b"}})
	if edit != nil {
		edit(v)
	}
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func BenchmarkTokenize(b *testing.B) {
	tok := clipTokenizer(b)
	prompts, _ := peerPrompts(b)
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range prompts {
			tok.Tokenize(p, ContextLength)
		}
	}
}

// BenchmarkTokenizeUncached measures BPE itself: a fresh tokenizer per
// round, so no word is cached.
func BenchmarkTokenizeUncached(b *testing.B) {
	tok := clipTokenizer(b)
	prompts, _ := peerPrompts(b)
	b.ReportAllocs()
	for b.Loop() {
		fresh := *tok
		fresh.cache = newWordCache()
		for _, p := range prompts {
			fresh.Tokenize(p, ContextLength)
		}
	}
}

// sameTokens reports whether two token tables hold the same tokens.
func sameTokens(a, b tokenTable) bool { return a.data == b.data && slices.Equal(a.end, b.end) }
