// Package shards is the model bundle format: a folder (or URL prefix)
// holding manifest.json and shard files, each shard a valid safetensors file
// of bounded size, so that browsers can fetch, verify and cache them one by
// one. Write streams a model into a bundle; Open, OpenFS and NewBundle read
// one back and verify every shard's size and SHA-256 before use. A Bundle
// implements clip.Weights, so clip.Build runs it in any stored scheme.
//
// # Storage
//
// Every tensor has a scheme:
//   - f32: float32 values (dtype F32);
//   - f16: binary16 values (F16), widened to float32 on load; a matrix may
//     carry one F32 scale per row ([rows]), by which its rows are
//     multiplied in float32 on load (row-scaled f16: a BatchNorm folded
//     into an f16 convolution, stored exactly);
//   - int8: a matrix quantized symmetrically per row (output channel):
//     I8 values [rows, cols] plus one scale per row (F32 or F16);
//   - q4: a matrix in blocks of 32 along each row (ggml's q4_0 layout, see
//     kernels.SchemeQ4): U8 bytes [rows, cols/2] plus one F16 (or F32)
//     scale per block, [rows, cols/32].
//
// Matrices (GEMM weights and the token-embedding table) take the requested
// scheme. Under int8 and q4 an Options.Quantizer may store some a step more
// precisely (package shards/quantize keeps the matrices whose rounding
// costs the embeddings most per byte int8 under q4, f32 under int8), and a
// q4 matrix whose column count is not a multiple of 32 falls back to int8;
// a matrix stored in another scheme than the requested one says why in its
// manifest entry. The default, Rounding, rounds each weight to its nearest
// code, with the least-squares scale for each q4 block. Under f16 a matrix
// is stored exactly when binary16 holds its values, or holds them up to a
// float32 scale per row that the Source gives (Source.RowScaled); any
// other matrix is rounded to binary16 unless an Options.F16Policy keeps it
// f32 (package shards/quantize keeps those whose rounding would move the
// embeddings measurably). Vectors (biases,
// norms, embeddings added to the input, logit_scale) are written f32 in
// every scheme: they are well under 1% of a model's bytes, and rounding
// them costs accuracy out of proportion (BatchNorm-folded biases above
// all: the tiny ResNet fixture's f16 bundle reaches an image cosine of
// 0.9999875 with f16 vectors, 0.9999911 with f32 ones). Readers accept f16
// vectors too.
//
// # Shards
//
// Tensors are packed in order into shards of at most Options.ShardSize
// bytes, safetensors header included. A tensor that fits in a shard of its
// own is never split: it starts a new shard when the current one lacks room.
// A larger tensor is split by rows (its first dimension) into parts that
// fill shards, beginning with the free room of the current one; its scales
// are split with its rows. The only shard that may exceed the bound is one
// holding a single row that is itself larger than the bound. A part's
// safetensors keys are the tensor's name ("#p<N>" appended when it is split)
// for the values and that key plus "#scales" for the scales. Shard files are
// named by index and content hash, so they can be cached as immutable.
//
// The manifest records, for each part, its shard, its rows and the absolute
// byte range of its values and scales in the shard file, so readers slice
// verified shard bytes without parsing safetensors headers; the headers are
// there for other tools.
package shards

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/tokenizer"
)

// ManifestFile is the manifest's file name in a bundle folder.
const ManifestFile = "manifest.json"

// Format and Version identify the manifest schema.
const (
	Format  = "clipwasm-bundle"
	Version = 1
)

// Scheme is how a tensor is stored.
type Scheme string

// The storage schemes (see the package documentation).
const (
	F32  Scheme = "f32"
	F16  Scheme = "f16"
	Int8 Scheme = "int8"
	Q4   Scheme = "q4"
)

// DType is a safetensors element type.
type DType string

// The safetensors dtypes a bundle uses.
const (
	DTypeF32 DType = "F32"
	DTypeF16 DType = "F16"
	DTypeI8  DType = "I8"
	DTypeU8  DType = "U8"
)

// size returns the bytes per element, or 0 for an unknown dtype.
func (d DType) size() int {
	switch d {
	case DTypeF32:
		return 4
	case DTypeF16:
		return 2
	case DTypeI8, DTypeU8:
		return 1
	}
	return 0
}

// dtype returns the dtype that holds the scheme's values, or "" for an
// unknown scheme.
func (s Scheme) dtype() DType {
	switch s {
	case F32:
		return DTypeF32
	case F16:
		return DTypeF16
	case Int8:
		return DTypeI8
	case Q4:
		return DTypeU8
	}
	return ""
}

// quantized reports whether the scheme stores scales beside its values.
func (s Scheme) quantized() bool { return s == Int8 || s == Q4 }

