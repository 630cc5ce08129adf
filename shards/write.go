package shards

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/internal/half"
	"github.com/clipwasm/clipwasm/tokenizer"
)

// DefaultShardSize is the shard size bound when Options.ShardSize is 0.
const DefaultShardSize = 16 << 20

// Options control Write.
type Options struct {
	// Quant is the scheme for matrices: F32, F16, Int8 or Q4.
	Quant Scheme
	// ScaleDType is the dtype of int8 and q4 scales: DTypeF32 or DTypeF16;
	// empty means F16 under q4 and F32 under int8.
	ScaleDType DType
	// ShardSize bounds each shard file in bytes; 0 means DefaultShardSize.
	ShardSize int64
	// Quantizer chooses how matrices are stored under int8 and q4; nil
	// means Rounding.
	Quantizer Quantizer
	// F16Policy chooses, under f16, which matrices that binary16 cannot
	// hold exactly are kept f32; nil rounds them all.
	F16Policy F16Policy
}

// StoredScaleDType is the dtype int8 and q4 scales are stored in:
// ScaleDType, or its default for Quant.
func (o Options) StoredScaleDType() DType {
	switch {
	case o.ScaleDType != "":
		return o.ScaleDType
	case o.Quant == Q4:
		return DTypeF16
	}
	return DTypeF32
}

// RoundScale rounds s to the precision in which a bundle written with
// these options stores int8 and q4 scales.
func (o Options) RoundScale(s float32) float32 {
	if o.StoredScaleDType() == DTypeF16 {
		return half.FromF16(half.ToF16(s))
	}
	return s
}

func (o Options) validate() error {
	if o.Quant.dtype() == "" {
		return fmt.Errorf("unknown quantization %q (want f32, f16, int8 or q4)", o.Quant)
	}
	if o.ScaleDType != "" && o.ScaleDType != DTypeF32 && o.ScaleDType != DTypeF16 {
		return fmt.Errorf("unknown scale dtype %q (want F32 or F16)", o.ScaleDType)
	}
	if o.ShardSize < 0 {
		return fmt.Errorf("negative shard size %d", o.ShardSize)
	}
	return nil
}

// TensorStat reports how one tensor was stored.
type TensorStat struct {
	Name     string
	Scheme   Scheme
	Fallback string // why Scheme differs from the requested one, if it does
	// RelError is ‖stored − original‖₂ / ‖original‖₂ over the tensor.
	RelError float64
}

// Result is what Write produced.
type Result struct {
	Manifest *Manifest
	Tensors  []TensorStat // in write order
}

// Write converts tensors into a bundle at dir. It streams: each tensor's
// values are computed, stored and released before the next one is read, so
// memory holds about one tensor in its float32 and stored forms plus one
// shard. The bundle is built in a temporary folder beside dir, manifest
// last, and renamed into place only when complete; on failure the temporary
// folder is removed and dir is left as it was. An existing dir is replaced
// if it is empty or holds a bundle (a manifest.json), and refused otherwise.
func Write(dir string, cfg clip.Config, tok *tokenizer.Tokenizer, tensors []Source, opt Options) (res *Result, err error) {
	if err := opt.validate(); err != nil {
		return nil, fmt.Errorf("shards: %w", err)
	}
	if opt.ShardSize == 0 {
		opt.ShardSize = DefaultShardSize
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("shards: %w", err)
	}
	if tok == nil {
		return nil, errors.New("shards: no tokenizer")
	}
	dir = filepath.Clean(dir) // "out/" must not put the temporary folder inside out
	if err := checkDestination(dir); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".partial-")
	if err != nil {
		return nil, fmt.Errorf("shards: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	w := &packer{dir: tmp, limit: opt.ShardSize}
	res = &Result{Manifest: &Manifest{
		Format: Format, Version: Version, Quant: opt.Quant, Config: cfg, Tokenizer: tokenizerSpec(tok),
	}}
	if opt.Quant.quantized() {
		res.Manifest.ScaleDType = opt.StoredScaleDType()
	}
	entries := make([]*TensorEntry, 0, len(tensors))
	for _, src := range tensors {
		t, stat, err := w.addSource(src, opt)
		if err != nil {
			return nil, fmt.Errorf("shards: tensor %q: %w", src.Name, err)
		}
		entries = append(entries, t)
		res.Tensors = append(res.Tensors, stat)
	}
	if err := w.flush(); err != nil {
		return nil, err
	}
	m := res.Manifest
	for _, t := range entries {
		m.Tensors = append(m.Tensors, *t)
	}
	m.Shards = w.shards
	// What a reader will check, checked before anything is installed.
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("shards: the manifest written is invalid: %w", err)
	}
	raw, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return nil, fmt.Errorf("shards: %w", err)
	}
	if err := writeFile(filepath.Join(tmp, ManifestFile), raw, []byte("\n")); err != nil {
		return nil, err
	}
	if err := install(tmp, dir); err != nil {
		return nil, err
	}
	return res, nil
}

