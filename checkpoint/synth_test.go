package checkpoint

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clipwasm/clipwasm/internal/fixtures"
)

func writeFile(tb testing.TB, path string, data []byte) string {
	tb.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

func mustOpen(tb testing.TB, path string) *Checkpoint {
	tb.Helper()
	c, err := Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// sameTensors fails unless got holds exactly want's tensors, byte for byte.
func sameTensors(tb testing.TB, got, want map[string]*Tensor) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Errorf("%d tensors, want %d", len(got), len(want))
	}
	for name, w := range want {
		g := got[name]
		if g == nil {
			tb.Errorf("tensor %q missing", name)
			continue
		}
		if g.Name != name || g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) || !bytes.Equal(g.Bytes(), w.Bytes()) {
			tb.Errorf("tensor %q: got %q %s %v, want %s %v (or bytes differ)", name, g.Name, g.DType, g.Shape, w.DType, w.Shape)
		}
	}
}

func sortedTensors(m map[string]*Tensor) []*Tensor {
	var out []*Tensor
	for _, n := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[n])
	}
	return out
}

// TestStridedViews reads views that share storages, with offsets, strides,
// broadcasting, 0-d shapes, BF16/F64/I64 storages and the v3/parameter
// rebuild functions.
func TestStridedViews(t *testing.T) {
	data, want, shapes := stridedArchive(t)
	c := mustOpen(t, writeFile(t, filepath.Join(t.TempDir(), "views.pt"), data))
	if c.Format != FormatTorchStateDict {
		t.Errorf("format %q", c.Format)
	}
	if len(c.Tensors) != len(want) {
		t.Errorf("%d tensors, want %d: %v", len(c.Tensors), len(want), c.Names())
	}
	for name, w := range want {
		tt := c.Tensors[name]
		if tt == nil {
			t.Errorf("%q missing", name)
			continue
		}
		got, err := tt.Float32()
		if err != nil || !slices.Equal(got, w) || !slices.Equal(tt.Shape, shapes[name]) {
			t.Errorf("%q: %v %v (err %v), want %v %v", name, tt.Shape, got, err, shapes[name], w)
		}
	}
}

// TestTorchScriptTree checks dotted names through nested modules and that
// top-level 0-d integer buffers move to Extras.
func TestTorchScriptTree(t *testing.T) {
	c := mustOpen(t, writeFile(t, filepath.Join(t.TempDir(), "model.pt"), scriptArchive(t)))
	if c.Format != FormatTorchScript {
		t.Errorf("format %q", c.Format)
	}
	if got, want := c.Names(), []string{"block.proj.weight", "scale"}; !slices.Equal(got, want) {
		t.Errorf("names %v, want %v", got, want)
	}
	if v := c.Extras["context_length"]; v != int64(77) {
		t.Errorf("context_length extra = %v (%T)", v, v)
	}
	if w, _ := c.Tensors["block.proj.weight"].Float32(); !slices.Equal(w, []float32{5, 6}) {
		t.Errorf("block.proj.weight = %v", w)
	}
}

