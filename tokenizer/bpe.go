package tokenizer

import "slices"

// byteRunes is GPT-2's bytes_to_unicode table: every byte maps to a
// printable code point, the printable Latin-1 bytes to themselves and the
// other 68 bytes to U+0100 and up, so that BPE symbols are strings without
// whitespace or control characters.
var byteRunes = func() (t [256]rune) {
	next := rune(256)
	for b := range 256 {
		if '!' <= b && b <= '~' || '¡' <= b && b <= '¬' || '®' <= b && b <= 'ÿ' {
			t[b] = rune(b)
		} else {
			t[b] = next
			next++
		}
	}
	return t
}()

// runeBytes inverts byteRunes; -1 marks code points outside the alphabet.
var runeBytes = func() (t [256 + 68]int16) {
	for i := range t {
		t[i] = -1
	}
	for b, r := range byteRunes {
		t[r] = int16(b)
	}
	return t
}()

// endOfWord is appended to the last symbol of every word.
const endOfWord = "</w>"

// merge is what a ranked pair of symbols turns into.
type merge struct {
	rank int32 // position in the merges list: lower merges first
	id   int32 // vocabulary id of the concatenated symbol
}

// pairKey packs two symbol ids into a map key.
func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// shortWord is the length, in bytes, up to which bpe uses the direct
// algorithm; above it the bookkeeping of bpeLong pays off (measured on
// random lower-case words: the two break even near 64 bytes).
const shortWord = 64

// bpe encodes one pre-token's UTF-8 bytes into vocabulary ids: each byte
// becomes its symbol, the last one with </w>, and merges apply as in
// SimpleTokenizer.bpe: take the lowest-ranked adjacent pair, merge all its
// non-overlapping occurrences left to right, repeat until no pair is ranked.
func (t *Tokenizer) bpe(word string) []int {
	n := len(word)
	sym := make([]int32, n)
	for i := range n - 1 {
		sym[i] = t.byteSym[word[i]]
	}
	sym[n-1] = t.byteEnd[word[n-1]]
	if n <= shortWord {
		sym = t.bpeShort(sym)
	} else {
		sym = t.bpeLong(sym)
	}
	ids := make([]int, len(sym))
	for i, s := range sym {
		ids[i] = int(s)
	}
	return ids
}

// bpeShort is SimpleTokenizer.bpe transcribed: quadratic, and the fastest
// choice for the short words that make up nearly all text.
func (t *Tokenizer) bpeShort(sym []int32) []int32 {
	for len(sym) > 1 {
		var best merge
		var left, right int32
		found := false
		for i := 0; i+1 < len(sym); i++ {
			if m, ok := t.ranks[pairKey(sym[i], sym[i+1])]; ok && (!found || m.rank < best.rank) {
				best, left, right, found = m, sym[i], sym[i+1], true
			}
		}
		if !found {
			break
		}
		// Merge in place: the write index never passes the read index.
		w := 0
		for i := 0; i < len(sym); w++ {
			if i+1 < len(sym) && sym[i] == left && sym[i+1] == right {
				sym[w] = best.id
				i += 2
			} else {
				sym[w] = sym[i]
				i++
			}
		}
		sym = sym[:w]
	}
	return sym
}

// bpeLong gives the same result as bpeShort in O(n log n), for words that
// can be a megabyte of letters. The symbols form a linked list, and the
// adjacent pairs wait in buckets by rank, with a heap of the ranks that have
// a bucket. A round takes the lowest rank's bucket, merges its pairs that
// are still intact from left to right, and only then queues the pairs those
// merges created, so that, as in Python, a round never sees its own
// results. A queued pair that an earlier merge destroyed is recognised by
// its rank no longer matching and dropped.
func (t *Tokenizer) bpeLong(sym []int32) []int32 {
	n := len(sym)
	next := make([]int32, n) // -1 ends the list
	prev := make([]int32, n) // -1 starts it
	for i := range n {
		next[i] = int32(i + 1)
		prev[i] = int32(i - 1)
	}
	next[n-1] = -1

	buckets := make(map[int32][]int32) // rank → left positions of its pairs
	var ranks rankHeap
	queue := func(pos int32) {
		if pos < 0 || next[pos] < 0 {
			return
		}
		m, ok := t.ranks[pairKey(sym[pos], sym[next[pos]])]
		if !ok {
			return
		}
		b, ok := buckets[m.rank]
		if !ok {
			ranks.push(m.rank)
		}
		buckets[m.rank] = append(b, pos)
	}
	for i := range n - 1 {
		queue(int32(i))
	}
	var merged []int32
	for len(ranks) > 0 {
		rank := ranks.pop()
		positions := buckets[rank]
		delete(buckets, rank)
		// Pairs join a bucket in the order rounds create them, not in text
		// order; Python merges left to right.
		slices.Sort(positions)
		merged = merged[:0]
		for _, pos := range positions {
			right := next[pos]
			if sym[pos] < 0 || right < 0 {
				continue // removed, or now last
			}
			m, ok := t.ranks[pairKey(sym[pos], sym[right])]
			if !ok || m.rank != rank {
				continue // merged into something else since it was queued
			}
			sym[pos] = m.id
			sym[right] = -1
			next[pos] = next[right]
			if next[right] >= 0 {
				prev[next[right]] = pos
			}
			merged = append(merged, pos)
		}
		// Merges in a round happen left to right and only remove nodes to
		// the right of the one they keep, so every pos here is still live.
		for _, pos := range merged {
			queue(prev[pos])
			queue(pos)
		}
	}
	out := sym[:0]
	for i := int32(0); i >= 0; i = next[i] {
		out = append(out, sym[i])
	}
	return out
}

// rankHeap is a binary min-heap of ranks, written out rather than using
// container/heap to avoid its interface calls.
type rankHeap []int32

func (h *rankHeap) push(r int32) {
	q := append(*h, r)
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if q[p] <= q[i] {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
	*h = q
}

func (h *rankHeap) pop() int32 {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q = q[:last]
	for i := 0; ; {
		l, small := 2*i+1, i
		if l < len(q) && q[l] < q[small] {
			small = l
		}
		if r := l + 1; r < len(q) && q[r] < q[small] {
			small = r
		}
		if small == i {
			break
		}
		q[i], q[small] = q[small], q[i]
		i = small
	}
	*h = q
	return top
}
