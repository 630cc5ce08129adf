package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Clean returns the text the pre-tokenizer sees: CLIP's
// whitespace_clean(basic_clean(text)).lower(). That is Python's
// html.unescape applied twice, str.strip, every run of Unicode White_Space
// replaced by one space, and Python's str.lower (full lowercasing with the
// final-sigma rule, so "İ" becomes "i\u0307" and a word-final "Σ" becomes
// "ς").
//
// basic_clean first runs ftfy.fix_text; that step is not reproduced (see the
// package documentation). Invalid UTF-8 is first replaced byte by byte with
// U+FFFD, as a Go range loop reads it: Python never sees such input, as it
// only ever tokenizes str values.
func Clean(text string) string {
	s := validUTF8(text)
	s = htmlUnescape(htmlUnescape(s))
	s = strings.TrimFunc(s, pyIsSpace)
	// whitespace_clean strips again after collapsing; that is a no-op here,
	// since the ends are already non-space and collapsing leaves them alone.
	return pyLower(collapseSpace(s))
}

// validUTF8 replaces each byte that is not part of a valid UTF-8 sequence
// with U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

// pyIsSpace is Python's str.isspace, which str.strip uses: Unicode
// White_Space (Go's unicode.IsSpace) plus U+001C..U+001F, whose
// bidirectional class is B or S.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || 0x1c <= r && r <= 0x1f
}

// collapseSpace is re.sub(r'\s+', ' ', s) with the regex module, whose \s
// is Unicode White_Space: exactly unicode.IsSpace (Go's regexp \s would be
// ASCII only).
func collapseSpace(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	inSpace := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			if !inSpace {
				b.WriteByte(' ')
			}
			inSpace = true
			continue
		}
		inSpace = false
		b.WriteRune(r)
	}
	return b.String()
}

// pyLower is Python's str.lower: the full lowercase mapping of every code
// point. It differs from strings.ToLower in two places: U+0130 (İ) maps to
// "i\u0307", its unconditional SpecialCasing entry, and U+03A3 (Σ) maps to
// final sigma ς where it ends a word (Python's handle_capital_sigma).
func pyLower(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i, r := range s {
		switch r {
		case 'İ':
			b.WriteString("i\u0307")
		case 'Σ':
			if finalSigma(s, i) {
				b.WriteRune('ς')
			} else {
				b.WriteRune('σ')
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma reports whether the Σ at byte offset i of s is in the
// Final_Sigma context: a cased letter before it and none after it, skipping
// case-ignorable characters on both sides. The scans stop at the first
// character that is not case-ignorable, and Σ itself is not, so each run of
// case-ignorable characters is scanned at most twice: the whole lowering
// stays linear.
func finalSigma(s string, i int) bool {
	before := s[:i]
	for len(before) > 0 {
		r, w := utf8.DecodeLastRuneInString(before)
		if !caseIgnorable(r) {
			if !cased(r) {
				return false
			}
			break
		}
		before = before[:len(before)-w]
	}
	if len(before) == 0 {
		return false
	}
	after := s[i+len("Σ"):]
	for len(after) > 0 {
		r, w := utf8.DecodeRuneInString(after)
		if !caseIgnorable(r) {
			return !cased(r)
		}
		after = after[w:]
	}
	return true
}

// cased is the Unicode Cased property: Lowercase, Uppercase or Lt.
func cased(r rune) bool {
	return unicode.IsLower(r) || unicode.IsUpper(r) || unicode.IsTitle(r) ||
		unicode.In(r, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

// caseIgnorable is the Unicode Case_Ignorable property: categories Mn, Me,
// Cf, Lm and Sk, plus the characters whose Word_Break is MidLetter,
// MidNumLet or Single_Quote (Go has no Word_Break table; these are listed
// from WordBreakProperty.txt).
func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0x00b7, 0x0387, 0x055f, 0x05f4, 0x2018, 0x2019,
		0x2024, 0x2027, 0xfe13, 0xfe52, 0xfe55, 0xff07, 0xff0e, 0xff1a:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}
