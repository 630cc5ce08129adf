//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package checkpoint

import "os"

// openSource opens the file for plain reads: there is no mmap here
// (js/wasm, windows), so each tensor is read into memory once.
func openSource(path string) (source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	s, err := openFileSource(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}
