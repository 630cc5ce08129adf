// Package tokenizer is CLIP's text tokenizer: the byte-level BPE of OpenAI's
// SimpleTokenizer (github.com/openai/CLIP, clip/simple_tokenizer.py) and the
// row layout of clip.tokenize, reproduced id for id.
//
// Encoding a text runs, in order: Clean (HTML unescaping twice with Python's
// html.unescape rules, stripping, whitespace collapsing and Python's
// str.lower), PreTokenize (CLIP's regular expression, as a linear scanner),
// and byte-level BPE of every piece. The special strings "<|startoftext|>"
// and "<|endoftext|>" are recognised inside text and encode to SOT and EOT.
//
// Differences from the Python code, all outside what the golden fixtures
// cover:
//   - ftfy.fix_text, which basic_clean runs first, is not reproduced. For
//     text that is already clean (NFC, no mojibake, no curly quotes,
//     ligatures or full-width forms) it changes nothing; decomposed (NFD)
//     input is the most likely case where CLIP would see different text.
//   - Character properties come from Go's unicode tables (Unicode 15),
//     Python's from its own version; characters assigned in between may be
//     classified differently.
//   - Invalid UTF-8 is replaced byte by byte with U+FFFD, where Python could
//     only have been given a str.
package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// CLIP's special token ids and text context length.
const (
	SOT           = 49406 // id of <|startoftext|>
	EOT           = 49407 // id of <|endoftext|>
	ContextLength = 77    // clip.tokenize's default context_length
)

// OpenAIMerges is the number of merges CLIP takes from
// bpe_simple_vocab_16e6.txt.gz: 49152 - 256 - 2.
const OpenAIMerges = 48894

// Tokenizer encodes and decodes text with one BPE vocabulary. It is safe for
// concurrent use.
type Tokenizer struct {
	tokens   tokenTable       // id → token; "" for ids the vocabulary skips
	merges   [][2]int32       // the ids of each merge's parts, in rank order, as given
	ranks    map[uint64]merge // pairKey(left, right) → merge
	byteSym  [256]int32       // id of each byte's symbol inside a word
	byteEnd  [256]int32       // id of each byte's symbol with </w>, ending a word
	sot, eot int
	cache    *wordCache
}

// New builds a tokenizer from a merges list (in rank order, each pair the
// two symbols of one line of a merges file) and a vocabulary (token → id).
//
// A nil vocab builds CLIP's own layout from the merges: the 256 byte
// symbols, the same followed by "</w>", every merge's concatenation in
// order, then "<|startoftext|>" and "<|endoftext|>". With the 48894 CLIP
// merges that puts the special tokens at SOT and EOT. As in Python's
// dict(zip(vocab, range(len(vocab)))), a token listed twice takes its last
// id, and a pair listed twice its last rank.
//
// A given vocab must hold the two special tokens, all 512 byte symbols and
// every merge's parts and result, with distinct non-negative ids.
func New(merges [][2]string, vocab map[string]int) (*Tokenizer, error) {
	if vocab == nil {
		vocab = openAIVocab(merges)
	}
	t := &Tokenizer{
		merges: make([][2]int32, len(merges)),
		ranks:  make(map[uint64]merge, len(merges)),
		cache:  newWordCache(),
	}
	if err := t.setVocab(vocab); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	for rank, m := range merges {
		if m[0] == "" || m[1] == "" {
			return nil, fmt.Errorf("tokenizer: merge %d (%q %q) has an empty symbol", rank, m[0], m[1])
		}
		var ids [3]int32
		for i, s := range [3]string{m[0], m[1], m[0] + m[1]} {
			id, ok := vocab[s]
			if !ok {
				return nil, fmt.Errorf("tokenizer: merge %d (%q %q): %q is not in the vocabulary", rank, m[0], m[1], s)
			}
			ids[i] = int32(id)
		}
		t.ranks[pairKey(ids[0], ids[1])] = merge{rank: int32(rank), id: ids[2]}
		t.merges[rank] = [2]int32{ids[0], ids[1]}
	}
	return t, nil
}

// maxVocabID bounds token ids, so that a corrupt vocabulary cannot ask for
// a huge decoding table. It is far above any real BPE vocabulary.
const maxVocabID = 1 << 22

