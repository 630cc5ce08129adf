package shards

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"unsafe"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/internal/half"
	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/tokenizer"
)

// Bundle is an opened bundle whose shards have all been verified. It
// implements clip.Weights: clip.Build(b.Config, b, backend) runs it.
type Bundle struct {
	Manifest *Manifest
	Config   clip.Config

	tok     *tokenizer.Tokenizer
	tensors map[string]*TensorEntry
	shards  map[string][]byte
	release []func() error // unmaps shards opened by Open
}

var _ clip.Weights = (*Bundle)(nil)

// NewBundle makes a bundle from a parsed manifest and the bytes of its
// shards, keyed by file name (a browser fetches them; see Open for files).
// Every shard the manifest lists must be present and match its size and
// SHA-256 (shards that m.VerifyShard accepted are not hashed again); the
// error names the first shard, in manifest order, that does not. The
// bundle keeps the byte slices: int8 and q4 matrices alias them.
func NewBundle(m *Manifest, shards map[string][]byte) (*Bundle, error) {
	return newBundle(m, shards, nil)
}

func newBundle(m *Manifest, shards map[string][]byte, release []func() error) (*Bundle, error) {
	errs := make([]error, len(m.Shards))
	var wg sync.WaitGroup
	for i, s := range m.Shards {
		data, ok := shards[s.File]
		if !ok {
			errs[i] = fmt.Errorf("shards: shard %s is missing", s.File)
			continue
		}
		wg.Go(func() { errs[i] = m.verifyShard(s.File, data) })
	}
	wg.Wait()
	b := &Bundle{Manifest: m, Config: m.Config, shards: shards, release: release,
		tensors: make(map[string]*TensorEntry, len(m.Tensors))}
	for _, err := range errs {
		if err != nil {
			b.Close()
			return nil, err
		}
	}
	for i := range m.Tensors {
		b.tensors[m.Tensors[i].Name] = &m.Tensors[i]
	}
	var err error
	if b.tok, err = m.NewTokenizer(); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Open reads the bundle in folder dir. Shards are memory-mapped where the
// platform allows (plain reads elsewhere) and verified before use; an error
// names the shard that is missing, truncated or corrupt. Matrices alias the
// mappings, so they are valid until Close.
func Open(dir string) (*Bundle, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("shards: %w", err)
	}
	m, err := ParseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	data := make(map[string][]byte, len(m.Shards))
	var release []func() error
	for _, s := range m.Shards {
		b, rel, err := mapFile(filepath.Join(dir, s.File))
		if err != nil {
			closeAll(release)
			return nil, fmt.Errorf("shards: shard %s: %w", s.File, err)
		}
		data[s.File] = b
		if rel != nil {
			release = append(release, rel)
		}
	}
	b, err := newBundle(m, data, release)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return b, nil
}

// OpenFS reads a bundle from the root of fsys, reading every shard into
// memory.
func OpenFS(fsys fs.FS) (*Bundle, error) {
	raw, err := fs.ReadFile(fsys, ManifestFile)
	if err != nil {
		return nil, fmt.Errorf("shards: %w", err)
	}
	m, err := ParseManifest(raw)
	if err != nil {
		return nil, err
	}
	data := make(map[string][]byte, len(m.Shards))
	for _, s := range m.Shards {
		if data[s.File], err = fs.ReadFile(fsys, s.File); err != nil {
			return nil, fmt.Errorf("shards: shard %s: %w", s.File, err)
		}
	}
	return NewBundle(m, data)
}

func closeAll(release []func() error) error {
	var errs []error
	for _, r := range release {
		errs = append(errs, r())
	}
	return errors.Join(errs...)
}

// Close releases the shard mappings; matrices from the bundle must not be
// used afterwards.
func (b *Bundle) Close() error {
	err := closeAll(b.release)
	b.release, b.shards = nil, nil
	return err
}

// Tokenizer returns the tokenizer stored in the manifest.
func (b *Bundle) Tokenizer() *tokenizer.Tokenizer { return b.tok }

// Tensor implements clip.Weights: the tensor as float32, which must have
// exactly this shape (a quantized matrix is dequantized).
func (b *Bundle) Tensor(name string, shape ...int) ([]float32, error) {
	t, err := b.lookup(name)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(t.Shape, shape) {
		return nil, fmt.Errorf("shards: tensor %q has shape %v, want %v", name, t.Shape, shape)
	}
	m, err := b.matrix(t)
	if err != nil {
		return nil, err
	}
	return m.Dequantize(), nil
}

// Matrix implements clip.Weights: the tensor viewed as [rows, cols] (its
// first dimension and the product of the others) in its stored scheme,
// int8 and q4 kept quantized, f16 widened to f32.
func (b *Bundle) Matrix(name string, rows, cols int) (*kernels.Matrix, error) {
	t, err := b.lookupMatrix(name, rows, cols)
	if err != nil {
		return nil, err
	}
	return b.matrix(t)
}

// MatrixBlocks implements clip.RowBlocks: the matrix as one block per
// stored part, each aliasing its shard's bytes (int8, q4, f32), so a
// matrix the shards split is not copied together.
func (b *Bundle) MatrixBlocks(name string, rows, cols int) ([]*kernels.Matrix, error) {
	t, err := b.lookupMatrix(name, rows, cols)
	if err != nil {
		return nil, err
	}
	blocks := make([]*kernels.Matrix, len(t.Parts))
	for i, p := range t.Parts {
		d, s := b.partBytes(p)
		if blocks[i], err = matrixOf(t, d, s, p.Rows[1]-p.Rows[0]); err != nil {
			return nil, fmt.Errorf("shards: tensor %q rows %v: %w", t.Name, p.Rows, err)
		}
	}
	return blocks, nil
}

