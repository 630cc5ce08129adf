//go:build js && wasm

package wasmsimd

import (
	"testing"
)

func TestSelfTest(t *testing.T) {
	for set, err := range SelfTest() {
		t.Logf("%s: %v", set, err)
	}
	t.Logf("selected: %s", Selected())
}
