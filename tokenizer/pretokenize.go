package tokenizer

import (
	"iter"
	"slices"
	"unicode"
	"unicode/utf8"
)

// Pattern is CLIP's pre-tokenizer regular expression, compiled in Python
// with the regex module and IGNORECASE. PreTokenize implements it by hand.
const Pattern = `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`

// Special token strings: they match literally inside text and encode to SOT
// and EOT.
const (
	StartOfText = "<|startoftext|>"
	EndOfText   = "<|endoftext|>"
)

// contractions are the apostrophe alternatives of Pattern, in its order.
var contractions = [...]string{"s", "t", "re", "ve", "m", "ll", "d"}

// PreTokenize splits cleaned text (the output of Clean) into the pieces
// that are BPE-encoded separately: the matches of Pattern, in order. It is a
// single left-to-right scan, linear in the input, that reproduces the regex
// semantics exactly:
//
//   - at each position the first alternative that matches wins, not the
//     longest, so "'s" is a piece but "!'s" gives "!'" and "s";
//   - letters (\p{L}) and other non-space non-number characters form
//     greedy runs, while every number character (\p{N}) is its own piece;
//   - whitespace matches nothing and is skipped;
//   - IGNORECASE makes the literals match case-insensitively, which in the
//     regex module includes U+017F (ſ) for 's', and it makes U+0345
//     (combining ypogegrammeni, which case-folds to ι) match neither
//     [\p{L}] nor its complement, so it is skipped like whitespace.
//
// Invalid UTF-8 is replaced with U+FFFD first, as in Clean.
func PreTokenize(cleaned string) []string {
	return slices.Collect(pieces(validUTF8(cleaned)))
}

// pieces yields the matches of Pattern in s, which must be valid UTF-8, so
// that encoding can stop early without scanning the rest.
func pieces(s string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for i := 0; i < len(s); {
			n := matchAt(s[i:])
			if n == 0 {
				// Nothing matches here (whitespace or U+0345): findall
				// moves on.
				_, w := utf8.DecodeRuneInString(s[i:])
				i += w
				continue
			}
			if !yield(s[i : i+n]) {
				return
			}
			i += n
		}
	}
}

// Character classes as Pattern sees them under IGNORECASE.
const (
	classNone   = iota // whitespace and U+0345: in no class
	classLetter        // [\p{L}]
	classNumber        // [\p{N}]
	classOther         // [^\s\p{L}\p{N}]
)

func classOf(r rune) int {
	switch {
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	case unicode.IsSpace(r) || r == 0x345:
		return classNone
	}
	return classOther
}

// matchAt returns the length in bytes of the match of Pattern at the start
// of s, or 0 if there is none.
func matchAt(s string) int {
	r, w := utf8.DecodeRuneInString(s)
	switch r {
	case '<':
		for _, special := range [...]string{StartOfText, EndOfText} {
			if n := foldPrefix(s, special); n > 0 {
				return n
			}
		}
	case '\'':
		for _, c := range contractions {
			if n := foldPrefix(s[w:], c); n > 0 {
				return w + n
			}
		}
	}
	class := classOf(r)
	switch class {
	case classNone:
		return 0
	case classNumber:
		return w
	}
	n := w
	for n < len(s) {
		r, w := utf8.DecodeRuneInString(s[n:])
		if classOf(r) != class {
			break
		}
		n += w
	}
	return n
}

// foldPrefix reports how many bytes of s match the lower-case ASCII literal
// lit case-insensitively, or 0 if s does not start with it. The regex
// module's simple case folding also equates 's' with U+017F (ſ); no other
// non-ASCII character folds to a letter of the literals in Pattern.
func foldPrefix(s, lit string) int {
	n := 0
	for i := 0; i < len(lit); i++ {
		if n >= len(s) {
			return 0
		}
		c := lit[i]
		switch {
		case s[n] == c || 'a' <= c && c <= 'z' && s[n] == c-'a'+'A':
			n++
		case c == 's' && len(s)-n >= len("ſ") && s[n:n+len("ſ")] == "ſ":
			n += len("ſ")
		default:
			return 0
		}
	}
	return n
}
