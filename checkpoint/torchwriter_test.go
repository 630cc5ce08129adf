package checkpoint

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"maps"
	"math"
	"slices"
	"testing"
)

// A minimal protocol-2 pickle encoder and torch zip writer, enough to build
// the archives torch.save and torch.jit.save produce (same opcodes, same
// GLOBALs and persistent ids as the fixtures' data.pkl) for cases the
// fixtures do not cover.

// kv is one dict entry; keys are strings or ints.
type kv struct {
	k any
	v any
}

type (
	pDict  []kv // a plain dict: EMPTY_DICT, SETITEMS
	pODict []kv // collections.OrderedDict
	pList  []any
	pTuple []any
	// pTensor pickles as _rebuild_tensor_v2 over a persistent storage, or
	// _rebuild_tensor_v3 when dtype is set (an UntypedStorage view).
	pTensor struct {
		storage string // HalfStorage, FloatStorage, ...
		key     string
		numel   int
		offset  int
		shape   []int
		stride  []int
		dtype   string // torch dtype name for v3, else ""
		param   bool   // wrap in _rebuild_parameter
	}
	// pObj is a TorchScript module: GLOBAL, EMPTY_TUPLE, NEWOBJ, BUILD.
	pObj struct {
		mod, name string
		attrs     []kv
	}
	pRaw []byte // bytes copied verbatim, for corrupt pickles
)

type pickler struct{ bytes.Buffer }

func pickleOf(v any) []byte {
	var p pickler
	p.Write([]byte{0x80, 2})
	p.value(v)
	p.WriteByte('.')
	return p.Bytes()
}

func (p *pickler) global(mod, name string) {
	p.WriteByte('c')
	p.WriteString(mod + "\n" + name + "\n")
}

func (p *pickler) value(v any) {
	switch x := v.(type) {
	case nil:
		p.WriteByte('N')
	case bool:
		if x {
			p.WriteByte(0x88)
		} else {
			p.WriteByte(0x89)
		}
	case int:
		p.WriteByte('J')
		p.Write(binary.LittleEndian.AppendUint32(nil, uint32(int32(x))))
	case float64:
		p.WriteByte('G')
		p.Write(binary.BigEndian.AppendUint64(nil, math.Float64bits(x)))
	case string:
		p.WriteByte('X')
		p.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(x))))
		p.WriteString(x)
	case []int:
		t := make(pTuple, len(x))
		for i, d := range x {
			t[i] = d
		}
		p.value(t)
	case pTuple:
		if len(x) == 0 {
			p.WriteByte(')')
			return
		}
		p.WriteByte('(')
		for _, e := range x {
			p.value(e)
		}
		p.WriteByte('t')
	case pList:
		p.WriteString("](")
		for _, e := range x {
			p.value(e)
		}
		p.WriteByte('e')
	case pDict:
		p.WriteByte('}')
		p.items(x)
	case pODict:
		p.global("collections", "OrderedDict")
		p.WriteString(")R")
		p.items(x)
	case pTensor:
		if x.param {
			p.global("torch._utils", "_rebuild_parameter")
			p.WriteByte('(')
			x.param = false
			p.value(x)
			p.value(false)
			p.value(pODict{})
			p.WriteString("tR")
			return
		}
		if x.dtype != "" {
			p.global("torch._utils", "_rebuild_tensor_v3")
		} else {
			p.global("torch._utils", "_rebuild_tensor_v2")
		}
		p.WriteString("((")
		p.value("storage")
		p.global("torch", x.storage)
		p.value(x.key)
		p.value("cpu")
		p.value(x.numel)
		p.WriteString("tQ")
		p.value(x.offset)
		p.value(x.shape)
		p.value(x.stride)
		p.value(false)
		p.value(pODict{})
		if x.dtype != "" {
			p.global("torch", x.dtype)
		}
		p.WriteString("tR")
	case pObj:
		p.global(x.mod, x.name)
		p.WriteString(")\x81")
		p.WriteByte('}')
		p.items(x.attrs)
		p.WriteByte('b')
	case pRaw:
		p.Write(x)
	default:
		panic("pickler: unsupported value")
	}
}

func (p *pickler) items(items []kv) {
	if len(items) == 0 {
		return
	}
	p.WriteByte('(')
	for _, e := range items {
		p.value(e.k)
		p.value(e.v)
	}
	p.WriteByte('u')
}

