//go:build !js

package wasmsimd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// watVersion is the wabt release the committed binaries come from. Other
// releases may encode the same source differently (and newer ones spell
// the relaxed int8 dot i32x4.relaxed_dot_i8x16_i7x16_add_s), so the check
// runs only with this one.
const watVersion = "1.0.32"

// TestWASMMatchesWAT checks that each committed .wasm is exactly what its
// .wat source assembles to, so the reviewed source is what runs. It needs
// wabt's wat2wasm on PATH (CI: apt-get install wabt) and is skipped
// without it; `make wasm-kernels-check` does the same check and fails
// instead.
func TestWASMMatchesWAT(t *testing.T) {
	tool, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Skip("wat2wasm not on PATH; install wabt " + watVersion + " to check the committed kernel binaries")
	}
	out, err := exec.Command(tool, "--version").Output()
	if err != nil {
		t.Fatalf("wat2wasm --version: %v", err)
	}
	if v := strings.TrimSpace(string(out)); v != watVersion {
		t.Skipf("wat2wasm is %s; the committed binaries come from %s", v, watVersion)
	}
	for _, m := range []struct {
		name  string
		flags []string
	}{
		{"simd128", nil},
		{"relaxed", []string{"--enable-relaxed-simd"}},
	} {
		dst := filepath.Join(t.TempDir(), m.name+".wasm")
		args := append(append([]string{}, m.flags...), m.name+".wat", "-o", dst)
		if msg, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
			t.Fatalf("wat2wasm %s: %v\n%s", m.name, err, msg)
		}
		want, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(m.name + ".wasm")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s.wasm differs from what %s.wat assembles to: run `make wasm-kernels` and commit both", m.name, m.name)
		}
	}
}
