package checkpoint

import (
	"fmt"
	"io"
	"os"
)

// source is an opened checkpoint file with random access.
type source interface {
	io.ReaderAt
	Size() int64
	// slice returns n bytes at off. The result may alias a read-only
	// mapping that stays valid until Close.
	slice(off, n int64) ([]byte, error)
	Close() error
}

// checkRange rejects ranges outside [0, size) before anything is allocated
// for them, so that absurd declared sizes fail cleanly.
func checkRange(off, n, size int64) error {
	if off < 0 || n < 0 || off > size || n > size-off {
		return fmt.Errorf("byte range [%d, %d) outside the %d-byte file (truncated?)", off, off+n, size)
	}
	if n > int64(maxInt) {
		return fmt.Errorf("byte range of %d bytes too large for this platform", n)
	}
	return nil
}

const maxInt = int(^uint(0) >> 1)

// byteSource serves a file held in memory: a file mapping, or a test's bytes.
type byteSource struct {
	data    []byte
	release func() error // unmaps; nil when there is nothing to release
}

func (s *byteSource) Size() int64 { return int64(len(s.data)) }

func (s *byteSource) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	if off >= int64(len(s.data)) {
		return 0, io.EOF
	}
	n := copy(p, s.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (s *byteSource) slice(off, n int64) ([]byte, error) {
	if err := checkRange(off, n, int64(len(s.data))); err != nil {
		return nil, err
	}
	// Cap the capacity so that an append by a caller cannot reach the
	// bytes of the next tensor.
	return s.data[off : off+n : off+n], nil
}

func (s *byteSource) Close() error {
	if s.release == nil {
		return nil
	}
	err := s.release()
	s.release, s.data = nil, nil
	return err
}

// fileSource reads each requested range into fresh memory: the portable
// path, and the one ReadSafetensors uses because it has no Close.
type fileSource struct {
	f    *os.File
	size int64
}

func openFileSource(f *os.File) (*fileSource, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return &fileSource{f: f, size: st.Size()}, nil
}

func (s *fileSource) Size() int64 { return s.size }

func (s *fileSource) ReadAt(p []byte, off int64) (int, error) { return s.f.ReadAt(p, off) }

func (s *fileSource) slice(off, n int64) ([]byte, error) {
	if err := checkRange(off, n, s.size); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := s.f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("read %d bytes at %d: %w", n, off, err)
	}
	return b, nil
}

func (s *fileSource) Close() error { return s.f.Close() }
