package checkpoint

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"slices"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// maxPickleSize bounds data.pkl. CLIP's are kilobytes and the tensors
// themselves live in data/ records, so anything near this is hostile.
const maxPickleSize = 256 << 20

// maxModuleDepth bounds the TorchScript module tree walk; a hostile pickle
// can make a module its own descendant.
const maxModuleDepth = 256

// legacyMagic starts every pre-1.6 torch.save file: PROTO 2, then LONG1 of
// torch's magic number 0x1950a86a20f9469cfc6c.
var legacyMagic = []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}

// torchZip is a PyTorch zip archive (torch.save since 1.6, TorchScript).
type torchZip struct {
	src      source
	files    map[string]*zip.File
	prefix   string            // "<archive name>/"
	storages map[string][]byte // storage records already read, by record name
	copied   int64             // bytes gathered for non-contiguous views so far
}

// maxCopyOverFile is how far gathered copies of strided views may exceed
// the file size in total.
const maxCopyOverFile = 64 << 20

// readTorchZip reads the tensors of a torch.save or TorchScript archive.
// The format is FormatTorchScript when data.pkl holds a module tree, else
// FormatTorchStateDict.
func readTorchZip(src source) (Format, map[string]*Tensor, map[string]any, error) {
	zr, err := zip.NewReader(src, src.Size())
	// ErrInsecurePath only flags names like "../x"; records are looked up by
	// name and never extracted, so such an archive is still readable.
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return "", nil, nil, fmt.Errorf("not a readable zip archive (truncated or corrupt?): %w", err)
	}
	z := &torchZip{src: src, files: make(map[string]*zip.File, len(zr.File)), storages: map[string][]byte{}}
	var pkl []string
	for _, f := range zr.File {
		z.files[f.Name] = f
		// The archive keeps everything under one top-level folder whose
		// name varies; TorchScript adds code/**/*.pkl and constants.pkl.
		if dir, base, ok := strings.Cut(f.Name, "/"); ok && dir != "" && base == "data.pkl" {
			pkl = append(pkl, f.Name)
		}
	}
	switch len(pkl) {
	case 0:
		return "", nil, nil, errors.New("zip archive has no <name>/data.pkl: not a PyTorch checkpoint")
	case 1:
	default:
		return "", nil, nil, fmt.Errorf("zip archive has several data.pkl records %v", pkl)
	}
	z.prefix = strings.TrimSuffix(pkl[0], "data.pkl")
	if f := z.files[z.prefix+"byteorder"]; f != nil {
		b, err := z.readSmall(f, 16)
		if err != nil {
			return "", nil, nil, err
		}
		if order := strings.TrimSpace(string(b)); order != "little" {
			return "", nil, nil, fmt.Errorf("byteorder record says %q: only little-endian checkpoints are supported", order)
		}
	}
	data, err := z.readSmall(z.files[pkl[0]], maxPickleSize)
	if err != nil {
		return "", nil, nil, err
	}
	root, err := loadTorchPickle(data)
	if err != nil {
		return "", nil, nil, fmt.Errorf("%s: %w", pkl[0], err)
	}
	return z.collect(root)
}