// lookupMatrix is lookup for a tensor viewed as [rows, cols].
func (b *Bundle) lookupMatrix(name string, rows, cols int) (*TensorEntry, error) {
	t, err := b.lookup(name)
	if err != nil {
		return nil, err
	}
	if r, c, _ := rowsCols(t.Shape); r != rows || c != cols {
		return nil, fmt.Errorf("shards: tensor %q has shape %v, want [%d, %d]", name, t.Shape, rows, cols)
	}
	return t, nil
}

// partBytes returns a part's stored values and scales (nil if none),
// aliasing its shard.
func (b *Bundle) partBytes(p Part) (data, scales []byte) {
	shard := b.shards[p.Shard]
	if p.Scales != nil {
		scales = shard[p.Scales.Offsets[0]:p.Scales.Offsets[1]]
	}
	return shard[p.Data.Offsets[0]:p.Data.Offsets[1]], scales
}

func (b *Bundle) lookup(name string) (*TensorEntry, error) {
	if b.shards == nil {
		return nil, errors.New("shards: bundle is closed")
	}
	t, ok := b.tensors[name]
	if !ok {
		return nil, fmt.Errorf("shards: missing tensor %q", name)
	}
	return t, nil
}

// matrix assembles a tensor's parts: a tensor in one part aliases the shard
// bytes, a split one is copied together into buffers of its exact size
// (growing them by append would briefly hold a copy and a half: ViT-B/32's
// 25 MB token table would take 42 MB at once, and the browser's wasm
// memory never gives back its peak).
func (b *Bundle) matrix(t *TensorEntry) (*kernels.Matrix, error) {
	var data, scales []byte
	if len(t.Parts) > 1 {
		var nData, nScales int64
		for _, p := range t.Parts {
			nData += p.Data.Offsets[1] - p.Data.Offsets[0]
			if p.Scales != nil {
				nScales += p.Scales.Offsets[1] - p.Scales.Offsets[0]
			}
		}
		data = make([]byte, 0, nData)
		if nScales > 0 {
			scales = make([]byte, 0, nScales)
		}
	}
	for _, p := range t.Parts {
		d, s := b.partBytes(p)
		if len(t.Parts) == 1 {
			data, scales = d, s
			break
		}
		data, scales = append(data, d...), append(scales, s...)
	}
	rows, _, _ := rowsCols(t.Shape)
	m, err := matrixOf(t, data, scales, rows)
	if err != nil {
		return nil, fmt.Errorf("shards: tensor %q: %w", t.Name, err)
	}
	return m, nil
}

// matrixOf makes a kernels.Matrix of rows rows of t from stored bytes:
// int8, q4 and (where f32View can) f32 values alias data; scales and
// other values are decoded.
func matrixOf(t *TensorEntry, data, scales []byte, rows int) (*kernels.Matrix, error) {
	_, cols, err := rowsCols(t.Shape)
	if err != nil {
		return nil, err
	}
	m := &kernels.Matrix{Rows: rows, Cols: cols, Activations: t.Activations}
	switch t.Scheme {
	case F32, F16:
		m.Scheme = kernels.SchemeF32
		if t.DType == DTypeF32 && t.ScaleDType == "" {
			m.F32 = f32View(data)
		}
		if m.F32 == nil {
			m.F32, err = decodeFloats(t.DType, data)
		}
		if err == nil && t.ScaleDType != "" {
			err = scaleRows(m.F32, cols, t.ScaleDType, scales)
		}
	case Int8:
		m.Scheme = kernels.SchemeInt8
		m.Q8 = unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(data))), len(data))
		m.Scales, err = decodeFloats(t.ScaleDType, scales)
	case Q4:
		m.Scheme = kernels.SchemeQ4
		m.Q4 = data
		m.Scales, err = decodeFloats(t.ScaleDType, scales)
	default:
		err = fmt.Errorf("unknown scheme %q", t.Scheme)
	}
	if err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// scaleRows multiplies each row of vals (cols wide) by its scale, decoded
// from scales, in float32: a row-scaled f16 matrix.
func scaleRows(vals []float32, cols int, dt DType, scales []byte) error {
	s, err := decodeFloats(dt, scales)
	if err != nil {
		return err
	}
	if len(s)*cols != len(vals) {
		return fmt.Errorf("%d row scales for %d values of %d columns", len(s), len(vals), cols)
	}
	for i := range vals {
		vals[i] *= s[i/cols]
	}
	return nil
}

// littleEndian reports whether this machine stores numbers as shard files
// do.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// f32View returns F32 bytes as float32 values without copying them, or nil
// where it cannot: on a big-endian machine, or where b is not 4-byte
// aligned (the writer aligns F32 data within shards; shard buffers are
// aligned). Aliasing halves the memory of an f32 bundle in the browser,
// whose copy of the shards is the model's. The values must not be
// written: shards opened by Open are read-only mappings.
func f32View(b []byte) []float32 {
	if !littleEndian || len(b)%4 != 0 || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%4 != 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}

// decodeFloats widens little-endian F32 or F16 bytes to float32.
func decodeFloats(dt DType, b []byte) ([]float32, error) {
	if (dt != DTypeF32 && dt != DTypeF16) || len(b)%dt.size() != 0 {
		return nil, fmt.Errorf("%d bytes of %q", len(b), dt)
	}
	out := make([]float32, len(b)/dt.size())
	le := binary.LittleEndian
	if dt == DTypeF16 {
		for i := range out {
			out[i] = half.FromF16(le.Uint16(b[2*i:]))
		}
		return out, nil
	}
	for i := range out {
		out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
	}
	return out, nil
}
