package tokenizer

import (
	"strings"
	"sync"
)

// Cache bounds. Words longer than maxCachedWord bytes are not cached: they
// are rare, and a bound on the key size is what bounds the memory (at most
// 2*cacheGeneration entries of at most maxCachedWord bytes, about 16 MiB).
const (
	cacheGeneration = 1 << 15
	maxCachedWord   = 256
)

// wordCache maps a pre-token to its BPE ids. It is safe for concurrent use
// and bounded: entries go into the current generation; when that is full it
// becomes the old one and the previous old one is dropped. A hit in the old
// generation moves the entry back into the current one, so words in use
// survive, as in an LRU, at the cost of one map move per generation.
type wordCache struct {
	mu       sync.Mutex
	cur, old map[string][]int
}

func newWordCache() *wordCache {
	return &wordCache{cur: make(map[string][]int)}
}

// get returns the cached ids of word; callers must not modify them.
func (c *wordCache) get(word string) ([]int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ids, ok := c.cur[word]; ok {
		return ids, true
	}
	ids, ok := c.old[word]
	if ok {
		delete(c.old, word)
		c.insert(word, ids)
	}
	return ids, ok
}

// put caches ids for word; ids must not be modified afterwards.
func (c *wordCache) put(word string, ids []int) {
	if len(word) > maxCachedWord {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Clone: word is usually a substring of the caller's text, which must
	// not be kept alive by the cache.
	c.insert(strings.Clone(word), ids)
}

// insert adds an entry, rotating the generations when the current one is
// full. c.mu must be held.
func (c *wordCache) insert(word string, ids []int) {
	if len(c.cur) >= cacheGeneration {
		c.old = c.cur
		c.cur = make(map[string][]int)
	}
	c.cur[word] = ids
}