// readSmall reads a whole record of at most limit bytes (checked against the
// declared size before allocating).
func (z *torchZip) readSmall(f *zip.File, limit uint64) ([]byte, error) {
	if f.UncompressedSize64 > limit {
		return nil, fmt.Errorf("%s: %d bytes exceeds the %d-byte limit", f.Name, f.UncompressedSize64, limit)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	return b, nil
}

// loadTorchPickle unpickles data.pkl with the torch classes installed.
func loadTorchPickle(data []byte) (any, error) {
	if err := checkPickle(data); err != nil {
		return nil, err
	}
	u := pickle.NewUnpickler(bytes.NewReader(data))
	u.FindClass = findClass
	u.PersistentLoad = persistentLoad
	return unpickle(&u)
}

// collect turns the unpickled root into named tensors. A root module object
// is a TorchScript archive; a dict is a state dict, possibly wrapped as
// {"state_dict": ..., "epoch": ...} by training loops (OpenCLIP).
func (z *torchZip) collect(root any) (Format, map[string]*Tensor, map[string]any, error) {
	if m, ok := root.(*module); ok {
		return z.collectModule(m)
	}
	return z.collectDict(root)
}

// collectModule names a TorchScript module tree's tensors by their dotted
// attribute paths, as torch.jit.load(...).state_dict() does.
func (z *torchZip) collectModule(m *module) (Format, map[string]*Tensor, map[string]any, error) {
	tensors := map[string]*Tensor{}
	extras := map[string]any{}
	refs := map[string]*tensorRef{}
	if err := m.walk("", refs, map[*module]bool{}, 0); err != nil {
		return "", nil, nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(refs)) {
		t, err := z.tensor(name, refs[name])
		if err != nil {
			return "", nil, nil, err
		}
		tensors[name] = t
	}
	// Traced CLIP models bake their config into top-level 0-d integer
	// buffers (input_resolution, context_length, vocab_size); they are
	// settings, not weights, and a torch.save state dict lacks them.
	for _, a := range m.attrs {
		t := tensors[a.name]
		if t == nil || len(t.Shape) != 0 || (t.DType != I64 && t.DType != I32) {
			continue
		}
		if t.DType == I64 {
			extras[a.name] = int64(binary.LittleEndian.Uint64(t.data))
		} else {
			extras[a.name] = int64(int32(binary.LittleEndian.Uint32(t.data)))
		}
		delete(tensors, a.name)
	}
	if len(tensors) == 0 {
		return "", nil, nil, fmt.Errorf("TorchScript module %s has no tensors", m.class)
	}
	return FormatTorchScript, tensors, extras, nil
}

// collectDict reads a state dict, unwrapping {"state_dict": ...}.
func (z *torchZip) collectDict(root any) (Format, map[string]*Tensor, map[string]any, error) {
	tensors := map[string]*Tensor{}
	extras := map[string]any{}
	entries, ok := dictEntries(root)
	if !ok {
		return "", nil, nil, fmt.Errorf("%sdata.pkl holds %s, not a state dict or a TorchScript module", z.prefix, describe(root))
	}
	for _, e := range entries {
		if e.key == "state_dict" {
			if inner, ok := dictEntries(e.value); ok {
				for _, o := range entries {
					if v, ok := scalar(o.value); ok {
						extras[o.key] = v
					}
				}
				entries = inner
				break
			}
		}
	}
	for _, e := range entries {
		switch v := e.value.(type) {
		case *tensorRef:
			t, err := z.tensor(e.key, v)
			if err != nil {
				return "", nil, nil, err
			}
			tensors[e.key] = t
		case *opaque:
			// Silently dropping a weight would surface much later as a
			// wrong model; name the unsupported tensor kind instead.
			if strings.HasPrefix(v.class, "torch.") {
				return "", nil, nil, fmt.Errorf("tensor %q: unsupported object %s", e.key, v.class)
			}
		}
	}
	if len(tensors) == 0 {
		var keys []string
		for i, e := range entries {
			if i == 8 {
				keys = append(keys, "…")
				break
			}
			keys = append(keys, e.key)
		}
		return "", nil, nil, fmt.Errorf("%sdata.pkl holds a dict with no tensors (keys %q): not a state dict", z.prefix, keys)
	}
	return FormatTorchStateDict, tensors, extras, nil
}

type entry struct {
	key   string
	value any
}

// dictEntries lists a pickled dict's string-keyed entries in order.
func dictEntries(v any) ([]entry, bool) {
	var out []entry
	switch d := v.(type) {
	case *types.OrderedDict:
		for el := d.List.Front(); el != nil; el = el.Next() {
			e := el.Value.(*types.OrderedDictEntry)
			if k, ok := e.Key.(string); ok {
				out = append(out, entry{k, e.Value})
			}
		}
	case *types.Dict:
		for _, e := range *d {
			if k, ok := e.Key.(string); ok {
				out = append(out, entry{k, e.Value})
			}
		}
	default:
		return nil, false
	}
	return out, true
}

// scalar returns v as an Extras value if it is a plain Python scalar.
func scalar(v any) (any, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case float64, string, bool:
		return x, true
	}
	return nil, false
}

func describe(v any) string {
	switch x := v.(type) {
	case *opaque:
		return "an object of class " + x.class
	case *opaqueClass:
		return "class " + x.name
	case nil:
		return "None"
	case int, *big.Int:
		return "an int"
	case string:
		return "a string"
	case *types.List:
		return "a list"
	case *types.Tuple:
		return "a tuple"
	}
	return fmt.Sprintf("a value of Go type %T", v)
}

