package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/nlpodyssey/gopickle/pickle"
)

// opArg describes how an opcode's argument is laid out in the stream.
type opArg struct {
	valid bool
	lines int // newline-terminated arguments
	fixed int // bytes of a fixed-size argument
	count int // bytes of a length field followed by that many bytes
}

// opArgs describes every opcode of protocols 0–5, as Python's pickletools
// does; the zero value marks an unknown opcode.
var opArgs = func() (t [256]opArg) {
	for _, op := range []byte("(.012NQRabd}e]lost)u" + // protocols 0 and 1
		"\x81\x85\x86\x87\x88\x89" + // protocol 2
		"\x8f\x90\x91\x92\x93\x94" + // protocol 4
		"\x97\x98") { // protocol 5
		t[op] = opArg{valid: true}
	}
	for _, op := range []byte("IFLSVPgp") {
		t[op] = opArg{valid: true, lines: 1}
	}
	for _, op := range []byte("ci") { // GLOBAL and INST: module, name
		t[op] = opArg{valid: true, lines: 2}
	}
	for op, n := range map[byte]int{'J': 4, 'K': 1, 'M': 2, 'h': 1, 'j': 4, 'q': 1, 'r': 4, 'G': 8, 0x80: 1, 0x82: 1, 0x83: 2, 0x84: 4} {
		t[op] = opArg{valid: true, fixed: n}
	}
	for op, n := range map[byte]int{'U': 1, 'C': 1, 0x8a: 1, 0x8c: 1, 'T': 4, 'B': 4, 'X': 4, 0x8b: 4, 0x8d: 8, 0x8e: 8, 0x96: 8} {
		t[op] = opArg{valid: true, count: n}
	}
	t[opFrame] = opArg{valid: true, fixed: 8}
	return t
}()

const (
	opStop  = '.'
	opFrame = 0x95
)

// checkPickle walks the opcode stream without executing it and rejects
// unknown opcodes, arguments that run past the end and a missing STOP. This
// is the guard gopickle lacks: it indexes its dispatch table with opcode
// 0xff (a panic) and allocates whatever length a counted opcode or a FRAME
// declares before reading it, so hostile bytes must be vetted first. After
// this check every length gopickle allocates is bounded by len(p).
func checkPickle(p []byte) error {
	for i := 0; i < len(p); {
		op, at := p[i], i
		i++
		a := opArgs[op]
		switch {
		case !a.valid:
			return fmt.Errorf("corrupt pickle: unknown opcode 0x%02x at byte %d", op, at)
		case op == opStop:
			return nil
		case a.lines > 0:
			for range a.lines {
				nl := bytes.IndexByte(p[i:], '\n')
				if nl < 0 {
					return fmt.Errorf("corrupt pickle: opcode 0x%02x at byte %d: unterminated argument", op, at)
				}
				i += nl + 1
			}
		case a.fixed > 0 || a.count > 0:
			w := a.fixed + a.count
			if len(p)-i < w {
				return fmt.Errorf("corrupt pickle: opcode 0x%02x at byte %d: truncated argument", op, at)
			}
			var n uint64
			switch w {
			case 1:
				n = uint64(p[i])
			case 4:
				n = uint64(binary.LittleEndian.Uint32(p[i:]))
			case 8:
				n = binary.LittleEndian.Uint64(p[i:])
			}
			i += w
			if a.count == 0 && op != opFrame {
				continue
			}
			// A frame's length covers the opcodes that follow it.
			if n > uint64(len(p)-i) {
				return fmt.Errorf("corrupt pickle: opcode 0x%02x at byte %d declares %d bytes, only %d left", op, at, n, len(p)-i)
			}
			if op != opFrame {
				i += int(n)
			}
		}
	}
	return fmt.Errorf("corrupt pickle: truncated: no STOP opcode in %d bytes", len(p))
}

// errUnsupported marks valid pickles that use torch features this package
// does not read, so that they are not reported as corrupt.
var errUnsupported = errors.New("unsupported")

// unpickle runs gopickle over a vetted stream. gopickle still panics on
// some structurally invalid streams (an odd item count under SETITEMS, an
// empty LONG1, an unhashable OrderedDict key), so panics become errors.
func unpickle(u *pickle.Unpickler) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("corrupt pickle: %v", r)
		}
	}()
	v, err = u.Load()
	if errors.Is(err, errUnsupported) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("corrupt pickle: %w", err)
	}
	return v, nil
}