// Kind says whether a tensor is a quantizable matrix.
type Kind string

// The tensor kinds.
const (
	KindMatrix Kind = "matrix" // a GEMM weight or embedding table, [rows, cols]
	KindVector Kind = "vector" // everything else, kept f32 or f16
)

// Manifest describes a bundle. It is stored as manifest.json.
type Manifest struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	// Quant is the scheme requested for matrices; ScaleDType the dtype
	// requested for their scales.
	Quant      Scheme        `json:"quant"`
	ScaleDType DType         `json:"scale_dtype,omitempty"`
	Config     clip.Config   `json:"config"`
	Tokenizer  TokenizerSpec `json:"tokenizer"`
	Tensors    []TensorEntry `json:"tensors"`
	Shards     []ShardEntry  `json:"shards"`

	// verified maps a shard name to the bytes VerifyShard accepted for it
	// (a verifiedBytes), so that NewBundle need not hash them again. Set
	// by ParseManifest.
	verified *sync.Map
}

// verifiedBytes identifies a byte slice by its first byte and length.
type verifiedBytes struct {
	first *byte
	n     int
}

// TokenizerSpec is the BPE tokenizer: its merges in rank order, each "a b"
// as in merges.txt, and its vocabulary (token → id). Vocab is omitted when
// it is exactly the layout tokenizer.New derives from the merges, which is
// the case for CLIP's own vocabulary (OpenAI's and Hugging Face's alike).
type TokenizerSpec struct {
	Merges []string       `json:"merges"`
	Vocab  map[string]int `json:"vocab,omitempty"`
}

// TensorEntry is one tensor of the bundle.
type TensorEntry struct {
	Name   string `json:"name"`
	Shape  []int  `json:"shape"`
	Kind   Kind   `json:"kind"`
	Scheme Scheme `json:"scheme"`
	// DType is the on-disk dtype of the values; ScaleDType that of the
	// scales of an int8 or q4 matrix.
	DType      DType `json:"dtype"`
	ScaleDType DType `json:"scale_dtype,omitempty"`
	// Fallback says why the tensor's scheme differs from the requested one
	// (q4 impossible, or the matrix kept more precise for its sensitivity).
	Fallback string `json:"fallback,omitempty"`
	// Activations is "f32" for an int8 or q4 matrix whose inputs must stay
	// float32 in backends that quantize activations per token (see
	// kernels.Matrix.Activations); empty leaves it to the backend.
	Activations kernels.ActivationPrecision `json:"activations,omitempty"`
	// Parts hold consecutive row ranges covering the first dimension; a
	// tensor that was not split has one.
	Parts []Part `json:"parts"`
}

// Part is a range of a tensor's rows stored in one shard.
type Part struct {
	Shard  string `json:"shard"`
	Rows   [2]int `json:"rows"` // [begin, end) along the first dimension
	Data   Span   `json:"data"`
	Scales *Span  `json:"scales,omitempty"`
}

// Span locates one safetensors tensor of a shard: its key in the header and
// its [begin, end) byte range from the start of the file.
type Span struct {
	Key     string   `json:"key"`
	Offsets [2]int64 `json:"offsets"`
}

