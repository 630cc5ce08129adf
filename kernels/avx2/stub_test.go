//go:build !amd64

package avx2

import (
	"testing"

	"github.com/clipwasm/clipwasm/kernels"
)

// TestNewFails checks that other architectures get an error, not a
// backend, from every constructor.
func TestNewFails(t *testing.T) {
	for name, newBackend := range map[string]func(int) (kernels.Backend, error){"New": New, "NewAVX2": NewAVX2, "NewAVX512": NewAVX512} {
		if be, err := newBackend(1); err == nil || be != nil {
			t.Fatalf("%s on a non-amd64 build = %v, %v; want an error", name, be, err)
		}
	}
}
