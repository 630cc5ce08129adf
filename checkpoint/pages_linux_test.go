package checkpoint

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// rssFile returns the process's resident pages of mapped files, in bytes.
func rssFile(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TestReleasePages reads an 8 MiB tensor of a mapped safetensors file and
// checks that Float32 takes its pages out of the resident set, that the
// tensor still reads the same afterwards, and that a tensor in memory
// (not a mapping) is left alone.
func TestReleasePages(t *testing.T) {
	const n = 4 << 20 // F16 values: 8 MiB
	data := make([]byte, 2*n)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
		if i%2 == 1 {
			data[i] &= 0x3b // the high byte of a little-endian half: finite, below 1
		}
	}
	heap, err := NewTensor("w", F16, []int{n}, data)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "w.safetensors")
	if err := WriteSafetensors(path, []*Tensor{heap}, nil); err != nil {
		t.Fatal(err)
	}
	ck, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	mapped := ck.Tensors["w"]

	want, err := heap.Float32()
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := heap.Float32(); !slices.Equal(again, want) {
		t.Fatal("a tensor in memory reads differently after Float32")
	}
	var sum byte
	for _, b := range mapped.Bytes() { // fault every page in
		sum += b
	}
	before := rssFile(t)
	got, err := mapped.Float32()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	t.Logf("resident file pages %d KiB before Float32, %d KiB after (checksum %d)", before>>10, after>>10, sum)
	if before-after < 6<<20 {
		t.Errorf("Float32 released %d bytes of an 8 MiB mapped tensor, want ≥ 6 MiB", before-after)
	}
	if !slices.Equal(got, want) {
		t.Error("the mapped tensor reads other values than it was written with")
	}
	if again, _ := mapped.Float32(); !slices.Equal(again, want) {
		t.Error("the mapped tensor reads differently once its pages were released")
	}
}