// setVocab fills the id tables from vocab and checks what encoding needs.
func (t *Tokenizer) setVocab(vocab map[string]int) error {
	maxID := -1
	for tok, id := range vocab {
		if id < 0 || id >= maxVocabID {
			return fmt.Errorf("vocabulary id %d of %q is out of range [0, %d)", id, tok, maxVocabID)
		}
		if tok == "" {
			return fmt.Errorf("vocabulary has an empty token (id %d)", id)
		}
		maxID = max(maxID, id)
	}
	byID := make([]string, maxID+1)
	for tok, id := range vocab {
		if prev := byID[id]; prev != "" {
			a, b := min(prev, tok), max(prev, tok) // stable message despite map order
			return fmt.Errorf("vocabulary gives %q and %q the same id %d", a, b, id)
		}
		byID[id] = tok
	}
	t.tokens = newTokenTable(byID)
	var ok bool
	if t.sot, ok = vocab[StartOfText]; !ok {
		return fmt.Errorf("vocabulary lacks %s", StartOfText)
	}
	if t.eot, ok = vocab[EndOfText]; !ok {
		return fmt.Errorf("vocabulary lacks %s", EndOfText)
	}
	for b, r := range byteRunes {
		sym := string(r)
		id, ok := vocab[sym]
		if !ok {
			return fmt.Errorf("vocabulary lacks the symbol %q of byte 0x%02x", sym, b)
		}
		end, ok := vocab[sym+endOfWord]
		if !ok {
			return fmt.Errorf("vocabulary lacks the symbol %q of byte 0x%02x", sym+endOfWord, b)
		}
		t.byteSym[b], t.byteEnd[b] = int32(id), int32(end)
	}
	return nil
}

// openAIVocab lays out the vocabulary the way SimpleTokenizer builds it.
func openAIVocab(merges [][2]string) map[string]int {
	vocab := make(map[string]int, 2*256+len(merges)+2)
	id := 0
	add := func(tok string) {
		vocab[tok] = id
		id++
	}
	// bytes_to_unicode's dict lists the printable bytes first, so its
	// values, and hence the ids, are in code point order, not byte order.
	for _, suffix := range [...]string{"", endOfWord} {
		for r, b := range runeBytes {
			if b >= 0 {
				add(string(rune(r)) + suffix)
			}
		}
	}
	for _, m := range merges {
		add(m[0] + m[1])
	}
	add(StartOfText)
	add(EndOfText)
	return vocab
}

// SpecialIDs returns the ids of <|startoftext|> and <|endoftext|>: SOT and
// EOT for CLIP's vocabulary.
func (t *Tokenizer) SpecialIDs() (sot, eot int) { return t.sot, t.eot }

// VocabSize returns one more than the largest token id.
func (t *Tokenizer) VocabSize() int { return t.tokens.len() }

// Merges returns a copy of the merges list in rank order, for storing with a
// model; New(t.Merges(), t.Vocab()) rebuilds an equivalent tokenizer.
func (t *Tokenizer) Merges() [][2]string {
	merges := make([][2]string, len(t.merges))
	for i, m := range t.merges {
		merges[i] = [2]string{t.tokens.at(int(m[0])), t.tokens.at(int(m[1]))}
	}
	return merges
}

// Vocab returns a copy of the vocabulary (token → id).
func (t *Tokenizer) Vocab() map[string]int {
	vocab := make(map[string]int, t.tokens.len())
	for id := range t.tokens.len() {
		if tok := t.tokens.at(id); tok != "" {
			vocab[tok] = id
		}
	}
	return vocab
}

// tokenTable holds the tokens by id in one string. A []string of them is
// as many pointers for the garbage collector to follow at every cycle:
// with CLIP's 49408 tokens and the merges' 97788 parts that took about
// 20 ms per collection in the browser, where collections are frequent (the
// heap is kept tight) and run on the engine's thread.
type tokenTable struct {
	data string
	end  []uint32 // where token i ends in data; it starts where token i−1 ends (0 for the first)
}

func newTokenTable(tokens []string) tokenTable {
	t := tokenTable{end: make([]uint32, len(tokens))}
	var b strings.Builder
	for i, tok := range tokens {
		b.WriteString(tok)
		t.end[i] = uint32(b.Len())
	}
	t.data = b.String()
	return t
}

func (t tokenTable) len() int { return len(t.end) }

// at returns token id, which must be in [0, len()).
func (t tokenTable) at(id int) string {
	var start uint32
	if id > 0 {
		start = t.end[id-1]
	}
	return t.data[start:t.end[id]]
}

// Encode returns the BPE ids of text without SOT and EOT and without a
// length limit: SimpleTokenizer.encode.
func (t *Tokenizer) Encode(text string) []int {
	return t.encode(text, -1)
}

// encode is Encode that may stop once it has at least limit ids (limit < 0:
// no limit). Pieces encode independently, so the prefix is the same.
func (t *Tokenizer) encode(text string, limit int) []int {
	var ids []int
	for piece := range pieces(Clean(text)) {
		if limit >= 0 && len(ids) >= limit {
			break
		}
		ids = t.appendPiece(ids, piece)
	}
	return ids
}

