// Package wasmshare rewrites a WebAssembly module so that its linear memory
// is a shared memory imported from the host, the precondition for running
// its code and other modules on one memory from several Web Workers.
//
// Go's linker always defines the memory of a GOOS=js binary itself (and
// exports it as "mem"), non-shared and without a maximum, with no flag to
// change that. A shared memory must be created by the host, have a
// maximum, and be imported, so Rewrite
//
//   - turns a defined memory into an import (module and name from Options)
//     of a shared memory with the same minimum and Options.MaxPages as its
//     maximum: the memory section goes, one entry is added to the import
//     section (created if missing). Imported memories come first in the
//     memory index space and the module then has exactly one, so index 0,
//     which every load, store, data segment and the "mem" export refer to,
//     names the same memory as before; functions, tables and globals keep
//     their indices (only a function import would shift those);
//   - marks an imported memory (the kernel modules import Go's) shared with
//     Options.MaxPages as its maximum, so it links to the shared memory.
//
// A rewritten defined memory is described in a custom section named
// SectionName, JSON {"module", "name", "initial", "maximum"} (pages), which
// a host reads with WebAssembly.Module.customSections to create the
// memory before instantiating.
//
// Everything else is copied byte for byte. The parser reads only what it
// must (section framing, the import and memory sections) and refuses
// anything it does not understand with an error naming it.
package wasmshare

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// SectionName is the custom section that describes the imported shared
// memory of a rewritten module.
const SectionName = "clipwasm.shared_memory"

// MaxPages32 is the largest maximum a 32-bit memory can have: 4 GiB in
// 64 KiB pages.
const MaxPages32 = 65536

// Options configure Rewrite.
type Options struct {
	// ImportModule and ImportName name the memory import that replaces a
	// defined memory (an imported memory keeps its own names).
	ImportModule, ImportName string
	// MaxPages is the shared memory's maximum in 64 KiB pages (at most
	// MaxPages32). A defined memory's own maximum, if lower, wins.
	MaxPages uint32
}

// Memory describes the shared memory a rewritten module imports; it is the
// content of the SectionName custom section.
type Memory struct {
	Module  string `json:"module"`
	Name    string `json:"name"`
	Initial uint32 `json:"initial"`
	Maximum uint32 `json:"maximum"`
}

// Section ids of the WebAssembly core spec (with the exception-handling
// proposal's tag section).
const (
	secCustom = 0
	secImport = 2
	secMemory = 5
)

// sectionOrder is each known non-custom section's rank in the required
// order; the data count section (12) sits before code (10), and tags (13)
// between memory and global.
var sectionOrder = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

// Import kinds and limit flags.
const (
	importFunc   = 0
	importTable  = 1
	importMemory = 2
	importGlobal = 3
	importTag    = 4

	limitsMax    = 0x01 // has a maximum
	limitsShared = 0x02
	limits64     = 0x04 // memory64: i64 limits
)

var magic = []byte{0, 'a', 's', 'm', 1, 0, 0, 0}

type section struct {
	id   byte
	body []byte
}

