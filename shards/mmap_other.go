//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package shards

import "os"

// mapFile reads the whole file: there is no mmap here (js/wasm, windows).
func mapFile(path string) (data []byte, release func() error, err error) {
	data, err = os.ReadFile(path)
	return data, nil, err
}