// appendPiece appends the ids of one pre-token. Only the exact lower-case
// special strings are special, as in Python, whose BPE cache is seeded with
// those two.
func (t *Tokenizer) appendPiece(ids []int, piece string) []int {
	switch {
	case len(piece) == 1:
		// Digits, most punctuation and one-letter words: one symbol, no
		// merge to look up, so skip the cache and its lock.
		return append(ids, int(t.byteEnd[piece[0]]))
	case piece == StartOfText:
		return append(ids, t.sot)
	case piece == EndOfText:
		return append(ids, t.eot)
	}
	if cached, ok := t.cache.get(piece); ok {
		return append(ids, cached...)
	}
	word := t.bpe(piece)
	t.cache.put(piece, word)
	return append(ids, word...)
}

// Tokenize returns the clip.tokenize row of text with truncate=True:
// SOT, the BPE ids and EOT, zero padded to contextLength ids. A longer
// sequence is cut to contextLength ids and its last id set to EOT. A
// contextLength below 1 gives an empty row (Python raises there).
func (t *Tokenizer) Tokenize(text string, contextLength int) []int {
	if contextLength < 1 {
		return []int{}
	}
	// contextLength-1 BPE ids are enough to fill the row and to know that
	// it is truncated, so a huge text is not encoded to its end.
	ids := t.encode(text, contextLength-1)
	row := make([]int, contextLength)
	row[0] = t.sot
	n := copy(row[1:], ids)
	if 1+n < contextLength {
		row[1+n] = t.eot
	} else {
		row[contextLength-1] = t.eot
	}
	return row
}

// TokenizeAll tokenizes every text into one row of contextLength ids, as
// clip.tokenize does for a list.
func (t *Tokenizer) TokenizeAll(texts []string, contextLength int) [][]int {
	rows := make([][]int, len(texts))
	for i, text := range texts {
		rows[i] = t.Tokenize(text, contextLength)
	}
	return rows
}

// Decode turns ids back into text like SimpleTokenizer.decode: the tokens'
// bytes are concatenated, decoded as UTF-8 with Python's errors="replace"
// (one U+FFFD per maximal invalid subsequence), and every "</w>" becomes a
// space. Special tokens come out as their literal text and padding id 0 as
// "!", exactly as in Python. Ids outside the vocabulary, where Python would
// raise KeyError, are skipped.
func (t *Tokenizer) Decode(ids []int) string {
	var buf []byte
	for _, id := range ids {
		if id < 0 || id >= t.tokens.len() {
			continue
		}
		for _, r := range t.tokens.at(id) {
			if int(r) < len(runeBytes) && runeBytes[r] >= 0 {
				buf = append(buf, byte(runeBytes[r]))
			} else {
				// Only possible with a foreign vocabulary (Python would
				// raise KeyError): keep the character itself.
				buf = utf8.AppendRune(buf, r)
			}
		}
	}
	return strings.ReplaceAll(pyDecodeUTF8(buf), endOfWord, " ")
}

// EOTIndex returns the index of the largest id in row, the first if it
// occurs more than once: the position CLIP's encode_text pools (argmax of
// the token ids). Because special tokens inside text keep their ids, that is
// not always the final EOT. It returns -1 for an empty row.
func EOTIndex(row []int) int {
	best := -1
	for i, id := range row {
		if best < 0 || id > row[best] {
			best = i
		}
	}
	return best
}

// pyDecodeUTF8 is bytes.decode("utf-8", errors="replace"): each maximal
// subpart of an ill-formed sequence (a valid prefix of a sequence that is cut
// short, or else one byte) becomes one U+FFFD. Go's own conversion replaces
// byte by byte, which gives more U+FFFD for a truncated sequence.
func pyDecodeUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var s strings.Builder
	s.Grow(len(b) + 8)
	for len(b) > 0 {
		r, w := utf8.DecodeRune(b)
		if r != utf8.RuneError || w > 1 {
			s.WriteRune(r)
			b = b[w:]
			continue
		}
		s.WriteRune(utf8.RuneError)
		b = b[maximalSubpart(b):]
	}
	return s.String()
}

// maximalSubpart returns the length of the longest prefix of b that starts
// a well-formed UTF-8 sequence (at least 1), for b that does not begin with
// a complete one.
func maximalSubpart(b []byte) int {
	var n int
	lo, hi := byte(0x80), byte(0xbf) // range of the second byte
	switch c := b[0]; {
	case 0xc2 <= c && c <= 0xdf:
		n = 2
	case c == 0xe0:
		n, lo = 3, 0xa0
	case c == 0xed:
		n, hi = 3, 0x9f
	case 0xe1 <= c && c <= 0xef:
		n = 3
	case c == 0xf0:
		n, lo = 4, 0x90
	case c == 0xf4:
		n, hi = 4, 0x8f
	case 0xf1 <= c && c <= 0xf3:
		n = 4
	default:
		return 1
	}
	i := 1
	for ; i < n && i < len(b); i++ {
		if b[i] < lo || b[i] > hi {
			break
		}
		lo, hi = 0x80, 0xbf
	}
	return i
}