// Rewrite returns module with its memory made an imported shared memory
// (see the package comment) and a description of that memory.
func Rewrite(module []byte, opts Options) ([]byte, Memory, error) {
	if opts.MaxPages == 0 || opts.MaxPages > MaxPages32 {
		return nil, Memory{}, fmt.Errorf("wasmshare: maximum of %d pages is out of range 1..%d", opts.MaxPages, MaxPages32)
	}
	if opts.ImportModule == "" || opts.ImportName == "" {
		return nil, Memory{}, errors.New("wasmshare: the memory import needs a module and a name")
	}
	sections, err := splitSections(module)
	if err != nil {
		return nil, Memory{}, err
	}
	importAt, memoryAt := -1, -1
	for i, s := range sections {
		switch s.id {
		case secImport:
			importAt = i
		case secMemory:
			memoryAt = i
		}
	}
	var imports []importEntry
	if importAt >= 0 {
		if imports, err = parseImports(sections[importAt].body); err != nil {
			return nil, Memory{}, err
		}
	}
	var defined []limits
	if memoryAt >= 0 {
		if defined, err = parseMemories(sections[memoryAt].body); err != nil {
			return nil, Memory{}, err
		}
	}
	importedAt := -1
	for i, im := range imports {
		if im.kind == importMemory {
			if importedAt >= 0 {
				return nil, Memory{}, errors.New("wasmshare: the module imports more than one memory")
			}
			importedAt = i
		}
	}
	switch {
	case importedAt < 0 && len(defined) == 0:
		return nil, Memory{}, errors.New("wasmshare: the module has no memory")
	case (importedAt >= 0 && len(defined) > 0) || len(defined) > 1:
		return nil, Memory{}, errors.New("wasmshare: the module has more than one memory")
	}

	var mem Memory
	if importedAt >= 0 {
		im := &imports[importedAt]
		l, err := sharedLimits(im.memory, opts.MaxPages, fmt.Sprintf("imported memory %s.%s", im.module, im.name))
		if err != nil {
			return nil, Memory{}, err
		}
		im.memory = l
		mem = Memory{Module: im.module, Name: im.name, Initial: l.min, Maximum: l.max}
	} else {
		l, err := sharedLimits(defined[0], opts.MaxPages, "the defined memory")
		if err != nil {
			return nil, Memory{}, err
		}
		imports = append(imports, importEntry{module: opts.ImportModule, name: opts.ImportName, kind: importMemory, memory: l})
		mem = Memory{Module: opts.ImportModule, Name: opts.ImportName, Initial: l.min, Maximum: l.max}
	}

	out := bytes.NewBuffer(make([]byte, 0, len(module)+128))
	out.Write(magic)
	wroteImports := false
	writeImports := func() {
		writeSection(out, secImport, encodeImports(imports))
		wroteImports = true
	}
	for _, s := range sections {
		switch {
		case s.id == secImport:
			writeImports()
			continue
		case s.id == secMemory:
			continue // now imported
		case s.id != secCustom && !wroteImports && sectionOrder[s.id] > sectionOrder[secImport]:
			writeImports() // the module had no import section
		}
		writeSection(out, s.id, s.body)
	}
	if !wroteImports {
		writeImports()
	}
	if importedAt < 0 {
		desc, err := json.Marshal(mem)
		if err != nil {
			return nil, Memory{}, err
		}
		writeSection(out, secCustom, append(appendName(nil, SectionName), desc...))
	}
	return out.Bytes(), mem, nil
}

// sharedLimits returns l made shared with a maximum of at most maxPages.
func sharedLimits(l limits, maxPages uint32, what string) (limits, error) {
	if l.shared {
		return l, fmt.Errorf("wasmshare: %s is shared already", what)
	}
	if l.min > maxPages {
		return l, fmt.Errorf("wasmshare: %s starts at %d pages, above the maximum of %d", what, l.min, maxPages)
	}
	if !l.hasMax || l.max > maxPages {
		l.max = maxPages
	}
	l.hasMax, l.shared = true, true
	return l, nil
}

// splitSections checks the header and cuts the module into its sections.
func splitSections(module []byte) ([]section, error) {
	if len(module) < len(magic) || !bytes.Equal(module[:4], magic[:4]) {
		return nil, errors.New("wasmshare: not a WebAssembly module (no \\0asm header)")
	}
	if !bytes.Equal(module[4:8], magic[4:]) {
		return nil, fmt.Errorf("wasmshare: unsupported WebAssembly binary version % x (want 1; components are not modules)", module[4:8])
	}
	r := &reader{b: module, pos: len(magic)}
	var sections []section
	lastRank := 0
	for r.pos < len(r.b) {
		at := r.pos
		id := r.byte()
		size := r.u32()
		body := r.bytes(int(size))
		if r.err != nil {
			return nil, fmt.Errorf("wasmshare: section %d at byte %d: %w", id, at, r.err)
		}
		if id != secCustom {
			rank, ok := sectionOrder[id]
			if !ok {
				return nil, fmt.Errorf("wasmshare: unknown section id %d at byte %d", id, at)
			}
			if rank <= lastRank {
				return nil, fmt.Errorf("wasmshare: section %d at byte %d is out of order or repeated", id, at)
			}
			lastRank = rank
		}
		sections = append(sections, section{id, body})
	}
	return sections, nil
}

// limits are a table's or memory's limits in pages (elements for tables).
type limits struct {
	min, max       uint32
	hasMax, shared bool
}

func (r *reader) limits(what string) limits {
	flags := r.byte()
	if r.err != nil {
		return limits{}
	}
	if flags&limits64 != 0 {
		r.fail(fmt.Errorf("%s is a 64-bit memory (memory64), which this tool does not handle", what))
		return limits{}
	}
	if flags&^(limitsMax|limitsShared) != 0 {
		r.fail(fmt.Errorf("%s has unknown limit flags %#x", what, flags))
		return limits{}
	}
	l := limits{min: r.u32(), hasMax: flags&limitsMax != 0, shared: flags&limitsShared != 0}
	if l.hasMax {
		l.max = r.u32()
	}
	if r.err == nil && l.hasMax && l.max < l.min {
		r.fail(fmt.Errorf("%s has a maximum %d below its minimum %d", what, l.max, l.min))
	}
	return l
}