// findClass resolves the GLOBALs of a torch pickle. Anything unknown
// becomes an opaque object so that unrelated parts of a checkpoint
// (optimizer state, numpy scalars, argparse namespaces) do not stop the
// load; only the state dict's own values are inspected.
func findClass(mod, name string) (any, error) {
	switch {
	case mod == "torch._utils":
		switch name {
		case "_rebuild_tensor", "_rebuild_tensor_v2":
			return rebuildTensor{}, nil
		case "_rebuild_tensor_v3":
			return rebuildTensor{v3: true}, nil
		case "_rebuild_parameter", "_rebuild_parameter_with_state":
			return rebuildParameter{}, nil
		}
	case mod == "torch" || mod == "torch.cuda":
		if dt, ok := storageTypes[name]; ok {
			return &storageType{name: name, dtype: dt}, nil
		}
		if dt, ok := torchDTypes[name]; ok {
			return dt, nil
		}
	case mod == "__torch__" || strings.HasPrefix(mod, "__torch__."):
		return &moduleClass{name: mod + "." + name}, nil
	}
	return &opaqueClass{name: mod + "." + name}, nil
}

// storageTypes maps legacy typed-storage class names (still what torch 2.x
// writes in persistent ids) to dtypes. UntypedStorage counts bytes.
var storageTypes = map[string]DType{
	"HalfStorage": F16, "FloatStorage": F32, "BFloat16Storage": BF16,
	"DoubleStorage": F64, "LongStorage": I64, "IntStorage": I32,
	"ByteStorage": U8, "BoolStorage": BOOL, "UntypedStorage": U8,
}

// torchDTypes maps the torch dtype GLOBALs that _rebuild_tensor_v3 passes.
var torchDTypes = map[string]DType{
	"float16": F16, "half": F16, "float32": F32, "float": F32,
	"bfloat16": BF16, "float64": F64, "double": F64, "int64": I64,
	"long": I64, "int32": I32, "int": I32, "uint8": U8, "bool": BOOL,
}

type storageType struct {
	name  string
	dtype DType
}

// storageRef is a persistent-id reference to a data/<key> record.
type storageRef struct {
	typ   *storageType
	key   string
	numel int64
}

// persistentLoad resolves ('storage', type, key, location, numel).
func persistentLoad(pid any) (any, error) {
	t, ok := pid.(*types.Tuple)
	if !ok || t.Len() < 5 || t.Get(0) != "storage" {
		return nil, fmt.Errorf("%w persistent id %s", errUnsupported, describe(pid))
	}
	typ, ok := t.Get(1).(*storageType)
	if !ok {
		return nil, fmt.Errorf("%w storage type %s", errUnsupported, describe(t.Get(1)))
	}
	var key string
	switch k := t.Get(2).(type) {
	case string:
		key = k
	case int:
		key = fmt.Sprint(k)
	default:
		return nil, fmt.Errorf("persistent id: bad storage key %s", describe(k))
	}
	n, ok := toInt(t.Get(4))
	if !ok || n < 0 || n > maxElems {
		return nil, fmt.Errorf("persistent id: bad storage size %v", t.Get(4))
	}
	return &storageRef{typ: typ, key: key, numel: n}, nil
}

// tensorRef is a tensor as the pickle describes it: a view on a storage.
type tensorRef struct {
	storage       *storageRef
	dtype         DType
	offset        int64
	shape, stride []int64
}

// rebuildTensor implements torch._utils._rebuild_tensor{,_v2,_v3}:
// (storage, storage_offset, size, stride, ...), v3 adding the dtype as
// argument 6 for untyped storages.
type rebuildTensor struct{ v3 bool }

