//go:build !amd64

package avx2

import "testing"

// TestNewFails checks that other architectures get an error, not a backend.
func TestNewFails(t *testing.T) {
	if be, err := New(1); err == nil || be != nil {
		t.Fatalf("New on a non-amd64 build = %v, %v; want an error", be, err)
	}
}