func appendLimits(b []byte, l limits) []byte {
	var flags byte
	if l.hasMax {
		flags |= limitsMax
	}
	if l.shared {
		flags |= limitsShared
	}
	b = appendU32(append(b, flags), l.min)
	if l.hasMax {
		b = appendU32(b, l.max)
	}
	return b
}

// importEntry is one import. Only memory imports are decoded; every other
// kind keeps its descriptor's bytes.
type importEntry struct {
	module, name string
	kind         byte
	desc         []byte // the encoded descriptor after the kind byte (non-memory)
	memory       limits
}

func parseImports(body []byte) ([]importEntry, error) {
	return parseVector(body, "import", func(r *reader, _ uint32) importEntry {
		im := importEntry{module: r.name(), name: r.name(), kind: r.byte()}
		start := r.pos
		switch im.kind {
		case importFunc:
			r.u32() // type index
		case importTable:
			r.refType()
			r.limits(fmt.Sprintf("table import %s.%s", im.module, im.name))
		case importMemory:
			im.memory = r.limits(fmt.Sprintf("memory import %s.%s", im.module, im.name))
		case importGlobal:
			r.valType()
			r.byte() // mutability
		case importTag:
			r.byte() // attribute
			r.u32()  // type index
		default:
			r.fail(fmt.Errorf("import %s.%s has unknown kind %d", im.module, im.name, im.kind))
		}
		im.desc = r.b[start:r.pos]
		return im
	})
}

func encodeImports(imports []importEntry) []byte {
	b := appendU32(nil, uint32(len(imports)))
	for _, im := range imports {
		b = appendName(appendName(b, im.module), im.name)
		b = append(b, im.kind)
		if im.kind == importMemory {
			b = appendLimits(b, im.memory)
		} else {
			b = append(b, im.desc...)
		}
	}
	return b
}

func parseMemories(body []byte) ([]limits, error) {
	return parseVector(body, "memory", func(r *reader, i uint32) limits {
		return r.limits(fmt.Sprintf("memory %d", i))
	})
}

// parseVector decodes a section body that is a vector of entries, each
// read by entry; what names the section in errors.
func parseVector[T any](body []byte, what string, entry func(r *reader, i uint32) T) ([]T, error) {
	r := &reader{b: body}
	n := r.u32()
	var out []T
	for i := uint32(0); i < n && r.err == nil; i++ {
		out = append(out, entry(r, i))
	}
	if r.err == nil && r.pos != len(r.b) {
		r.fail(fmt.Errorf("%d bytes after the last entry", len(r.b)-r.pos))
	}
	if r.err != nil {
		return nil, fmt.Errorf("wasmshare: %s section: %w", what, r.err)
	}
	return out, nil
}

func writeSection(out *bytes.Buffer, id byte, body []byte) {
	out.WriteByte(id)
	out.Write(appendU32(nil, uint32(len(body))))
	out.Write(body)
}

// reader decodes the binary format's primitives; the first error sticks
// and later reads return zero values.
type reader struct {
	b   []byte
	pos int
	err error
}

var errTruncated = errors.New("unexpected end of data")

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.pos >= len(r.b) {
		r.fail(errTruncated)
		return 0
	}
	r.pos++
	return r.b[r.pos-1]
}

// u32 reads an unsigned LEB128 value of at most 5 bytes that fits 32 bits.
func (r *reader) u32() uint32 {
	var v uint32
	for shift := 0; ; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		if shift == 28 && c > 0x0f {
			r.fail(errors.New("LEB128 value does not fit 32 bits (or is longer than 5 bytes)"))
			return 0
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.pos {
		r.fail(errTruncated)
		return nil
	}
	r.pos += n
	return r.b[r.pos-n : r.pos]
}

func (r *reader) name() string { return string(r.bytes(int(r.u32()))) }

// refType accepts funcref and externref, the reference types Go and the
// kernels use; the typed references of the GC proposal are refused.
func (r *reader) refType() {
	if t := r.byte(); r.err == nil && t != 0x70 && t != 0x6f {
		r.fail(fmt.Errorf("unsupported table element type %#x", t))
	}
}

// valType accepts the number, vector and basic reference types.
func (r *reader) valType() {
	switch t := r.byte(); {
	case r.err != nil:
	case t == 0x7f, t == 0x7e, t == 0x7d, t == 0x7c, t == 0x7b, t == 0x70, t == 0x6f:
	default:
		r.fail(fmt.Errorf("unsupported global value type %#x", t))
	}
}

func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendName(b []byte, s string) []byte {
	return append(appendU32(b, uint32(len(s))), s...)
}