func (r rebuildTensor) Call(args ...any) (any, error) {
	if len(args) < 4 || (r.v3 && len(args) < 7) {
		return nil, fmt.Errorf("_rebuild_tensor: %d arguments", len(args))
	}
	s, ok := args[0].(*storageRef)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor: storage argument is %s", describe(args[0]))
	}
	off, ok := toInt(args[1])
	shape, ok2 := toInts(args[2])
	stride, ok3 := toInts(args[3])
	if !ok || !ok2 || !ok3 || len(shape) != len(stride) {
		return nil, fmt.Errorf("_rebuild_tensor: bad offset/size/stride %v %v %v", args[1], args[2], args[3])
	}
	dt := s.typ.dtype
	if r.v3 {
		d, ok := args[6].(DType)
		if !ok {
			return nil, fmt.Errorf("%w tensor dtype %s", errUnsupported, describe(args[6]))
		}
		dt = d
	}
	return &tensorRef{storage: s, dtype: dt, offset: off, shape: shape, stride: stride}, nil
}

// rebuildParameter implements torch._utils._rebuild_parameter: an
// nn.Parameter is its data tensor here.
type rebuildParameter struct{}

func (rebuildParameter) Call(args ...any) (any, error) {
	if len(args) < 1 {
		return nil, errors.New("_rebuild_parameter: no arguments")
	}
	if _, ok := args[0].(*tensorRef); !ok {
		return nil, fmt.Errorf("_rebuild_parameter: data is %s", describe(args[0]))
	}
	return args[0], nil
}

func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case *big.Int:
		if x.IsInt64() {
			return x.Int64(), true
		}
	}
	return 0, false
}

func toInts(v any) ([]int64, bool) {
	t, ok := v.(*types.Tuple)
	if !ok || t.Len() > maxRank {
		return nil, false
	}
	out := make([]int64, t.Len())
	for i := range out {
		if out[i], ok = toInt(t.Get(i)); !ok {
			return nil, false
		}
	}
	return out, true
}

// moduleClass is a TorchScript class (__torch__.…): NEWOBJ makes a module,
// BUILD fills its attributes.
type moduleClass struct{ name string }

func (c *moduleClass) PyNew(...any) (any, error) { return &module{class: c.name}, nil }

type attr struct {
	name  string
	value any
}

type module struct {
	class string
	attrs []attr
}

// PySetState receives BUILD's attribute dict. Objects with a custom
// __setstate__ (a tuple state) carry no state-dict entries.
func (m *module) PySetState(state any) error {
	if d, ok := state.(*types.Dict); ok {
		for _, e := range *d {
			if k, ok := e.Key.(string); ok {
				m.attrs = append(m.attrs, attr{k, e.Value})
			}
		}
	}
	return nil
}

