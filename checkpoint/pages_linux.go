package checkpoint

import (
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// mappings holds the address ranges of the files openSource mapped, so
// that releasePages can tell a tensor in a mapping from one in memory.
var mappings = struct {
	sync.Mutex
	end map[uintptr]uintptr // start → end
}{end: map[uintptr]uintptr{}}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func addMapping(data []byte) {
	mappings.Lock()
	defer mappings.Unlock()
	mappings.end[addr(data)] = addr(data) + uintptr(len(data))
}

func dropMapping(data []byte) {
	mappings.Lock()
	defer mappings.Unlock()
	delete(mappings.end, addr(data))
}

// releasePages takes the whole pages of b out of the process's resident
// set if b lies in a file mapping. The bytes stay valid: the mapping is
// shared and read-only, so a later read faults them in again from the page
// cache. Without it every tensor once read stays resident: converting an
// 855 MB checkpoint would count 855 MB of file pages on top of the heap.
// (On anonymous memory the same advice would zero the bytes, hence the
// check.)
func releasePages(b []byte) {
	if len(b) == 0 {
		return
	}
	lo := addr(b)
	hi := lo + uintptr(len(b))
	mappings.Lock()
	inside := false
	for start, end := range mappings.end {
		inside = inside || start <= lo && hi <= end
	}
	mappings.Unlock()
	page := uintptr(os.Getpagesize())
	from, to := (lo+page-1)/page*page, hi/page*page
	if !inside || from >= to {
		return
	}
	// Advice only: an error leaves the pages resident, nothing more.
	_ = syscall.Madvise(b[from-lo:to-lo], syscall.MADV_DONTNEED)
}