// TestShardedHF splits a fixture's tensors over two shards and an index.
func TestShardedHF(t *testing.T) {
	fixtures.Require(t)
	src := fixtures.Path("hf", "hf_tiny_quickgelu")
	orig, meta, err := ReadSafetensors(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	all := sortedTensors(orig)
	half := len(all) / 2
	index := map[string]any{"metadata": map[string]any{"total_size": 0}, "weight_map": map[string]string{}}
	for i, part := range [][]*Tensor{all[:half], all[half:]} {
		file := fmt.Sprintf("model-%05d-of-00002.safetensors", i+1)
		if err := WriteSafetensors(filepath.Join(dir, file), part, meta); err != nil {
			t.Fatal(err)
		}
		for _, tt := range part {
			index["weight_map"].(map[string]string)[tt.Name] = file
		}
	}
	raw, _ := json.Marshal(index)
	writeFile(t, filepath.Join(dir, "model.safetensors.index.json"), raw)
	cfg, _ := os.ReadFile(filepath.Join(src, "config.json"))
	writeFile(t, filepath.Join(dir, "config.json"), cfg)

	c := mustOpen(t, dir)
	if c.Format != FormatHFSafetensorsSharded || !bytes.Equal(c.Config, cfg) {
		t.Errorf("format %q, config %d bytes", c.Format, len(c.Config))
	}
	sameTensors(t, c.Tensors, orig)
}

// TestBF16Safetensors round-trips BF16 (and the other dtypes) through
// WriteSafetensors and both readers.
func TestBF16Safetensors(t *testing.T) {
	vals := []float32{1, -2.5, 0.15625, 3e38, float32(math.Inf(-1)), 0}
	var bf []byte
	for _, v := range vals {
		bf = binary.LittleEndian.AppendUint16(bf, uint16(math.Float32bits(v)>>16))
	}
	mk := func(name string, dt DType, shape []int, data []byte) *Tensor {
		tt, err := NewTensor(name, dt, shape, data)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	tensors := []*Tensor{
		mk("w.bf16", BF16, []int{2, 3}, bf),
		mk("f64", F64, []int{}, binary.LittleEndian.AppendUint64(nil, math.Float64bits(-0.5))),
		mk("ids", I64, []int{2}, binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 7), uint64(1<<40))),
		mk("i32", I32, []int{1}, binary.LittleEndian.AppendUint32(nil, uint32(0xfffffff9))),
		mk("mask", BOOL, []int{2}, []byte{1, 0}),
		mk("px", U8, []int{0, 3}, nil),
	}
	want := map[string][]float32{
		"w.bf16": {1, -2.5, 0.15625, math.Float32frombits(math.Float32bits(3e38) &^ 0xffff), float32(math.Inf(-1)), 0},
		"f64":    {-0.5}, "ids": {7, 1 << 40}, "i32": {-7}, "mask": {1, 0}, "px": {},
	}
	path := filepath.Join(t.TempDir(), "bf16.safetensors")
	if err := WriteSafetensors(path, tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	c := mustOpen(t, path)
	read, meta, err := ReadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Format != FormatSafetensors || meta["format"] != "pt" {
		t.Errorf("format %q, metadata %v", c.Format, meta)
	}
	for _, got := range []map[string]*Tensor{c.Tensors, read} {
		for _, tt := range tensors {
			g := got[tt.Name]
			v, err := g.Float32()
			if err != nil || !slices.Equal(v, want[tt.Name]) || g.DType != tt.DType || !slices.Equal(g.Shape, tt.Shape) {
				t.Errorf("%q: %s %v %v (err %v), want %s %v %v", tt.Name, g.DType, g.Shape, v, err, tt.DType, tt.Shape, want[tt.Name])
			}
		}
	}
}

// stateDict opens a fixture's torch.save state dict.
func stateDict(tb testing.TB, model string) *Checkpoint {
	tb.Helper()
	fixtures.Require(tb)
	return mustOpen(tb, fixtures.Path("openai", model, model+".state_dict.pt"))
}

// TestOpenCLIPFolder writes an OpenCLIP folder whose safetensors names all
// carry DataParallel's "module." prefix.
func TestOpenCLIPFolder(t *testing.T) {
	sd := stateDict(t, "vit_tiny")
	var prefixed []*Tensor
	for _, tt := range sortedTensors(sd.Tensors) {
		prefixed = append(prefixed, &Tensor{Name: "module." + tt.Name, DType: tt.DType, Shape: tt.Shape, data: tt.data})
	}
	dir := t.TempDir()
	cfg := []byte(`{"model_cfg": {"embed_dim": 64}}`)
	writeFile(t, filepath.Join(dir, "open_clip_config.json"), cfg)
	if err := WriteSafetensors(filepath.Join(dir, "open_clip_model.safetensors"), prefixed, nil); err != nil {
		t.Fatal(err)
	}
	c := mustOpen(t, dir)
	if c.Format != FormatOpenCLIPSafetensors || !bytes.Equal(c.OpenCLIPConfig, cfg) || c.Config != nil {
		t.Errorf("format %q, open_clip config %q, config %q", c.Format, c.OpenCLIPConfig, c.Config)
	}
	sameTensors(t, c.Tensors, sd.Tensors)
}

// TestTrainingCheckpoint rebuilds vit_tiny as an OpenCLIP training
// checkpoint, {"epoch", "name", "state_dict": {"module.<key>": ...},
// "optimizer"}: our pickle, written from the manifest's storage table, over
// the fixture's own storage records copied byte for byte.
func TestTrainingCheckpoint(t *testing.T) {
	sd := stateDict(t, "vit_tiny")
	fz, err := zip.OpenReader(fixtures.Path("openai", "vit_tiny", "vit_tiny.state_dict.pt"))
	if err != nil {
		t.Fatal(err)
	}
	defer fz.Close()
	recs := map[string][]byte{}
	for _, f := range fz.File {
		if dir, key, ok := strings.Cut(f.Name, "/data/"); ok && dir == "vit_tiny.state_dict" {
			rc, _ := f.Open()
			recs[key], _ = io.ReadAll(rc)
			rc.Close()
		}
	}
	var manifest struct {
		Tensors []struct {
			Key           string `json:"key"`
			Shape         []int  `json:"shape"`
			Record        string `json:"state_dict_record"`
			StorageType   string `json:"storage_type"`
			StorageOffset int    `json:"storage_offset"`
			Stride        []int  `json:"stride"`
		} `json:"tensors"`
	}
	raw, _ := os.ReadFile(fixtures.Path("openai", "vit_tiny", "manifest.json"))
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	elem := map[string]int{"HalfStorage": 2, "FloatStorage": 4, "LongStorage": 8}
	var inner pODict
	for _, mt := range manifest.Tensors {
		key := strings.TrimPrefix(mt.Record, "data/")
		inner = append(inner, kv{"module." + mt.Key, pTensor{
			storage: mt.StorageType, key: key, numel: len(recs[key]) / elem[mt.StorageType],
			offset: mt.StorageOffset, shape: mt.Shape, stride: mt.Stride,
		}})
	}
	// Optimizer state refers to its own storage; it must be skipped, not
	// read into Tensors.
	recs["opt0"] = f32Bytes(0, 0)
	root := pDict{
		{"epoch", 3},
		{"name", "2026_01_01-vit_tiny"},
		{"state_dict", inner},
		{"optimizer", pDict{
			{"state", pDict{{0, pDict{{"exp_avg", pTensor{storage: "FloatStorage", key: "opt0", numel: 2, shape: []int{2}, stride: []int{1}}}}}}},
			{"param_groups", pList{pDict{{"lr", 5e-4}, {"betas", pTuple{0.9, 0.98}}, {"params", pList{0}}}}},
		}},
		{"scaler", pDict{{"scale", 65536.0}}},
	}
	archive := torchZipBytes(t, "epoch_3", pickleOf(root), recs)

	file := writeFile(t, filepath.Join(t.TempDir(), "epoch_3.pt"), archive)
	c := mustOpen(t, file)
	if c.Format != FormatTorchStateDict {
		t.Errorf("format %q", c.Format)
	}
	if c.Extras["epoch"] != int64(3) || c.Extras["name"] != "2026_01_01-vit_tiny" {
		t.Errorf("extras %v", c.Extras)
	}
	sameTensors(t, c.Tensors, sd.Tensors)

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "open_clip_pytorch_model.bin"), archive)
	writeFile(t, filepath.Join(dir, "open_clip_config.json"), []byte(`{}`))
	if c := mustOpen(t, dir); c.Format != FormatOpenCLIPBin {
		t.Errorf("folder format %q, want %q", c.Format, FormatOpenCLIPBin)
	} else {
		sameTensors(t, c.Tensors, sd.Tensors)
	}
}

// TestPytorchModelBin is an HF folder holding a torch.save state dict.
func TestPytorchModelBin(t *testing.T) {
	sd := stateDict(t, "rn_tiny")
	raw, err := os.ReadFile(fixtures.Path("openai", "rn_tiny", "rn_tiny.state_dict.pt"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pytorch_model.bin"), raw)
	writeFile(t, filepath.Join(dir, "config.json"), []byte(`{"model_type": "clip"}`))
	c := mustOpen(t, dir)
	if c.Format != FormatHFPytorchBin || string(c.Config) != `{"model_type": "clip"}` {
		t.Errorf("format %q, config %q", c.Format, c.Config)
	}
	sameTensors(t, c.Tensors, sd.Tensors)
}