// walk collects tensor attributes under their dotted paths, as
// torch.jit.load(...).state_dict() names them.
func (m *module) walk(prefix string, out map[string]*tensorRef, seen map[*module]bool, depth int) error {
	if depth > maxModuleDepth {
		return fmt.Errorf("module tree deeper than %d at %q", maxModuleDepth, prefix)
	}
	if seen[m] {
		return nil
	}
	seen[m] = true
	for _, a := range m.attrs {
		switch v := a.value.(type) {
		case *tensorRef:
			out[prefix+a.name] = v
		case *module:
			if err := v.walk(prefix+a.name+".", out, seen, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// opaqueClass stands for any other GLOBAL; calling or instantiating it
// yields an opaque object that accepts BUILD.
type opaqueClass struct{ name string }

func (c *opaqueClass) Call(...any) (any, error)  { return &opaque{class: c.name}, nil }
func (c *opaqueClass) PyNew(...any) (any, error) { return &opaque{class: c.name}, nil }

type opaque struct{ class string }

func (*opaque) PySetState(any) error { return nil }

// tensor materialises a view as contiguous bytes: a slice of the storage
// record when the view is already contiguous, else a gathered copy.
func (z *torchZip) tensor(name string, r *tensorRef) (*Tensor, error) {
	es := int64(r.dtype.Size())
	shape := make([]int, len(r.shape))
	for i, d := range r.shape {
		if d < 0 || d > maxElems {
			return nil, fmt.Errorf("tensor %q: bad size %v", name, r.shape)
		}
		shape[i] = int(d)
	}
	n, err := numel(shape)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	// span is one past the largest element index the view touches.
	span := int64(0)
	if n > 0 {
		span = 1
		for i, d := range r.shape {
			s := r.stride[i]
			if s < 0 || s > maxElems {
				return nil, fmt.Errorf("tensor %q: bad stride %v", name, r.stride)
			}
			// Both factors are ≤ 2^50 but their product may not be.
			if d > 1 && s > 0 && (d-1) > maxElems/s {
				return nil, fmt.Errorf("tensor %q: stride %v overflows", name, r.stride)
			}
			span += (d - 1) * s
		}
	}
	storageBytes := r.storage.numel * int64(r.storage.typ.dtype.Size())
	if r.offset < 0 || r.offset > maxElems || (r.offset+span)*es > storageBytes {
		return nil, fmt.Errorf("tensor %q: view (offset %d, size %v, stride %v) of %s runs past its %d-byte storage %q",
			name, r.offset, r.shape, r.stride, r.dtype, storageBytes, r.storage.key)
	}
	buf, err := z.storage(r.storage)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	t := &Tensor{Name: name, DType: r.dtype, Shape: shape}
	if contiguous(r.shape, r.stride) {
		t.data = buf[r.offset*es : (r.offset+n)*es : (r.offset+n)*es]
		return t, nil
	}
	// Broadcast views (stride 0) can expand a tiny storage enormously, so
	// copies are budgeted against the file size.
	z.copied += n * es
	if z.copied > z.src.Size()+maxCopyOverFile {
		return nil, fmt.Errorf("tensor %q: strided views expand to more than the file size + %d MiB", name, maxCopyOverFile>>20)
	}
	t.data = gather(buf, r, n, es)
	return t, nil
}

func contiguous(shape, stride []int64) bool {
	want := int64(1)
	for i := len(shape) - 1; i >= 0; i-- {
		if shape[i] == 0 {
			return true
		}
		if shape[i] != 1 && stride[i] != want {
			return false
		}
		want *= shape[i]
	}
	return true
}

// gather copies a strided view into row-major order, stepping the source
// offset like an odometer so that each element costs O(1).
func gather(buf []byte, r *tensorRef, n, es int64) []byte {
	var shape, stride []int64
	for i, d := range r.shape {
		if d != 1 { // size-1 dimensions would only add carries
			shape, stride = append(shape, d), append(stride, r.stride[i])
		}
	}
	out := make([]byte, n*es)
	idx := make([]int64, len(shape))
	src := r.offset
	for i := int64(0); i < n; i++ {
		copy(out[i*es:(i+1)*es], buf[src*es:])
		for d := len(idx) - 1; d >= 0; d-- {
			idx[d]++
			src += stride[d]
			if idx[d] < shape[d] {
				break
			}
			src -= shape[d] * stride[d]
			idx[d] = 0
		}
	}
	return out
}

// storage returns the bytes of a storage record, read once however many
// tensors view it: a slice of the file for stored (uncompressed) records,
// which is what torch writes, or a decompressed copy otherwise.
func (z *torchZip) storage(s *storageRef) ([]byte, error) {
	name := z.prefix + "data/" + s.key
	if b, ok := z.storages[name]; ok {
		return b, nil
	}
	f := z.files[name]
	if f == nil {
		return nil, fmt.Errorf("storage record %s missing from the archive", name)
	}
	want := s.numel * int64(s.typ.dtype.Size())
	if f.UncompressedSize64 != uint64(want) {
		return nil, fmt.Errorf("storage record %s holds %d bytes, but the pickle declares %d × %s = %d",
			name, f.UncompressedSize64, s.numel, s.typ.name, want)
	}
	var b []byte
	if f.Method == zip.Store && f.CompressedSize64 == f.UncompressedSize64 {
		off, err := f.DataOffset()
		if err != nil {
			return nil, fmt.Errorf("storage record %s: %w", name, err)
		}
		if b, err = z.src.slice(off, want); err != nil {
			return nil, fmt.Errorf("storage record %s: %w", name, err)
		}
	} else {
		// Deflate expands at most ~1032:1; a larger claim is a lie that
		// must not reach make().
		if want > int64(f.CompressedSize64)*1100+1024 {
			return nil, fmt.Errorf("storage record %s: %d bytes cannot come from %d compressed bytes", name, want, f.CompressedSize64)
		}
		var err error
		if b, err = z.readSmall(f, uint64(want)); err != nil {
			return nil, fmt.Errorf("storage record: %w", err)
		}
		if int64(len(b)) != want {
			return nil, fmt.Errorf("storage record %s: decompressed to %d bytes, want %d", name, len(b), want)
		}
	}
	z.storages[name] = b
	return b, nil
}
