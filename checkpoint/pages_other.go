//go:build !linux

package checkpoint

// Only Linux gets its resident file pages released (see pages_linux.go):
// elsewhere the kernel keeps them until memory is short.

func addMapping([]byte)   {}
func dropMapping([]byte)  {}
func releasePages([]byte) {}
