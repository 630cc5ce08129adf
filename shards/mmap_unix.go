//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package shards

import (
	"os"
	"syscall"
)

// mapFile maps the file read-only; release unmaps it. An empty file gives
// empty data and no release.
func mapFile(path string) (data []byte, release func() error, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	// The mapping outlives the descriptor.
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.Size() == 0 {
		return []byte{}, nil, nil
	}
	if st.Size() != int64(int(st.Size())) {
		return nil, nil, syscall.EFBIG
	}
	data, err = syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return data, func() error { return syscall.Munmap(data) }, nil
}
