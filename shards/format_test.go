package shards

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clipwasm/clipwasm/checkpoint"
)

// stHeaderEntry is one tensor of a safetensors header.
type stHeaderEntry struct {
	DType   DType    `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// readHeader parses a shard's safetensors header independently of the
// writer and checks the format's rules: 8-byte aligned header, entries
// that exactly tile the data section, sizes equal to numel × dtype size.
// It returns the entries with absolute offsets.
func readHeader(t *testing.T, path string) map[string]stHeaderEntry {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(data)
	if (8+n)%8 != 0 || 8+n > uint64(len(data)) {
		t.Fatalf("%s: header length %d in a %d-byte file", path, n, len(data))
	}
	var h map[string]stHeaderEntry
	if err := json.Unmarshal(data[8:8+n], &h); err != nil {
		t.Fatalf("%s: header: %v", path, err)
	}
	var spans [][2]int64
	for k, e := range h {
		size := int64(e.DType.size())
		for _, d := range e.Shape {
			size *= int64(d)
		}
		if size == 0 || e.Offsets[1]-e.Offsets[0] != size {
			t.Errorf("%s: %s: %s %v in %v", path, k, e.DType, e.Shape, e.Offsets)
		}
		e.Offsets[0] += int64(8 + n)
		e.Offsets[1] += int64(8 + n)
		h[k] = e
		spans = append(spans, e.Offsets)
	}
	slices.SortFunc(spans, func(a, b [2]int64) int { return int(a[0] - b[0]) })
	next := int64(8 + n)
	for _, s := range spans {
		if s[0] != next {
			t.Errorf("%s: data section has a hole or overlap at %d", path, next)
		}
		next = s[1]
	}
	if next != int64(len(data)) {
		t.Errorf("%s: entries end at %d, file at %d", path, next, len(data))
	}
	return h
}

// TestShardSize checks the size bound, that shards are valid safetensors
// files and that the manifest's spans match their headers. The 200-byte
// bound is below one row of the f32 table (256 bytes): each such row gets
// a shard of its own, the documented exception.
func TestShardSize(t *testing.T) {
	oversize := synthModel()[1:3]
	oversize[0].shape, oversize[0].vals = []int{4, 64}, oversize[0].vals[:4*64]
	for _, tc := range []struct {
		quant   Scheme
		bound   int64
		tensors []synthTensor
	}{
		{F32, 2 << 10, nil}, {F32, 16 << 10, nil}, {F32, 0, nil}, {F32, 200, oversize},
		{F16, 2 << 10, nil}, {F16, 16 << 10, nil}, {F16, 0, nil},
		{Int8, 2 << 10, nil}, {Int8, 16 << 10, nil}, {Int8, 0, nil}, {Int8, 200, oversize},
		{Q4, 2 << 10, nil}, {Q4, 16 << 10, nil}, {Q4, 0, nil},
	} {
		quant, bound := tc.quant, tc.bound
		if tc.tensors == nil {
			tc.tensors = synthModel()
		}
		t.Run(fmt.Sprintf("%s-%d-%d", quant, bound, len(tc.tensors)), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "b")
			res, err := Write(dir, testConfig(), tok(t), sources(tc.tensors), Options{Quant: quant, ShardSize: bound})
			if err != nil {
				t.Fatal(err)
			}
			limit := bound
			if limit == 0 {
				limit = DefaultShardSize
			}
			m := res.Manifest
			perShard := map[string][]Part{}
			for _, te := range m.Tensors {
				for _, p := range te.Parts {
					perShard[p.Shard] = append(perShard[p.Shard], p)
				}
			}
			for _, s := range m.Shards {
				path := filepath.Join(dir, s.File)
				st, err := os.Stat(path)
				if err != nil || st.Size() != s.Size {
					t.Fatalf("%s: %v, size %d vs manifest %d", s.File, err, st.Size(), s.Size)
				}
				parts := perShard[s.File]
				if s.Size > limit && (len(parts) != 1 || parts[0].Rows[1]-parts[0].Rows[0] != 1) {
					t.Errorf("%s: %d bytes > bound %d, and not a single row", s.File, s.Size, limit)
				}
				h := readHeader(t, path)
				for _, p := range parts {
					for _, span := range []*Span{&p.Data, p.Scales} {
						if span == nil {
							continue
						}
						if e, ok := h[span.Key]; !ok || e.Offsets != span.Offsets {
							t.Errorf("%s: %s at %v in the manifest, %v in the header", s.File, span.Key, span.Offsets, e.Offsets)
						}
					}
				}
				if len(h) != 2*len(parts) && !slices.ContainsFunc(parts, func(p Part) bool { return p.Scales == nil }) {
					t.Errorf("%s: %d header entries for %d parts", s.File, len(h), len(parts))
				}
				// Every shard is a safetensors file any reader takes.
				if _, _, err := checkpoint.ReadSafetensors(path); err != nil {
					t.Errorf("checkpoint cannot read %s: %v", s.File, err)
				}
			}
		})
	}
}

// corrupt describes one way to damage a written bundle.
type corrupt struct {
	name   string
	damage func(t *testing.T, dir string, m *Manifest) string // returns the shard the error must name
}

func rewriteManifest(t *testing.T, dir string, m *Manifest) {
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTamper damages a bundle in every way a download or disk can and
// expects each reader to refuse it with an error naming the shard.
func TestTamper(t *testing.T) {
	var cases []corrupt
	for i := 0; i < 4; i++ { // a flipped byte in each of the first shards
		cases = append(cases, corrupt{fmt.Sprintf("flip-shard-%d", i), func(t *testing.T, dir string, m *Manifest) string {
			s := m.Shards[i%len(m.Shards)]
			path := filepath.Join(dir, s.File)
			data, _ := os.ReadFile(path)
			data[len(data)/2] ^= 0x10
			os.WriteFile(path, data, 0o644)
			return s.File
		}})
	}
	last := func(m *Manifest) ShardEntry { return m.Shards[len(m.Shards)-1] }
	cases = append(cases,
		corrupt{"truncate", func(t *testing.T, dir string, m *Manifest) string {
			s := last(m)
			os.Truncate(filepath.Join(dir, s.File), s.Size-1)
			return s.File
		}},
		corrupt{"missing", func(t *testing.T, dir string, m *Manifest) string {
			s := m.Shards[1]
			os.Remove(filepath.Join(dir, s.File))
			return s.File
		}},
		corrupt{"manifest-size-larger", func(t *testing.T, dir string, m *Manifest) string {
			m.Shards[2].Size++
			rewriteManifest(t, dir, m)
			return m.Shards[2].File
		}},
		corrupt{"manifest-size-smaller", func(t *testing.T, dir string, m *Manifest) string {
			m.Shards[0].Size -= 100
			rewriteManifest(t, dir, m)
			return m.Shards[0].File
		}},
		corrupt{"manifest-sha", func(t *testing.T, dir string, m *Manifest) string {
			m.Shards[0].SHA256 = strings.Repeat("0", 64)
			rewriteManifest(t, dir, m)
			return m.Shards[0].File
		}},
		corrupt{"shard-swapped", func(t *testing.T, dir string, m *Manifest) string {
			a, b := m.Shards[0], m.Shards[1]
			data, _ := os.ReadFile(filepath.Join(dir, b.File))
			os.WriteFile(filepath.Join(dir, a.File), data, 0o644)
			return a.File
		}},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "b")
			res := write(t, dir, Options{Quant: Int8, ShardSize: 16 << 10})
			if len(res.Manifest.Shards) < 4 {
				t.Fatalf("only %d shards", len(res.Manifest.Shards))
			}
			shard := tc.damage(t, dir, res.Manifest)
			openers := map[string]func() (*Bundle, error){
				"Open":   func() (*Bundle, error) { return Open(dir) },
				"OpenFS": func() (*Bundle, error) { return OpenFS(os.DirFS(dir)) },
				"NewBundle": func() (*Bundle, error) {
					raw, err := os.ReadFile(filepath.Join(dir, ManifestFile))
					if err != nil {
						return nil, err
					}
					m, err := ParseManifest(raw)
					if err != nil {
						return nil, err
					}
					data := map[string][]byte{}
					for _, s := range m.Shards {
						if b, err := os.ReadFile(filepath.Join(dir, s.File)); err == nil {
							data[s.File] = b
						}
					}
					return NewBundle(m, data)
				},
			}
			for name, open := range openers {
				b, err := open()
				if err == nil {
					b.Close()
					t.Errorf("%s accepted the damaged bundle", name)
					continue
				}
				if !strings.Contains(err.Error(), shard) {
					t.Errorf("%s: error does not name shard %s: %v", name, shard, err)
				}
			}
		})
	}
}

// TestAtomic: a failed conversion leaves nothing that looks like a bundle,
// and while one runs the destination does not exist yet.
func TestAtomic(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, parent string) string // returns the output dir
		fail    bool                                     // make a tensor fail midway
		err     string
		keep    []string // files that must survive in the output dir
	}{
		{name: "tensor-error", prepare: func(t *testing.T, p string) string { return filepath.Join(p, "out") }, fail: true, err: "boom"},
		{name: "tensor-error-over-old-bundle", prepare: func(t *testing.T, p string) string {
			out := filepath.Join(p, "out")
			write(t, out, Options{Quant: F16})
			return out
		}, fail: true, err: "boom", keep: []string{ManifestFile}},
		{name: "parent-is-a-file", prepare: func(t *testing.T, p string) string {
			f := filepath.Join(p, "file")
			os.WriteFile(f, nil, 0o644)
			return filepath.Join(f, "out")
		}, err: "not a directory"},
		{name: "not-a-bundle", prepare: func(t *testing.T, p string) string {
			out := filepath.Join(p, "out")
			os.Mkdir(out, 0o755)
			os.WriteFile(filepath.Join(out, "precious.txt"), []byte("x"), 0o644)
			return out
		}, err: "refusing", keep: []string{"precious.txt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			out := tc.prepare(t, parent)
			before, _ := os.ReadDir(parent)
			src := sources(synthModel())
			if tc.fail {
				src[3].Float32 = func() ([]float32, error) {
					// Midway: shards exist in the temporary folder, but
					// nothing at the destination looks complete.
					entries, _ := os.ReadDir(parent)
					for _, e := range entries {
						if strings.Contains(e.Name(), ".partial-") {
							if _, err := os.Stat(filepath.Join(parent, e.Name(), ManifestFile)); err == nil {
								t.Error("the temporary folder has a manifest before the end")
							}
						}
					}
					return nil, boom
				}
			}
			_, err := Write(out, testConfig(), tok(t), src, Options{Quant: Int8, ShardSize: 4 << 10})
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
			after, _ := os.ReadDir(parent)
			if len(after) != len(before) {
				t.Errorf("left over in the parent folder: %v (before: %v)", after, before)
			}
			if len(tc.keep) == 0 {
				if _, err := os.Stat(filepath.Join(out, ManifestFile)); err == nil {
					t.Error("a manifest exists at the destination")
				}
			}
			for _, f := range tc.keep {
				if _, err := os.Stat(filepath.Join(out, f)); err != nil {
					t.Errorf("%s did not survive: %v", f, err)
				}
			}
			if tc.name == "tensor-error-over-old-bundle" {
				if _, err := Open(out); err != nil {
					t.Errorf("the old bundle was damaged: %v", err)
				}
			}
		})
	}
}

// TestReplace: writing over a bundle (named with a trailing slash this
// time) replaces it and leaves no backup.
func TestReplace(t *testing.T) {
	parent := t.TempDir()
	out := filepath.Join(parent, "out")
	write(t, out, Options{Quant: F32})
	write(t, out+string(filepath.Separator), Options{Quant: Q4})
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 {
		t.Errorf("parent holds %v, want only out", entries)
	}
	b, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Manifest.Quant != Q4 {
		t.Errorf("quant %s after replacing with q4", b.Manifest.Quant)
	}
}

// validManifest returns a small valid manifest and its shard bytes.
func validManifest(t testing.TB) (*Manifest, map[string][]byte) {
	dir := filepath.Join(t.TempDir(), "b")
	res := write(t, dir, Options{Quant: Q4, ShardSize: 8 << 10})
	data := map[string][]byte{}
	for _, s := range res.Manifest.Shards {
		data[s.File], _ = os.ReadFile(filepath.Join(dir, s.File))
	}
	return res.Manifest, data
}

func cloneManifest(t testing.TB, m *Manifest) *Manifest {
	raw, _ := json.Marshal(m)
	var c Manifest
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

// TestParseManifestRejects: every inconsistency is an error, never a panic
// or an out-of-range slice later.
func TestParseManifestRejects(t *testing.T) {
	good, _ := validManifest(t)
	good.Tokenizer.Merges = good.Tokenizer.Merges[:10] // not checked here; keeps the cases fast
	tensor := func(m *Manifest, name string) *TensorEntry {
		i := slices.IndexFunc(m.Tensors, func(e TensorEntry) bool { return e.Name == name })
		return &m.Tensors[i]
	}
	for _, tc := range []struct {
		name   string
		mutate func(m *Manifest)
		err    string
	}{
		{"version", func(m *Manifest) { m.Version = 2 }, "version"},
		{"format", func(m *Manifest) { m.Format = "other" }, "format"},
		{"config", func(m *Manifest) { m.Config.TextHeads = 3 }, "divisible"},
		{"shard-path", func(m *Manifest) { m.Shards[0].File = "../x" }, "bad shard file name"},
		{"shard-manifest", func(m *Manifest) { m.Shards[0].File = ManifestFile }, "bad shard file name"},
		{"shard-dup", func(m *Manifest) { m.Shards[1].File = m.Shards[0].File }, "twice"},
		{"sha", func(m *Manifest) { m.Shards[0].SHA256 = "xyz" }, "sha256"},
		{"sha-upper", func(m *Manifest) { m.Shards[0].SHA256 = strings.ToUpper(m.Shards[0].SHA256) }, "sha256"},
		{"negative-size", func(m *Manifest) { m.Shards[0].Size = -1 }, "negative"},
		{"tensor-dup", func(m *Manifest) { m.Tensors[1].Name = m.Tensors[0].Name }, "twice"},
		{"unknown-shard", func(m *Manifest) { m.Tensors[0].Parts[0].Shard = "nope" }, "unknown shard"},
		{"rows-gap", func(m *Manifest) { m.Tensors[0].Parts[1].Rows[0]++ }, "do not continue"},
		{"rows-short", func(m *Manifest) { m.Tensors[0].Shape[0]++ }, "rows"},
		{"offsets-size", func(m *Manifest) { m.Tensors[0].Parts[0].Data.Offsets[1]++ }, "holds"},
		{"offsets-beyond", func(m *Manifest) {
			p := &m.Tensors[0].Parts[0].Data
			p.Offsets[0], p.Offsets[1] = p.Offsets[0]+1<<40, p.Offsets[1]+1<<40
		}, "outside"},
		{"offsets-negative", func(m *Manifest) { m.Tensors[0].Parts[0].Data.Offsets = [2]int64{-8, 0} }, "outside"},
		{"scales-missing", func(m *Manifest) { m.Tensors[0].Parts[0].Scales = nil }, "scales missing"},
		{"scales-extra", func(m *Manifest) {
			e := tensor(m, "a.bias")
			e.Parts[0].Scales = &Span{Key: "x", Offsets: e.Parts[0].Data.Offsets}
		}, "no scales"},
		{"unknown-scheme", func(m *Manifest) { m.Tensors[0].Scheme = "q3" }, "unknown scheme"},
		{"dtype", func(m *Manifest) { m.Tensors[0].DType = DTypeF32 }, "stored as"},
		{"scale-dtype", func(m *Manifest) { m.Tensors[0].ScaleDType = "BF16" }, "scale_dtype"},
		{"q4-columns", func(m *Manifest) {
			e := tensor(m, "stem.weight")
			e.Scheme, e.DType, e.Fallback = Q4, DTypeU8, ""
		}, "divisible"},
		{"vector-int8", func(m *Manifest) { tensor(m, "a.weight").Kind = KindVector }, "vector cannot"},
		{"kind", func(m *Manifest) { m.Tensors[0].Kind = "tensor" }, "kind"},
		{"no-parts", func(m *Manifest) { m.Tensors[0].Parts = nil }, "no parts"},
		{"shape-zero", func(m *Manifest) { tensor(m, "a.bias").Shape = []int{0} }, "bad shape"},
		{"shape-huge", func(m *Manifest) { tensor(m, "a.bias").Shape = []int{1 << 30, 1 << 30, 1 << 30} }, "bad shape"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := cloneManifest(t, good)
			tc.mutate(m)
			raw, _ := json.Marshal(m)
			_, err := ParseManifest(raw)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
	for _, raw := range []string{"", "null", "[]", `{"format": 1}`, "{"} {
		if _, err := ParseManifest([]byte(raw)); err == nil {
			t.Errorf("ParseManifest(%q) succeeded", raw)
		}
	}
	m := cloneManifest(t, good)
	m.Tokenizer.Merges[3] = "a  b"
	if _, err := m.NewTokenizer(); err == nil || !strings.Contains(err.Error(), "merge 3") {
		t.Errorf("bad merge: %v", err)
	}
}

// TestBundleRequests: wrong names and shapes are errors, as is use after
// Close; missing shards are refused by NewBundle.
func TestBundleRequests(t *testing.T) {
	m, data := validManifest(t)
	delete(data, m.Shards[0].File)
	if _, err := NewBundle(m, data); err == nil || !strings.Contains(err.Error(), m.Shards[0].File) {
		t.Errorf("missing shard: %v", err)
	}
	m, data = validManifest(t)
	b, err := NewBundle(m, data)
	if err != nil {
		t.Fatal(err)
	}
	for _, call := range []func() error{
		func() error { _, err := b.Tensor("nope", 1); return err },
		func() error { _, err := b.Tensor("a.bias", 97); return err },
		func() error { _, err := b.Tensor("a.bias"); return err },
		func() error { _, err := b.Matrix("a.weight", 64, 96); return err },
		func() error { _, err := b.Matrix("conv.weight", 8, 16); return err },
	} {
		if err := call(); err == nil {
			t.Error("a bad request succeeded")
		}
	}
	if _, err := b.Matrix("conv.weight", 8, 64); err != nil {
		t.Errorf("a 4-d matrix as [out, in·k·k]: %v", err)
	}
	b.Close()
	if _, err := b.Tensor("a.bias", 96); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("after Close: %v", err)
	}
}

// FuzzParseManifest: arbitrary bytes never panic the parser or the
// tokenizer construction.
func FuzzParseManifest(f *testing.F) {
	m, _ := validManifest(f)
	m.Tokenizer.Merges = m.Tokenizer.Merges[:10]
	raw, _ := json.Marshal(m)
	f.Add(raw)
	f.Add([]byte(`{"format":"clipwasm-bundle","version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		m.NewTokenizer()
		shards := map[string][]byte{}
		for _, s := range m.Shards {
			if s.Size > 1<<20 {
				return
			}
			shards[s.File] = make([]byte, s.Size)
		}
		NewBundle(m, shards)
	})
}

// TestVerifiedOnce: NewBundle does not hash again the slices VerifyShard
// accepted through the same manifest, and does hash any other slice.
func TestVerifiedOnce(t *testing.T) {
	good, data := validManifest(t)
	raw, _ := json.Marshal(good)
	m, err := ParseManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	first := m.Shards[0].File
	for name, b := range data {
		if err := m.VerifyShard(name, b); err != nil {
			t.Fatal(err)
		}
	}
	// A modified copy is a different slice: hashed, refused.
	copied := map[string][]byte{}
	for name, b := range data {
		copied[name] = b
	}
	copied[first] = slices.Clone(data[first])
	copied[first][100] ^= 1
	if _, err := NewBundle(m, copied); err == nil || !strings.Contains(err.Error(), first) {
		t.Errorf("a modified copy of a verified shard: %v", err)
	}
	// The verified slice itself is trusted: modifying it after VerifyShard
	// is the caller's bug, and goes unseen (which proves the skip).
	data[first][100] ^= 1
	b, err := NewBundle(m, data)
	if err != nil {
		t.Fatalf("verified slices were checked again: %v", err)
	}
	b.Close()
}