// addSource computes, encodes and packs one tensor.
func (w *packer) addSource(src Source, opt Options) (*TensorEntry, TensorStat, error) {
	if src.Float32 == nil {
		return nil, TensorStat{}, errors.New("no values")
	}
	vals, err := src.Float32()
	if err != nil {
		return nil, TensorStat{}, err
	}
	e, err := encode(src, vals, opt)
	if err != nil {
		return nil, TensorStat{}, err
	}
	// The manifest keeps a copy of the entry, not e: e holds the tensor's
	// bytes, which must be freed once their shard is written.
	t := new(TensorEntry)
	*t = e.entry
	if err := w.add(t, e); err != nil {
		return nil, TensorStat{}, err
	}
	return t, TensorStat{Name: t.Name, Scheme: t.Scheme, Fallback: t.Fallback, RelError: e.relError}, nil
}

// checkDestination refuses to replace anything but an empty folder or a
// bundle.
func checkDestination(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("shards: output %s: %w", dir, err)
	case len(entries) == 0:
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); err != nil {
		return fmt.Errorf("shards: output %s exists and is not a bundle (no %s); refusing to replace it", dir, ManifestFile)
	}
	return nil
}

// install renames the finished folder tmp to dir, moving an existing dir
// aside first and deleting it once the new one is in place.
func install(tmp, dir string) error {
	old := ""
	if _, err := os.Stat(dir); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("shards: moving the old %s aside: %w", dir, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return fmt.Errorf("shards: %w", err)
	}
	syncDir(filepath.Dir(dir))
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("shards: removing the old bundle: %w", err)
		}
	}
	return nil
}

// syncDir makes a rename in dir durable where the platform allows; it is
// best effort, as some file systems refuse to sync folders.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// writeFile writes the chunks to a new file at path and syncs it to disk.
func writeFile(path string, chunks ...[]byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("shards: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	for _, c := range chunks {
		bw.Write(c)
	}
	err = bw.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("shards: write %s: %w", path, err)
	}
	return nil
}

// packer fills shards with tensor parts in order.
type packer struct {
	dir    string
	limit  int64
	shards []ShardEntry

	// The shard being filled.
	entries   []stEntry
	dataLen   int64
	headerEst int64 // upper bound on the header's entries, commas included
}

// stEntry is one safetensors tensor of the shard being filled, and where in
// the manifest its location goes.
type stEntry struct {
	key    string
	dtype  DType
	shape  []int
	data   []byte
	t      *TensorEntry
	part   int
	scales bool
}

// shardOverhead bounds the bytes of a shard that are not entries or data:
// the length prefix, the braces and up to 7 bytes of padding.
const shardOverhead = 8 + 2 + 7

// entryEstimate bounds the header bytes of an entry with this key and a
// shape no wider than shape: offsets take at most 20 digits each.
func entryEstimate(key string, shape []int) int64 {
	k, _ := json.Marshal(key)
	s, _ := json.Marshal(shape)
	return int64(len(k)+len(s)+2*20) + int64(len(`:{"dtype":"F32","shape":,"data_offsets":[,]},`))
}

