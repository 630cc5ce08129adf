package tokenizer

import (
	"strings"
	"unicode/utf8"
)

//go:generate python3 gen_entities.py

// Go's html.UnescapeString is close to Python's html.unescape but not equal:
// it turns "&#x;" into U+FFFD where Python leaves it alone, lets numbers past
// 2^31 wrap around (so "&#4294967393;" becomes "a"), and keeps the control
// and noncharacter code points that Python drops. CLIP's basic_clean uses
// Python's function, so this file is a transcription of it (CPython 3.11
// Lib/html/__init__.py).

// pyInvalidCharrefs is Python's _invalid_charrefs: numeric references the
// HTML5 standard maps to other characters (mostly Windows-1252 for C1).
var pyInvalidCharrefs = map[int]string{
	0x00: "\ufffd",
	0x0d: "\r",
	0x80: "\u20ac",
	0x81: "\u0081",
	0x82: "\u201a",
	0x83: "\u0192",
	0x84: "\u201e",
	0x85: "\u2026",
	0x86: "\u2020",
	0x87: "\u2021",
	0x88: "\u02c6",
	0x89: "\u2030",
	0x8a: "\u0160",
	0x8b: "\u2039",
	0x8c: "\u0152",
	0x8d: "\u008d",
	0x8e: "\u017d",
	0x8f: "\u008f",
	0x90: "\u0090",
	0x91: "\u2018",
	0x92: "\u2019",
	0x93: "\u201c",
	0x94: "\u201d",
	0x95: "\u2022",
	0x96: "\u2013",
	0x97: "\u2014",
	0x98: "\u02dc",
	0x99: "\u2122",
	0x9a: "\u0161",
	0x9b: "\u203a",
	0x9c: "\u0153",
	0x9d: "\u009d",
	0x9e: "\u017e",
	0x9f: "\u0178",
}

// pyInvalidCodepoint reports membership in Python's _invalid_codepoints:
// numeric references that unescape to nothing.
func pyInvalidCodepoint(n int) bool {
	switch {
	case 0x01 <= n && n <= 0x08, n == 0x0b, 0x0e <= n && n <= 0x1f,
		0x7f <= n && n <= 0x9f, 0xfdd0 <= n && n <= 0xfdef:
		return true
	}
	// U+FFFE, U+FFFF and the last two code points of every plane.
	return n <= 0x10ffff && n&0xfffe == 0xfffe
}

// maxEntityName is the {1,32} bound of Python's named-reference pattern, in
// code points.
const maxEntityName = 32

// htmlUnescape is Python's html.unescape: every match of
//
//	&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
//
// is replaced, scanning left to right. None of the three forms can contain
// '&', so a failed reference never hides the next one and the scan is
// linear.
func htmlUnescape(s string) string {
	amp := strings.IndexByte(s, '&')
	if amp < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for amp >= 0 {
		b.WriteString(s[:amp])
		s = s[amp+1:]
		repl, n, ok := charref(s)
		if ok {
			b.WriteString(repl)
			s = s[n:]
		} else {
			b.WriteByte('&')
		}
		amp = strings.IndexByte(s, '&')
	}
	b.WriteString(s)
	return b.String()
}

// charref decodes the reference at the start of s (the text after '&'). It
// returns the replacement, how many bytes of s the pattern consumed, and
// whether the pattern matched at all.
func charref(s string) (string, int, bool) {
	if strings.HasPrefix(s, "#") {
		return numericCharref(s)
	}
	// [^\t\n\f <&#;]{1,32};?
	n, count := 0, 0
	for n < len(s) && count < maxEntityName {
		r, w := utf8.DecodeRuneInString(s[n:])
		if strings.ContainsRune("\t\n\f <&#;", r) {
			break
		}
		n += w
		count++
	}
	if count == 0 {
		return "", 0, false
	}
	if n < len(s) && s[n] == ';' {
		n++
	}
	name := s[:n]
	if v, ok := html5Entities[name]; ok {
		return v, n, true
	}
	// The longest name that is a proper prefix, at least two bytes long; only
	// the legacy names without ';' can match here, as ';' ends the run. All
	// entity names are ASCII, so byte prefixes are the code point prefixes
	// Python tries.
	for x := n - 1; x > 1; x-- {
		if v, ok := html5Entities[name[:x]]; ok {
			return v + name[x:], n, true
		}
	}
	return "&" + name, n, true
}

// numericCharref handles "#[0-9]+;?" and "#[xX][0-9a-fA-F]+;?" at the start
// of s, mapping the value the way Python's _replace_charref does.
func numericCharref(s string) (string, int, bool) {
	i, base := 1, 10
	if len(s) > 1 && (s[1] == 'x' || s[1] == 'X') {
		i, base = 2, 16
	}
	start := i
	// Saturate instead of overflowing: every value past U+10FFFF gives
	// U+FFFD, just as Python's unbounded int does. (Python 3.11 raises on
	// more than 4300 decimal digits; U+FFFD is the sensible stand-in.)
	num := 0
	for i < len(s) {
		d := digitValue(s[i], base)
		if d < 0 {
			break
		}
		if num <= 0x10ffff {
			num = num*base + d
		}
		i++
	}
	if i == start {
		return "", 0, false
	}
	if i < len(s) && s[i] == ';' {
		i++
	}
	if v, ok := pyInvalidCharrefs[num]; ok {
		return v, i, true
	}
	if 0xd800 <= num && num <= 0xdfff || num > 0x10ffff {
		return "\ufffd", i, true
	}
	if pyInvalidCodepoint(num) {
		return "", i, true
	}
	return string(rune(num)), i, true
}

// digitValue returns the value of the ASCII digit c in base 10 or 16, or -1.
func digitValue(c byte, base int) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case base == 16 && 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case base == 16 && 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
