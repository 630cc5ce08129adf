package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// Expected values in this file are Python 3.11's (html.unescape, str.lower,
// the regex module), computed once and pasted in.

func TestHTMLUnescape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"&#x;", "&#x;"}, // Go's html.UnescapeString gives U+FFFD
		{"&#;", "&#;"},
		{"&;", "&;"},
		{"& amp;", "& amp;"},
		{"&&amp;", "&&"},
		{"a&b", "a&b"},
		{"&l", "&l"},
		{"&#4294967393;", "\ufffd"}, // Go's wraps to "a"
		{"&#99999999999999999999999999;", "\ufffd"},
		{"&#00000000000000000000000000065;", "A"},
		{"&#0;", "\ufffd"},
		{"&#1;", ""}, // Go's keeps U+0001
		{"&#11;", ""},
		{"&#x7f;", ""},
		{"&#xFDD0;", ""},
		{"&#xFFFE;", ""},
		{"&#x10FFFF;", ""},
		{"&#13;", "\r"},
		{"&#x9;", "\t"},
		{"&#128;", "\u20ac"},
		{"&#129;", "\u0081"},
		{"&#xD800;", "\ufffd"},
		{"&#x110000;", "\ufffd"},
		{"&#x1F600;", "\U0001f600"},
		{"&#65", "A"},
		{"&#x41x", "Ax"},
		{"&amp", "&"},
		{"&ampx;", "&x;"},
		{"&notit;", "\u00acit;"},
		{"&notin;", "\u2209"},
		{"&AMP;", "&"},
		{"&Amp;", "&Amp;"},
		{"&eacute", "\u00e9"},
		{"&eacutex", "\u00e9x"},
		{"&lt&gt", "<>"},
		{"&ltx", "<x"},
		{"&" + strings.Repeat("a", 40), "&" + strings.Repeat("a", 40)},
		{"&CounterClockwiseContourIntegral;", "\u2233"},
		{"&nvlt;", "<\u20d2"},
		{"&\u00e9;", "&\u00e9;"},
		{"&\u00e9lt;", "&\u00e9lt;"},
		{"fish &amp chips", "fish & chips"},
		{"&#20013;&#25991;", "中文"},
	} {
		if got := htmlUnescape(tc.in); got != tc.want {
			t.Errorf("htmlUnescape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestClean(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"İstanbul", "i\u0307stanbul"},
		{"ΟΔΥΣΣΕΥΣ", "οδυσσευς"},
		{"Σ", "σ"},
		{"ΑΣ", "ας"},
		{"ΑΣ.", "ας."},
		{"ΑΣ'Α", "ασ'α"},
		{"ΑΣ'", "ας'"},
		{"Α'Σ", "α'ς"},
		{"1Σ", "1σ"},
		{"ΑΣ1", "ας1"},
		{"&Sigma;&Sigma;", "σς"},
		{"&#304;", "i\u0307"},
		{"ẞ", "ß"},
		{"ǅ", "ǆ"},
		{"ῼ", "ῳ"},
		{"\u212a", "k"},
		{"Ⅻ", "ⅻ"},
		{"Ⓐ", "ⓐ"},
		{"\x1c a\x1c", "a"},
		{"a\x1cb", "a\x1cb"},
		{"a \x1c b", "a \x1c b"},
		{"&amp;lt;", "<"},
		{"&amp;amp;lt;", "&lt;"},
		{"\u0085x\u2028y\u3000z", "x y z"},
		{"  A\t\n B  ", "a b"},
		{"a\u00a0photo", "a photo"},
		{"a\x80b\xffc", "a\ufffdb\ufffdc"},
		{"\xe4\xb8", "\ufffd\ufffd"},
	} {
		if got := Clean(tc.in); got != tc.want {
			t.Errorf("Clean(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPreTokenize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"it's a dog's", []string{"it", "'s", "a", "dog", "'s"}},
		{"!'s", []string{"!'", "s"}},
		{"'S 'LL 'Re", []string{"'S", "'LL", "'Re"}},
		{"'ſ", []string{"'ſ"}},
		{"it’s", []string{"it", "’", "s"}},
		{"<|startoftext|>a<|endoftext|>", []string{"<|startoftext|>", "a", "<|endoftext|>"}},
		{"<|ſtartoftext|>", []string{"<|ſtartoftext|>"}},
		{"<|ENDOFTEXT|>", []string{"<|ENDOFTEXT|>"}},
		{"<|endoftext|", []string{"<|", "endoftext", "|"}},
		{"!<|endoftext|>", []string{"!<|", "endoftext", "|>"}},
		{"2024", []string{"2", "0", "2", "4"}},
		{"x²½Ⅻ٣", []string{"x", "²", "½", "Ⅻ", "٣"}},
		{"😀👍🏽!", []string{"😀👍🏽!"}},
		{"हिन्दी", []string{"ह", "ि", "न", "्", "द", "ी"}},
		{"i\u0307stanbul", []string{"i", "\u0307", "stanbul"}},
		{"a\u0345b ι\u0345ι", []string{"a", "b", "ι", "ι"}},
		{"a \x1c b", []string{"a", "\x1c", "b"}},
		{"a\xffb", []string{"a", "\ufffd", "b"}},
	} {
		if got := PreTokenize(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("PreTokenize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestBPEShortLong checks the O(n log n) merge loop against the direct
// transcription of Python's on words around and far above the length where
// encoding switches from one to the other.
func TestBPEShortLong(t *testing.T) {
	tok := clipTokenizer(t)
	rng := rand.New(rand.NewPCG(1, 2))
	alphabets := []string{"ab", "a", "esti", "the quick brown fox", "!?.", "😀👍", "中文字", "eé", "abcdefghijklmnopqrstuvwxyz"}
	var words []string
	for _, c := range loadGoldens(t) {
		words = append(words, c.Words...)
	}
	for range 3000 {
		alpha := []rune(alphabets[rng.IntN(len(alphabets))])
		var b strings.Builder
		for range 1 + rng.IntN(200) {
			b.WriteRune(alpha[rng.IntN(len(alpha))])
		}
		words = append(words, b.String())
	}
	for _, w := range words {
		sym := make([]int32, len(w))
		for i := range len(w) {
			sym[i] = tok.byteSym[w[i]]
		}
		sym[len(w)-1] = tok.byteEnd[w[len(w)-1]]
		short := tok.bpeShort(slices.Clone(sym))
		long := tok.bpeLong(slices.Clone(sym))
		if !slices.Equal(short, long) {
			t.Fatalf("word %q: bpeShort %v, bpeLong %v", w, short, long)
		}
	}
}
