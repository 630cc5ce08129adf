// Package npy reads and writes NumPy .npy files (format 1.0 and 2.0,
// little-endian, C order) for the dtypes the project exchanges: float32,
// int64, int32 and uint8.
package npy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Array is a decoded .npy array. Exactly one of the data slices is set,
// matching DType.
type Array struct {
	DType string // "<f4", "<i8", "<i4" or "|u1"
	Shape []int
	F32   []float32
	I64   []int64
	U8    []uint8
}

// Len returns the number of elements the shape describes.
func (a *Array) Len() int { return numel(a.Shape) }

// TokenRows returns a 2-D int64 array (token ids, [n, context]) as n rows,
// the form the text encoder takes.
func (a *Array) TokenRows() ([][]int, error) {
	if a.I64 == nil || len(a.Shape) != 2 {
		return nil, fmt.Errorf("npy: want int64 [n, context] token ids, got %s %v", a.DType, a.Shape)
	}
	n, l := a.Shape[0], a.Shape[1]
	rows := make([][]int, n)
	for i := range rows {
		rows[i] = make([]int, l)
		for j := range rows[i] {
			rows[i][j] = int(a.I64[i*l+j])
		}
	}
	return rows, nil
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

var (
	descrRe = regexp.MustCompile(`'descr'\s*:\s*'([^']*)'`)
	orderRe = regexp.MustCompile(`'fortran_order'\s*:\s*(True|False)`)
	shapeRe = regexp.MustCompile(`'shape'\s*:\s*\(([^)]*)\)`)
)

// maxElements bounds what a header may declare, so a corrupt file cannot ask
// for an absurd allocation.
const maxElements = 1 << 31

// Read decodes a .npy stream. int32 data is widened to I64.
func Read(r io.Reader) (*Array, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, 8)
	if _, err := io.ReadFull(br, magic); err != nil {
		return nil, fmt.Errorf("npy: reading magic: %w", err)
	}
	if !bytes.Equal(magic[:6], []byte("\x93NUMPY")) {
		return nil, errors.New("npy: not a .npy file (bad magic)")
	}
	var hlen int
	switch magic[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, fmt.Errorf("npy: reading header length: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, fmt.Errorf("npy: reading header length: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint32(b[:]))
		if hlen > 1<<20 {
			return nil, fmt.Errorf("npy: header length %d too large", hlen)
		}
	default:
		return nil, fmt.Errorf("npy: unsupported format version %d", magic[6])
	}
	header := make([]byte, hlen)
	if _, err := io.ReadFull(br, header); err != nil {
		return nil, fmt.Errorf("npy: reading header: %w", err)
	}
	h := string(header)
	m := descrRe.FindStringSubmatch(h)
	if m == nil {
		return nil, errors.New("npy: header has no descr")
	}
	a := &Array{DType: m[1]}
	fortran := false
	if o := orderRe.FindStringSubmatch(h); o != nil && o[1] == "True" {
		fortran = true
	}
	s := shapeRe.FindStringSubmatch(h)
	if s == nil {
		return nil, errors.New("npy: header has no shape")
	}
	n := 1
	for _, part := range strings.Split(s[1], ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		d, err := strconv.Atoi(part)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("npy: bad shape %q", s[1])
		}
		a.Shape = append(a.Shape, d)
		if d > 0 && n > maxElements/d {
			return nil, fmt.Errorf("npy: shape %v too large", a.Shape)
		}
		n *= d
	}
	var err error
	switch a.DType {
	case "<f4":
		a.F32 = make([]float32, n)
		err = binary.Read(br, binary.LittleEndian, a.F32)
	case "<i8":
		a.I64 = make([]int64, n)
		err = binary.Read(br, binary.LittleEndian, a.I64)
	case "<i4":
		v := make([]int32, n)
		err = binary.Read(br, binary.LittleEndian, v)
		a.I64 = make([]int64, n)
		for i, x := range v {
			a.I64[i] = int64(x)
		}
		a.DType = "<i8"
	case "|u1", "<u1":
		a.U8 = make([]uint8, n)
		_, err = io.ReadFull(br, a.U8)
		a.DType = "|u1"
	default:
		return nil, fmt.Errorf("npy: unsupported dtype %q", a.DType)
	}
	if err != nil {
		return nil, fmt.Errorf("npy: reading %d elements of %s: %w", n, a.DType, err)
	}
	if fortran {
		a.toCOrder()
	}
	return a, nil
}

// toCOrder reorders Fortran-order (column-major) data into C order.
func (a *Array) toCOrder() {
	nd := len(a.Shape)
	if nd < 2 {
		return
	}
	// Element i in C order sits at Fortran offset Σ idx[d]·fstride[d].
	fstride := make([]int, nd)
	s := 1
	for d := 0; d < nd; d++ {
		fstride[d] = s
		s *= a.Shape[d]
	}
	perm := make([]int, a.Len())
	idx := make([]int, nd)
	for i := range perm {
		off := 0
		for d := 0; d < nd; d++ {
			off += idx[d] * fstride[d]
		}
		perm[i] = off
		for d := nd - 1; d >= 0; d-- {
			if idx[d]++; idx[d] < a.Shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	switch {
	case a.F32 != nil:
		a.F32 = gather(a.F32, perm)
	case a.I64 != nil:
		a.I64 = gather(a.I64, perm)
	case a.U8 != nil:
		a.U8 = gather(a.U8, perm)
	}
}

func gather[T any](src []T, perm []int) []T {
	out := make([]T, len(perm))
	for i, p := range perm {
		out[i] = src[p]
	}
	return out
}

// ReadFile decodes the .npy file at path.
func ReadFile(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

func writeHeader(w io.Writer, descr string, shape []int) error {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, tuple)
	// Pad with spaces so that magic+len+header+'\n' is a multiple of 64.
	total := 10 + len(h) + 1
	h += strings.Repeat(" ", (64-total%64)%64) + "\n"
	if len(h) > math.MaxUint16 {
		return errors.New("npy: header too long")
	}
	var pre [10]byte
	copy(pre[:], "\x93NUMPY\x01\x00")
	binary.LittleEndian.PutUint16(pre[8:], uint16(len(h)))
	if _, err := w.Write(pre[:]); err != nil {
		return err
	}
	_, err := io.WriteString(w, h)
	return err
}

// Write encodes data ([]float32, []int64 or []uint8) with the given shape.
func Write(w io.Writer, shape []int, data any) error {
	var descr string
	var n int
	switch d := data.(type) {
	case []float32:
		descr, n = "<f4", len(d)
	case []int64:
		descr, n = "<i8", len(d)
	case []uint8:
		descr, n = "|u1", len(d)
	default:
		return fmt.Errorf("npy: unsupported element type %T", data)
	}
	if n != numel(shape) {
		return fmt.Errorf("npy: %d elements do not fill shape %v", n, shape)
	}
	bw := bufio.NewWriter(w)
	if err := writeHeader(bw, descr, shape); err != nil {
		return err
	}
	if err := binary.Write(bw, binary.LittleEndian, data); err != nil {
		return err
	}
	return bw.Flush()
}

// WriteFile writes an array atomically: to a temporary file in the same
// directory, renamed into place only once complete.
func WriteFile(path string, shape []int, data any) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := Write(tmp, shape, data); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