// torchZip builds a torch.save-style archive: <prefix>/data.pkl, the
// records <prefix>/data/<key> and <prefix>/version, all stored
// uncompressed.
func torchZipBytes(tb testing.TB, prefix string, pkl []byte, records map[string][]byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, data []byte) {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: prefix + "/" + name, Method: zip.Store})
		if err != nil {
			tb.Fatal(err)
		}
		w.Write(data)
	}
	add("data.pkl", pkl)
	for _, k := range slices.Sorted(maps.Keys(records)) {
		add("data/"+k, records[k])
	}
	add("version", []byte("3\n"))
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func f32Bytes(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

// stridedArchive is a state dict whose tensors are views on shared storages:
// transposed, offset, stepped, broadcast and 0-d, in several dtypes and
// through every rebuild function, with the values each must read as.
func stridedArchive(tb testing.TB) ([]byte, map[string][]float32, map[string][]int) {
	tb.Helper()
	var twelve []float32
	for i := range 12 {
		twelve = append(twelve, float32(i))
	}
	bf16 := []byte{0x80, 0x3f, 0x20, 0xc0} // 1.0, -2.5
	f64 := binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.25))
	i64 := binary.LittleEndian.AppendUint64(nil, uint64(0xffff_ffff_ffff_fffd)) // -3
	f16 := []byte{0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00}                           // 1, -2, 2^-24
	records := map[string][]byte{"0": f32Bytes(twelve...), "1": bf16, "2": f64, "3": i64, "4": f16}
	fs := func(key string, off int, shape, stride []int) pTensor {
		return pTensor{storage: "FloatStorage", key: key, numel: 12, offset: off, shape: shape, stride: stride}
	}
	sd := pODict{
		{"full", fs("0", 0, []int{3, 4}, []int{4, 1})},
		{"transposed", fs("0", 0, []int{4, 3}, []int{1, 4})},
		{"offset", fs("0", 5, []int{2}, []int{1})},
		{"stepped", fs("0", 1, []int{2, 2}, []int{6, 2})},
		{"broadcast", fs("0", 2, []int{3}, []int{0})},
		{"scalar", fs("0", 11, []int{}, []int{})},
		{"param", pTensor{storage: "FloatStorage", key: "0", numel: 12, offset: 10, shape: []int{2}, stride: []int{1}, param: true}},
		{"bf16", pTensor{storage: "BFloat16Storage", key: "1", numel: 2, shape: []int{2}, stride: []int{1}}},
		{"f64", pTensor{storage: "DoubleStorage", key: "2", numel: 1, shape: []int{}, stride: []int{}}},
		{"i64", pTensor{storage: "LongStorage", key: "3", numel: 1, shape: []int{1}, stride: []int{1}}},
		{"v3_f16", pTensor{storage: "UntypedStorage", key: "4", numel: 6, shape: []int{3}, stride: []int{1}, dtype: "float16"}},
	}
	want := map[string][]float32{
		"full":       twelve,
		"transposed": {0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11},
		"offset":     {5, 6},
		"stepped":    {1, 3, 7, 9},
		"broadcast":  {2, 2, 2},
		"scalar":     {11},
		"param":      {10, 11},
		"bf16":       {1, -2.5},
		"f64":        {0.25},
		"i64":        {-3},
		"v3_f16":     {1, -2, 1.0 / (1 << 24)},
	}
	shapes := map[string][]int{
		"full": {3, 4}, "transposed": {4, 3}, "offset": {2}, "stepped": {2, 2}, "broadcast": {3},
		"scalar": {}, "param": {2}, "bf16": {2}, "f64": {}, "i64": {1}, "v3_f16": {3},
	}
	return torchZipBytes(tb, "strided", pickleOf(sd), records), want, shapes
}

// scriptArchive is a tiny TorchScript-style module tree: a root with a
// parameter, a 0-d int64 config buffer, a bool and a submodule with its own
// submodule.
func scriptArchive(tb testing.TB) []byte {
	tb.Helper()
	records := map[string][]byte{
		"0": f32Bytes(1, 2, 3, 4),
		"1": binary.LittleEndian.AppendUint64(nil, 77),
		"2": f32Bytes(5, 6),
	}
	leaf := pObj{mod: "__torch__.torch.nn.modules.linear", name: "Linear", attrs: []kv{
		{"training", false},
		{"weight", pTensor{storage: "FloatStorage", key: "2", numel: 2, shape: []int{1, 2}, stride: []int{2, 1}}},
		{"_is_full_backward_hook", nil},
	}}
	mid := pObj{mod: "__torch__.model.___torch_mangle_3", name: "Block", attrs: []kv{{"training", false}, {"proj", leaf}}}
	root := pObj{mod: "__torch__.model", name: "Model", attrs: []kv{
		{"scale", pTensor{storage: "FloatStorage", key: "0", numel: 4, shape: []int{2, 2}, stride: []int{2, 1}}},
		{"context_length", pTensor{storage: "LongStorage", key: "1", numel: 1, shape: []int{}, stride: []int{}}},
		{"training", false},
		{"block", mid},
	}}
	return torchZipBytes(tb, "script", pickleOf(root), records)
}