// add packs the tensor's rows into shards, splitting them when they do not
// fit in one shard (see the package documentation).
func (w *packer) add(t *TensorEntry, e *encoded) error {
	l := e.layout
	split := false
	// The header bytes of one more part: the key with the longest suffix,
	// the shape with the most rows.
	partHeader := entryEstimate(t.Name+"#p0000000000", e.partShape(l.rows))
	if l.rowScales > 0 {
		partHeader += entryEstimate(t.Name+"#p0000000000#scales", e.scaleShape(l.rows))
	}
	rowSize := l.rowBytes + l.rowScales
	room := func() int64 { return w.limit - shardOverhead - w.headerEst - w.dataLen - partHeader }
	// A tensor that fits in an empty shard is not split.
	if whole := int64(l.rows) * rowSize; whole > room() {
		if len(w.entries) > 0 && whole <= w.limit-shardOverhead-partHeader {
			if err := w.flush(); err != nil {
				return err
			}
		}
		split = whole > room()
	}
	for r := 0; r < l.rows; {
		n := int(min(int64(l.rows-r), max(0, room())/rowSize))
		if n == 0 {
			if len(w.entries) > 0 {
				if err := w.flush(); err != nil {
					return err
				}
				continue
			}
			n = 1 // one row larger than the bound: a shard of its own
		}
		key := t.Name
		if split {
			key = fmt.Sprintf("%s#p%d", t.Name, len(t.Parts))
		}
		t.Parts = append(t.Parts, Part{Rows: [2]int{r, r + n}})
		w.push(stEntry{key: key, dtype: t.DType, shape: e.partShape(n),
			data: e.data[int64(r)*l.rowBytes : int64(r+n)*l.rowBytes], t: t, part: len(t.Parts) - 1})
		if l.rowScales > 0 {
			w.push(stEntry{key: key + "#scales", dtype: t.ScaleDType, shape: e.scaleShape(n),
				data: e.scales[int64(r)*l.rowScales : int64(r+n)*l.rowScales], t: t, part: len(t.Parts) - 1, scales: true})
		}
		r += n
	}
	return nil
}

func (w *packer) push(s stEntry) {
	w.entries = append(w.entries, s)
	w.dataLen += int64(len(s.data))
	w.headerEst += entryEstimate(s.key, s.shape)
}

// partShape is the safetensors shape of n rows of the tensor's values: the
// tensor's shape with n rows (q4 bytes are [rows, cols/2]).
func (e *encoded) partShape(n int) []int {
	if len(e.entry.Shape) == 0 {
		return []int{}
	}
	if e.entry.Scheme == Q4 {
		return []int{n, int(e.layout.rowBytes)}
	}
	return append([]int{n}, e.entry.Shape[1:]...)
}

// scaleShape is the shape of n rows' scales: [n] for int8, [n, blocks]
// for q4.
func (e *encoded) scaleShape(n int) []int {
	if e.entry.Scheme == Q4 {
		return []int{n, int(e.layout.rowScales) / e.entry.ScaleDType.size()}
	}
	return []int{n}
}

// flush writes the shard being filled, if any, and records its name and the
// byte ranges of its entries in their manifest parts.
func (w *packer) flush() error {
	if len(w.entries) == 0 {
		return nil
	}
	var h bytes.Buffer
	h.WriteByte('{')
	var off int64
	seen := make(map[string]bool, len(w.entries))
	for i, s := range w.entries {
		if seen[s.key] {
			return fmt.Errorf("shards: two tensors would share the key %q in one shard", s.key)
		}
		seen[s.key] = true
		if i > 0 {
			h.WriteByte(',')
		}
		k, _ := json.Marshal(s.key)
		shape, _ := json.Marshal(s.shape)
		end := off + int64(len(s.data))
		fmt.Fprintf(&h, `%s:{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, k, s.dtype, shape, off, end)
		off = end
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	base := 8 + int64(h.Len())
	sum := sha256.New()
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(h.Len()))
	chunks := [][]byte{lenBuf[:], h.Bytes()}
	for _, s := range w.entries {
		chunks = append(chunks, s.data)
	}
	for _, c := range chunks {
		sum.Write(c)
	}
	digest := hex.EncodeToString(sum.Sum(nil))
	name := fmt.Sprintf("shard-%03d-%s.safetensors", len(w.shards), digest[:12])
	if err := writeFile(filepath.Join(w.dir, name), chunks...); err != nil {
		return err
	}
	off = base
	for _, s := range w.entries {
		p := &s.t.Parts[s.part]
		p.Shard = name
		span := Span{Key: s.key, Offsets: [2]int64{off, off + int64(len(s.data))}}
		if s.scales {
			p.Scales = &span
		} else {
			p.Data = span
		}
		off += int64(len(s.data))
	}
	w.shards = append(w.shards, ShardEntry{File: name, Size: off, SHA256: digest})
	w.entries, w.dataLen, w.headerEst = nil, 0, 0
	return nil
}
