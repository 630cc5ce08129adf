package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clipwasm/clipwasm/internal/fixtures"
)

// rawSafetensors assembles a safetensors file from a header and data as
// given, valid or not.
func rawSafetensors(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

// TestBadInput feeds one malformed input per failure class and wants an
// error naming the file (and the tensor, where there is one), never a
// panic or a silent success.
func TestBadInput(t *testing.T) {
	fixtures.Require(t)
	hfFixture, err := os.ReadFile(fixtures.Path("hf", "hf_tiny_quickgelu", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	vitSD, err := os.ReadFile(fixtures.Path("openai", "vit_tiny", "vit_tiny.state_dict.pt"))
	if err != nil {
		t.Fatal(err)
	}
	png, err := os.ReadFile(fixtures.Path("images", "tiny_17x29.png"))
	if err != nil {
		t.Fatal(err)
	}
	strided, _, _ := stridedArchive(t)
	noise := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	f32 := func(name, key string, numel int, shape []int) kv {
		st := make([]int, len(shape))
		s := 1
		for i := len(shape) - 1; i >= 0; i-- {
			st[i], s = s, s*shape[i]
		}
		return kv{name, pTensor{storage: "FloatStorage", key: key, numel: numel, shape: shape, stride: st}}
	}
	zipWith := func(pkl []byte, recs map[string][]byte) []byte { return torchZipBytes(t, "bad", pkl, recs) }
	goodPickle := pickleOf(pODict{f32("w", "0", 2, []int{2})})

	// shardedDir writes a two-shard folder whose index names shard 2,
	// optionally without writing it or with a tensor it lacks.
	shardedDir := func(dir string, writeSecond bool, extraName string) {
		w := &Tensor{Name: "a", DType: F32, Shape: []int{1}, data: f32Bytes(1)}
		if err := WriteSafetensors(filepath.Join(dir, "s1.safetensors"), []*Tensor{w}, nil); err != nil {
			t.Fatal(err)
		}
		if writeSecond {
			b := &Tensor{Name: "b", DType: F32, Shape: []int{1}, data: f32Bytes(2)}
			if err := WriteSafetensors(filepath.Join(dir, "s2.safetensors"), []*Tensor{b}, nil); err != nil {
				t.Fatal(err)
			}
		}
		wm := map[string]string{"a": "s1.safetensors", "b": "s2.safetensors"}
		if extraName != "" {
			wm[extraName] = "s2.safetensors"
		}
		raw, _ := json.Marshal(map[string]any{"weight_map": wm})
		writeFile(t, filepath.Join(dir, "model.safetensors.index.json"), raw)
	}

	for _, tc := range []struct {
		name string
		file []byte           // written as bad.bin; nil means setup makes a folder
		dir  func(dir string) // fills a folder instead
		want []string         // substrings the error must contain
	}{
		{name: "truncated torch zip", file: vitSD[:1<<20], want: []string{"bad.bin", "not a readable zip archive"}},
		{name: "truncated small zip", file: strided[:len(strided)-30], want: []string{"bad.bin", "zip"}},
		{name: "truncated safetensors", file: hfFixture[:len(hfFixture)/2], want: []string{"bad.bin", "tensor \"", "outside the", "truncated"}},
		{name: "safetensors shorter than its length", file: []byte{1, 2, 3}, want: []string{"bad.bin", "unknown checkpoint format"}},
		{name: "header length beyond file", file: append(binary.LittleEndian.AppendUint64(nil, 1000), `{"a":1}`...), want: []string{"bad.bin", "header length 1000 beyond the end"}},
		{name: "header length absurd", file: append(binary.LittleEndian.AppendUint64(nil, 1<<62), `{}`...), want: []string{"bad.bin", "100 MiB limit"}},
		{name: "header not JSON", file: rawSafetensors(`{"a": [1, 2`, nil), want: []string{"bad.bin", "bad header JSON"}},
		{name: "offsets outside data", file: rawSafetensors(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, make([]byte, 8)), want: []string{"bad.bin", `tensor "w"`, "data_offsets [8, 16] outside the 8-byte data section"}},
		{name: "offsets reversed", file: rawSafetensors(`{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, make([]byte, 8)), want: []string{`tensor "w"`, "outside"}},
		{name: "dtype size mismatch", file: rawSafetensors(`{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}}`, make([]byte, 8)), want: []string{"bad.bin", `tensor "w"`, "hold 8 bytes, but F32 [2 2] needs 16"}},
		{name: "unknown dtype", file: rawSafetensors(`{"w":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 1)), want: []string{`tensor "w"`, `unsupported dtype "F8_E4M3"`}},
		{name: "huge shape", file: rawSafetensors(`{"w":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,4]}}`, make([]byte, 4)), want: []string{`tensor "w"`, "more than 2^50 elements"}},
		{name: "bad metadata", file: rawSafetensors(`{"__metadata__":{"a":1}}`, nil), want: []string{"bad.bin", "__metadata__"}},
		{name: "random bytes", file: noise, want: []string{"bad.bin", "unknown checkpoint format"}},
		{name: "png", file: png, want: []string{"bad.bin", "unknown checkpoint format (first bytes 89 50 4e 47"}},
		{name: "empty file", file: []byte{}, want: []string{"bad.bin", "empty file"}},
		{name: "legacy torch", file: append(append([]byte{}, legacyMagic...), '.'), want: []string{"bad.bin", "legacy pre-1.6 torch format not supported"}},
		{name: "zip without data.pkl", file: func() []byte {
			z := torchZipBytes(t, "x", nil, nil)
			return []byte(strings.ReplaceAll(string(z), "x/data.pkl", "x/other.pk"))
		}(), want: []string{"bad.bin", "no <name>/data.pkl"}},
		{name: "pickle bad opcode", file: zipWith(pickleOf(pODict{{"w", pRaw{0xff}}}), nil), want: []string{"bad.bin", "bad/data.pkl", "unknown opcode 0xff"}},
		{name: "pickle truncated", file: zipWith(goodPickle[:len(goodPickle)-5], map[string][]byte{"0": f32Bytes(1, 2)}), want: []string{"bad/data.pkl", "corrupt pickle", "truncated"}},
		{name: "pickle length beyond end", file: zipWith([]byte("\x80\x02X\xff\xff\xff\x7fab."), nil), want: []string{"bad/data.pkl", "declares 2147483647 bytes"}},
		{name: "pickle stack underflow", file: zipWith([]byte("\x80\x02u."), nil), want: []string{"bad/data.pkl", "corrupt pickle"}},
		{name: "pickle odd SETITEMS", file: zipWith([]byte("\x80\x02}(K\x01u."), nil), want: []string{"bad/data.pkl", "corrupt pickle"}},
		{name: "pickle not a dict", file: zipWith(pickleOf(pList{1, 2}), nil), want: []string{"bad/data.pkl holds a list, not a state dict"}},
		{name: "dict without tensors", file: zipWith(pickleOf(pDict{{"model", pDict{{"w", 1}}}, {"epoch", 2}}), nil), want: []string{"bad/data.pkl holds a dict with no tensors", `"model"`}},
		{name: "module without tensors", file: zipWith(pickleOf(pObj{mod: "__torch__.m", name: "M", attrs: []kv{{"training", true}}}), nil), want: []string{"TorchScript module __torch__.m.M has no tensors"}},
		{name: "missing storage record", file: zipWith(goodPickle, nil), want: []string{"bad.bin", `tensor "w"`, "bad/data/0 missing"}},
		{name: "storage record too small", file: zipWith(goodPickle, map[string][]byte{"0": f32Bytes(1)}), want: []string{`tensor "w"`, "holds 4 bytes", "declares 2 × FloatStorage = 8"}},
		{name: "view past storage", file: zipWith(pickleOf(pODict{f32("w", "0", 2, []int{3})}), map[string][]byte{"0": f32Bytes(1, 2)}), want: []string{`tensor "w"`, "runs past its 8-byte storage"}},
		{name: "unsupported tensor kind", file: zipWith(pickleOf(pODict{{"q", pRaw("ctorch._utils\n_rebuild_qtensor\n)R")}}), nil), want: []string{`tensor "q"`, "unsupported object torch._utils._rebuild_qtensor"}},
		{name: "unknown storage type", file: zipWith(pickleOf(pODict{{"w", pTensor{storage: "ComplexFloatStorage", key: "0", numel: 1, shape: []int{1}, stride: []int{1}}}}), nil), want: []string{"bad.bin", "unsupported storage type"}},
		{name: "empty folder", dir: func(string) {}, want: []string{"no checkpoint in folder"}},
		{name: "missing shard", dir: func(d string) { shardedDir(d, false, "") }, want: []string{"shard s2.safetensors named in model.safetensors.index.json", "no such file"}},
		{name: "tensor missing from shard", dir: func(d string) { shardedDir(d, true, "c") }, want: []string{`tensor "c"`, "missing from that shard"}},
		{name: "shard escapes folder", dir: func(d string) {
			writeFile(t, filepath.Join(d, "model.safetensors.index.json"), []byte(`{"weight_map":{"a":"../x.safetensors"}}`))
		}, want: []string{"leaves the folder"}},
		{name: "folder file of wrong kind", dir: func(d string) { writeFile(t, filepath.Join(d, "model.safetensors"), strided) }, want: []string{"model.safetensors: content is torch-state-dict, want safetensors"}},
		{name: "folder file corrupt", dir: func(d string) { writeFile(t, filepath.Join(d, "pytorch_model.bin"), noise) }, want: []string{"pytorch_model.bin", "unknown checkpoint format"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := t.TempDir()
			if tc.dir != nil {
				tc.dir(path)
			} else {
				path = writeFile(t, filepath.Join(path, "bad.bin"), tc.file)
			}
			c, err := Open(path)
			if err == nil {
				c.Close()
				t.Fatalf("Open succeeded with %d tensors, want an error", len(c.Tensors))
			}
			t.Log(err)
			if !strings.HasPrefix(err.Error(), "checkpoint: ") || !strings.Contains(err.Error(), path) {
				t.Errorf("error does not name the path: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tc.file != nil && isSafetensors(tc.file) {
				if _, _, err2 := ReadSafetensors(path); err2 == nil || err2.Error() != err.Error() {
					t.Errorf("ReadSafetensors error %v differs from Open's %v", err2, err)
				}
			}
		})
	}
}

func TestOpenMissingPath(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "nope.pt")); err == nil || !strings.Contains(err.Error(), "nope.pt") {
		t.Errorf("err = %v", err)
	}
}

func TestWriteSafetensorsRejects(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.safetensors")
	ok := &Tensor{Name: "a", DType: F32, Shape: []int{1}, data: f32Bytes(1)}
	for name, tensors := range map[string][]*Tensor{
		"duplicate":  {ok, ok},
		"short data": {{Name: "b", DType: F32, Shape: []int{2}, data: f32Bytes(1)}},
		"bad dtype":  {{Name: "c", DType: "X", Shape: []int{}, data: nil}},
		"reserved":   {{Name: "__metadata__", DType: U8, Shape: []int{}, data: []byte{1}}},
	} {
		if err := WriteSafetensors(path, tensors, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed writes left files: %v", entries)
	}
	if _, err := NewTensor("n", F16, []int{3}, make([]byte, 4)); err == nil {
		t.Error("NewTensor accepted 4 bytes for 3 F16 values")
	}
}
