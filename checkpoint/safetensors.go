package checkpoint

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// maxHeaderSize is the safetensors format's own limit on the JSON header.
const maxHeaderSize = 100 << 20

// metadataKey is the reserved header entry for free-form string metadata.
const metadataKey = "__metadata__"

// ReadSafetensors reads every tensor of a safetensors file into memory and
// returns them with the header's __metadata__ (nil if absent). The header
// is validated: JSON syntax, known dtypes, data_offsets inside the file and
// sizes equal to numel × dtype size.
func ReadSafetensors(path string) (map[string]*Tensor, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %w", err)
	}
	defer f.Close()
	src, err := openFileSource(f)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	tensors, meta, err := parseSafetensors(src)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	return tensors, meta, nil
}

// isSafetensors reports whether the first bytes look like a safetensors
// header (a length, then a JSON object), whatever the declared length: a
// bad length must be reported as such, not as an unknown format.
func isSafetensors(head []byte) bool {
	return len(head) >= 9 && head[8] == '{'
}

// stEntry is one tensor of a safetensors header.
type stEntry struct {
	DType   DType    `json:"dtype"`
	Shape   *[]int64 `json:"shape"`
	Offsets []int64  `json:"data_offsets"`
}

func parseSafetensors(src source) (map[string]*Tensor, map[string]string, error) {
	size := src.Size()
	var lenBuf [8]byte
	if _, err := src.ReadAt(lenBuf[:], 0); err != nil {
		return nil, nil, fmt.Errorf("safetensors: file of %d bytes too short for the header length", size)
	}
	hlen := binary.LittleEndian.Uint64(lenBuf[:])
	if hlen > maxHeaderSize {
		return nil, nil, fmt.Errorf("safetensors: header length %d exceeds the format's 100 MiB limit", hlen)
	}
	if int64(hlen) > size-8 {
		return nil, nil, fmt.Errorf("safetensors: header length %d beyond the end of the %d-byte file (truncated?)", hlen, size)
	}
	header, err := src.slice(8, int64(hlen))
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors header: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(header, &raw); err != nil {
		return nil, nil, fmt.Errorf("safetensors: bad header JSON: %w", err)
	}
	dataStart := 8 + int64(hlen)
	dataLen := size - dataStart

	var meta map[string]string
	tensors := make(map[string]*Tensor, len(raw))
	// Sorted, so that the error a broken file reports does not vary.
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		msg := raw[name]
		if name == metadataKey {
			if err := json.Unmarshal(msg, &meta); err != nil {
				return nil, nil, fmt.Errorf("safetensors: %s is not a string→string map: %w", metadataKey, err)
			}
			continue
		}
		t, err := safetensorsEntry(src, name, msg, dataStart, dataLen)
		if err != nil {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: %w", name, err)
		}
		tensors[name] = t
	}
	return tensors, meta, nil
}

func safetensorsEntry(src source, name string, msg json.RawMessage, dataStart, dataLen int64) (*Tensor, error) {
	var e stEntry
	if err := json.Unmarshal(msg, &e); err != nil {
		return nil, fmt.Errorf("bad header entry: %w", err)
	}
	size := e.DType.Size()
	if size == 0 {
		return nil, fmt.Errorf("unsupported dtype %q", e.DType)
	}
	if e.Shape == nil {
		return nil, errors.New("header entry has no shape")
	}
	if len(*e.Shape) > maxRank {
		return nil, fmt.Errorf("rank %d exceeds %d", len(*e.Shape), maxRank)
	}
	shape := make([]int, len(*e.Shape))
	for i, d := range *e.Shape {
		if d < 0 || d > maxElems {
			return nil, fmt.Errorf("bad dimension %d in shape %v", d, *e.Shape)
		}
		shape[i] = int(d)
	}
	n, err := numel(shape)
	if err != nil {
		return nil, err
	}
	if len(e.Offsets) != 2 {
		return nil, fmt.Errorf("data_offsets %v: want [begin, end]", e.Offsets)
	}
	begin, end := e.Offsets[0], e.Offsets[1]
	if begin < 0 || end < begin || end > dataLen {
		return nil, fmt.Errorf("data_offsets [%d, %d] outside the %d-byte data section (truncated file?)", begin, end, dataLen)
	}
	if want := n * int64(size); end-begin != want {
		return nil, fmt.Errorf("data_offsets [%d, %d] hold %d bytes, but %s %v needs %d", begin, end, end-begin, e.DType, shape, want)
	}
	data, err := src.slice(dataStart+begin, end-begin)
	if err != nil {
		return nil, err
	}
	return &Tensor{Name: name, DType: e.DType, Shape: shape, data: data}, nil
}

// WriteSafetensors writes tensors, in the given order, and metadata to a
// safetensors file. It writes a temporary file beside path and renames it,
// so that readers never see a partial file.
func WriteSafetensors(path string, tensors []*Tensor, metadata map[string]string) (err error) {
	header, err := safetensorsHeader(tensors, metadata)
	if err != nil {
		return fmt.Errorf("checkpoint: write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("checkpoint: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// bufio.Writer errors are sticky: Flush reports any earlier one.
	w := bufio.NewWriterSize(tmp, 1<<20)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(header)))
	w.Write(lenBuf[:])
	w.Write(header)
	for _, t := range tensors {
		w.Write(t.data)
	}
	if err = w.Flush(); err != nil {
		return fmt.Errorf("checkpoint: write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("checkpoint: write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("checkpoint: write %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("checkpoint: write %s: %w", path, err)
	}
	return nil
}

// safetensorsHeader builds the JSON header by hand to keep the tensors in
// the caller's order (a Go map would sort them), padded with spaces to a
// multiple of 8 bytes as the reference writer does so that data stays
// aligned.
func safetensorsHeader(tensors []*Tensor, metadata map[string]string) ([]byte, error) {
	var h bytes.Buffer
	h.WriteByte('{')
	if len(metadata) > 0 {
		m, err := json.Marshal(metadata)
		if err != nil {
			return nil, err
		}
		h.WriteString(`"` + metadataKey + `":`)
		h.Write(m)
	}
	seen := make(map[string]bool, len(tensors))
	var off int64
	for _, t := range tensors {
		if t.Name == "" || t.Name == metadataKey || seen[t.Name] {
			return nil, fmt.Errorf("tensor name %q is empty, reserved or repeated", t.Name)
		}
		seen[t.Name] = true
		n, err := numel(t.Shape)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if t.DType.Size() == 0 || int64(len(t.data)) != n*int64(t.DType.Size()) {
			return nil, fmt.Errorf("tensor %q: %d bytes do not hold %s %v", t.Name, len(t.data), t.DType, t.Shape)
		}
		name, _ := json.Marshal(t.Name)
		shape, _ := json.Marshal(append([]int{}, t.Shape...))
		if h.Len() > 1 {
			h.WriteByte(',')
		}
		fmt.Fprintf(&h, `%s:{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, name, t.DType, shape, off, off+int64(len(t.data)))
		off += int64(len(t.data))
	}
	h.WriteByte('}')
	for (8+h.Len())%8 != 0 {
		h.WriteByte(' ')
	}
	return h.Bytes(), nil
}