// ShardEntry is one shard file: its name in the bundle folder, its size in
// bytes and the SHA-256 of its content, in lowercase hex.
type ShardEntry struct {
	File   string `json:"file"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// maxElems bounds a tensor's element count, so that a hostile manifest
// cannot overflow size arithmetic.
const maxElems = 1 << 40

// ParseManifest decodes and validates a manifest: the schema version, the
// config, the tokenizer, every tensor's scheme, dtypes and shape, and every
// part's rows and byte ranges against its shard's declared size.
func ParseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	if err := unmarshalJSON(data, &m); err != nil {
		return nil, fmt.Errorf("shards: %s: %w", ManifestFile, err)
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("shards: %s: %w", ManifestFile, err)
	}
	m.verified = new(sync.Map)
	return &m, nil
}

func (m *Manifest) validate() error {
	if m.Format != Format || m.Version != Version {
		return fmt.Errorf("format %q version %d, want %q version %d", m.Format, m.Version, Format, Version)
	}
	if err := m.Config.Validate(); err != nil {
		return err
	}
	shardSize := make(map[string]int64, len(m.Shards))
	for _, s := range m.Shards {
		if err := checkShardEntry(s); err != nil {
			return err
		}
		if _, dup := shardSize[s.File]; dup {
			return fmt.Errorf("shard %s listed twice", s.File)
		}
		shardSize[s.File] = s.Size
	}
	seen := make(map[string]bool, len(m.Tensors))
	for i := range m.Tensors {
		t := &m.Tensors[i]
		if seen[t.Name] {
			return fmt.Errorf("tensor %q listed twice", t.Name)
		}
		seen[t.Name] = true
		if err := t.validate(shardSize); err != nil {
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
	}
	return nil
}

func checkShardEntry(s ShardEntry) error {
	// A bare file name: no folders, nothing that could leave the bundle.
	if s.File == "" || s.File == "." || s.File == ".." || strings.ContainsAny(s.File, `/\`) || s.File == ManifestFile {
		return fmt.Errorf("bad shard file name %q", s.File)
	}
	if s.Size < 0 {
		return fmt.Errorf("shard %s: negative size %d", s.File, s.Size)
	}
	if b, err := hex.DecodeString(s.SHA256); err != nil || len(b) != sha256.Size || strings.ToLower(s.SHA256) != s.SHA256 {
		return fmt.Errorf("shard %s: sha256 %q is not 64 lowercase hex digits", s.File, s.SHA256)
	}
	return nil
}

// layout is the storage geometry of a tensor: rows along the first
// dimension, bytes of values and of scales per row.
type layout struct {
	rows                int
	rowBytes, rowScales int64
}

// layoutOf returns the geometry of a tensor of shape stored in scheme with
// the given dtypes, or an error if they are inconsistent.
func layoutOf(shape []int, scheme Scheme, dtype, scaleDType DType) (layout, error) {
	rows, cols, err := rowsCols(shape)
	if err != nil {
		return layout{}, err
	}
	want := scheme.dtype()
	if want == "" {
		return layout{}, fmt.Errorf("unknown scheme %q", scheme)
	}
	if dtype != want {
		return layout{}, fmt.Errorf("scheme %s stored as %q, want %s", scheme, dtype, want)
	}
	l := layout{rows: rows, rowBytes: int64(cols) * int64(dtype.size())}
	if scheme == F16 && scaleDType == DTypeF32 && len(shape) > 0 {
		l.rowScales = 4 // a row-scaled f16 matrix: one float32 scale per row
		return l, nil
	}
	if !scheme.quantized() {
		if scaleDType != "" {
			return layout{}, fmt.Errorf("scheme %s has no scales, but scale_dtype is %q", scheme, scaleDType)
		}
		return l, nil
	}
	if scaleDType != DTypeF32 && scaleDType != DTypeF16 {
		return layout{}, fmt.Errorf("scale_dtype %q, want F32 or F16", scaleDType)
	}
	if len(shape) == 0 {
		return layout{}, fmt.Errorf("scheme %s needs a matrix, got a scalar", scheme)
	}
	l.rowScales = int64(scaleDType.size())
	if scheme == Q4 {
		if cols%kernels.Q4Block != 0 {
			return layout{}, fmt.Errorf("q4 needs columns divisible by %d, got %d", kernels.Q4Block, cols)
		}
		l.rowBytes /= 2
		l.rowScales *= int64(cols / kernels.Q4Block)
	}
	return l, nil
}

// rowsCols views a shape as [rows, cols]: the first dimension and the
// product of the others (a scalar is one row of one value).
func rowsCols(shape []int) (rows, cols int, err error) {
	n := int64(1)
	for _, d := range shape {
		if d <= 0 || n*int64(d) > maxElems {
			return 0, 0, fmt.Errorf("bad shape %v", shape)
		}
		n *= int64(d)
	}
	if len(shape) == 0 {
		return 1, 1, nil
	}
	return shape[0], int(n) / shape[0], nil
}

func (t *TensorEntry) validate(shardSize map[string]int64) error {
	if t.Name == "" {
		return errors.New("empty name")
	}
	if t.Kind != KindMatrix && t.Kind != KindVector {
		return fmt.Errorf("unknown kind %q", t.Kind)
	}
	if t.Kind == KindVector && (t.Scheme.quantized() || t.ScaleDType != "") {
		return fmt.Errorf("a vector cannot be stored as %s with %q scales", t.Scheme, t.ScaleDType)
	}
	l, err := layoutOf(t.Shape, t.Scheme, t.DType, t.ScaleDType)
	if err != nil {
		return err
	}
	if t.Activations != "" && (t.Activations != kernels.ActivationsF32 || !t.Scheme.quantized()) {
		return fmt.Errorf("activations %q on a %s %s, want \"f32\" on an int8 or q4 matrix", t.Activations, t.Scheme, t.Kind)
	}
	if len(t.Parts) == 0 {
		return errors.New("no parts")
	}
	next := 0
	for i, p := range t.Parts {
		size, ok := shardSize[p.Shard]
		if !ok {
			return fmt.Errorf("part %d: unknown shard %q", i, p.Shard)
		}
		if p.Rows[0] != next || p.Rows[1] <= p.Rows[0] || p.Rows[1] > l.rows {
			return fmt.Errorf("part %d: rows %v do not continue from row %d of %d", i, p.Rows, next, l.rows)
		}
		next = p.Rows[1]
		n := int64(p.Rows[1] - p.Rows[0])
		if err := p.Data.check(n*l.rowBytes, size); err != nil {
			return fmt.Errorf("part %d values in shard %s: %w", i, p.Shard, err)
		}
		switch {
		case l.rowScales == 0 && p.Scales != nil:
			return fmt.Errorf("part %d: scheme %s has no scales", i, t.Scheme)
		case l.rowScales > 0 && p.Scales == nil:
			return fmt.Errorf("part %d: scales missing", i)
		case l.rowScales > 0:
			if err := p.Scales.check(n*l.rowScales, size); err != nil {
				return fmt.Errorf("part %d scales in shard %s: %w", i, p.Shard, err)
			}
		}
	}
	if next != l.rows {
		return fmt.Errorf("parts cover %d of %d rows", next, l.rows)
	}
	return nil
}

// check verifies that the span holds want bytes inside a file of size bytes.
func (s *Span) check(want, size int64) error {
	b, e := s.Offsets[0], s.Offsets[1]
	if b < 0 || e < b || e > size {
		return fmt.Errorf("byte range %v outside the %d-byte shard", s.Offsets, size)
	}
	if e-b != want {
		return fmt.Errorf("byte range %v holds %d bytes, want %d", s.Offsets, e-b, want)
	}
	return nil
}

// Shard returns the entry of the named shard file.
func (m *Manifest) Shard(name string) (ShardEntry, error) {
	i := slices.IndexFunc(m.Shards, func(s ShardEntry) bool { return s.File == name })
	if i < 0 {
		return ShardEntry{}, fmt.Errorf("shards: shard %s is not in the manifest", name)
	}
	return m.Shards[i], nil
}

// VerifyShard checks data against the manifest's size and SHA-256 for the
// named shard, with an error naming the shard on any mismatch. A manifest
// from ParseManifest remembers the slice it accepted: NewBundle given that
// same slice does not hash it again, so the caller must not modify it.
func (m *Manifest) VerifyShard(name string, data []byte) error {
	if err := m.verifyShard(name, data); err != nil {
		return err
	}
	if m.verified != nil {
		m.verified.Store(name, verifiedBytes{unsafe.SliceData(data), len(data)})
	}
	return nil
}

// verifyShard checks data unless VerifyShard already accepted this slice.
func (m *Manifest) verifyShard(name string, data []byte) error {
	if m.verified != nil {
		if v, ok := m.verified.Load(name); ok && v == (verifiedBytes{unsafe.SliceData(data), len(data)}) {
			return nil
		}
	}
	s, err := m.Shard(name)
	if err != nil {
		return err
	}
	if int64(len(data)) != s.Size {
		return fmt.Errorf("shards: shard %s has %d bytes, the manifest says %d (truncated or wrong file?)", name, len(data), s.Size)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != s.SHA256 {
		return fmt.Errorf("shards: shard %s is corrupt: sha256 %x, the manifest says %s", name, sum, s.SHA256)
	}
	return nil
}

// TotalSize returns the sum of the shard sizes: the bytes a client fetches
// besides the manifest.
func (m *Manifest) TotalSize() int64 {
	var n int64
	for _, s := range m.Shards {
		n += s.Size
	}
	return n
}

// NewTokenizer builds the tokenizer the manifest describes.
func (m *Manifest) NewTokenizer() (*tokenizer.Tokenizer, error) {
	merges := make([][2]string, len(m.Tokenizer.Merges))
	for i, line := range m.Tokenizer.Merges {
		a, b, ok := strings.Cut(line, " ")
		if !ok || a == "" || b == "" || strings.Contains(b, " ") {
			return nil, fmt.Errorf("shards: %s: tokenizer merge %d is %q, want two symbols separated by one space", ManifestFile, i, line)
		}
		merges[i] = [2]string{a, b}
	}
	tok, err := tokenizer.New(merges, m.Tokenizer.Vocab)
	if err != nil {
		return nil, fmt.Errorf("shards: %s: %w", ManifestFile, err)
	}
	return tok, nil
}

// tokenizerSpec stores tok's merges, and its vocabulary unless the merges
// imply it.
func tokenizerSpec(tok *tokenizer.Tokenizer) TokenizerSpec {
	merges := tok.Merges()
	spec := TokenizerSpec{Merges: make([]string, len(merges))}
	for i, m := range merges {
		spec.Merges[i] = m[0] + " " + m[1]
	}
	derived, err := tokenizer.New(merges, nil)
	if vocab := tok.Vocab(); err != nil || !maps.Equal(derived.Vocab(), vocab) {
		spec.Vocab = vocab
	}
	return spec
}
