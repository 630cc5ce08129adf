package shards

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/clipwasm/clipwasm/kernels"
)

// The manifest is read by this small JSON (RFC 8259) reader rather than
// encoding/json, which would be the browser engine's largest dependency
// after net/http (about 80 KB of web/clipwasm.wasm gzipped). It decodes
// into the manifest's types as json.Unmarshal does: fields by their json
// tag (exact key first, then case-insensitively), unknown keys skipped,
// null leaving values as they are (nil for slices, maps and pointers),
// kernels.Activation's UnmarshalText for strings, extra array elements dropped, a
// repeated key decoded again into the same value. FuzzUnmarshalJSON holds
// it to encoding/json.

// maxJSONDepth bounds nesting, as encoding/json does, so that hostile input
// cannot exhaust the stack.
const maxJSONDepth = 10000

// jsonError is a syntax or type error at a byte offset, with the path of
// the value being decoded (e.g. tensors[3].shape[1]).
type jsonError struct {
	offset int
	path   []string // innermost first, prepended to while unwinding
	msg    string
}

func (e *jsonError) Error() string {
	var b strings.Builder
	for i := len(e.path) - 1; i >= 0; i-- {
		p := e.path[i]
		if b.Len() > 0 && p[0] != '[' {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	if b.Len() == 0 {
		return fmt.Sprintf("JSON at offset %d: %s", e.offset, e.msg)
	}
	return fmt.Sprintf("JSON at offset %d: %s: %s", e.offset, b.String(), e.msg)
}

// within adds a path element to err if it is a jsonError.
func within(err error, elem string) error {
	if e, ok := err.(*jsonError); ok {
		e.path = append(e.path, elem)
	}
	return err
}

// unmarshalJSON decodes the JSON document data into v, a non-nil pointer.
func unmarshalJSON(data []byte, v any) error {
	r := jsonReader{data: data}
	r.skipSpace()
	if err := r.value(reflect.ValueOf(v).Elem(), 0); err != nil {
		return err
	}
	r.skipSpace()
	if r.pos < len(r.data) {
		return r.errorf("data after the top-level value")
	}
	return nil
}

type jsonReader struct {
	data []byte
	pos  int
}

func (r *jsonReader) errorf(format string, args ...any) error {
	return &jsonError{offset: r.pos, msg: fmt.Sprintf(format, args...)}
}

func (r *jsonReader) skipSpace() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// value decodes the value at r.pos into dst; an invalid dst only checks
// the syntax (a key with no field, an array's extra elements).
func (r *jsonReader) value(dst reflect.Value, depth int) error {
	if r.pos >= len(r.data) {
		return r.errorf("unexpected end of input")
	}
	c := r.data[r.pos]
	if c == 'n' {
		if err := r.literal("null"); err != nil {
			return err
		}
		if dst.IsValid() {
			switch dst.Kind() {
			case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
				dst.SetZero()
			}
		}
		return nil
	}
	if dst.IsValid() && dst.Kind() == reflect.Pointer {
		if dst.IsNil() {
			dst.Set(reflect.New(dst.Type().Elem()))
		}
		dst = dst.Elem()
	}
	switch {
	case c == '{' || c == '[':
		if depth >= maxJSONDepth {
			return r.errorf("nested over %d levels", maxJSONDepth)
		}
		if c == '{' {
			return r.object(dst, depth+1)
		}
		return r.array(dst, depth+1)
	case c == '"':
		start := r.pos
		s, err := r.str()
		if err != nil || !dst.IsValid() {
			return err
		}
		if u := activation(dst); u != nil {
			if err := u.UnmarshalText([]byte(s)); err != nil {
				return &jsonError{offset: start, msg: err.Error()}
			}
			return nil
		}
		if dst.Kind() != reflect.String {
			return &jsonError{offset: start, msg: "want " + describe(dst) + ", got a string"}
		}
		dst.SetString(s)
		return nil
	case c == 't' || c == 'f':
		start := r.pos
		word := "true"
		if c == 'f' {
			word = "false"
		}
		if err := r.literal(word); err != nil || !dst.IsValid() {
			return err
		}
		if dst.Kind() != reflect.Bool || isTextUnmarshaler(dst) {
			return &jsonError{offset: start, msg: "want " + describe(dst) + ", got " + word}
		}
		dst.SetBool(c == 't')
		return nil
	case c == '-' || '0' <= c && c <= '9':
		return r.number(dst)
	}
	return r.errorf("invalid character %q looking for a value", c)
}

// activationType is the one manifest type read from text. Calling
// UnmarshalText through encoding.TextUnmarshaler instead would keep every
// linked type's UnmarshalText (time, math/big, net) in the browser's binary.
var activationType = reflect.TypeFor[kernels.Activation]()

// activation returns v's address if it is a kernels.Activation, else nil.
func activation(v reflect.Value) *kernels.Activation {
	if v.Type() != activationType || !v.CanAddr() {
		return nil
	}
	return v.Addr().Interface().(*kernels.Activation)
}

func isTextUnmarshaler(v reflect.Value) bool { return activation(v) != nil }

// describe names what dst takes, for type errors.
func describe(dst reflect.Value) string {
	switch dst.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if isTextUnmarshaler(dst) {
			return "a string"
		}
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return dst.Type().String()
}

func (r *jsonReader) literal(word string) error {
	if !strings.HasPrefix(string(r.data[r.pos:min(len(r.data), r.pos+len(word))]), word) {
		return r.errorf("invalid literal, want %s", word)
	}
	r.pos += len(word)
	return nil
}

func (r *jsonReader) object(dst reflect.Value, depth int) error {
	start := r.pos
	if dst.IsValid() {
		switch dst.Kind() {
		case reflect.Struct:
		case reflect.Map:
			if dst.Type().Key().Kind() != reflect.String {
				return r.errorf("unsupported map key type %s", dst.Type().Key())
			}
			if dst.IsNil() {
				dst.Set(reflect.MakeMap(dst.Type()))
			}
		default:
			// Still check the syntax: a syntax error outranks a type error.
			if err := r.object(reflect.Value{}, depth); err != nil {
				return err
			}
			return &jsonError{offset: start, msg: "want " + describe(dst) + ", got an object"}
		}
	}
	r.pos++ // '{'
	r.skipSpace()
	if r.pos < len(r.data) && r.data[r.pos] == '}' {
		r.pos++
		return nil
	}
	for {
		if r.pos >= len(r.data) || r.data[r.pos] != '"' {
			return r.errorf("want a string key")
		}
		key, err := r.str()
		if err != nil {
			return err
		}
		r.skipSpace()
		if r.pos >= len(r.data) || r.data[r.pos] != ':' {
			return r.errorf("want ':' after object key")
		}
		r.pos++
		r.skipSpace()
		var field, elem reflect.Value
		switch {
		case !dst.IsValid():
		case dst.Kind() == reflect.Struct:
			field = fieldByKey(dst, key)
		default:
			elem = reflect.New(dst.Type().Elem()).Elem()
			field = elem
		}
		if err := r.value(field, depth); err != nil {
			return within(err, key)
		}
		if elem.IsValid() {
			k := reflect.New(dst.Type().Key()).Elem()
			k.SetString(key)
			dst.SetMapIndex(k, elem)
		}
		r.skipSpace()
		if r.pos >= len(r.data) {
			return r.errorf("unexpected end of input in an object")
		}
		switch r.data[r.pos] {
		case ',':
			r.pos++
			r.skipSpace()
		case '}':
			r.pos++
			return nil
		default:
			return r.errorf("want ',' or '}' after an object value")
		}
	}
}

// fieldByKey returns the exported field of struct v whose json name is key,
// matched exactly, else case-insensitively; invalid when there is none.
func fieldByKey(v reflect.Value, key string) reflect.Value {
	t := v.Type()
	fold := -1
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		if name == key {
			return v.Field(i)
		}
		if fold < 0 && strings.EqualFold(name, key) {
			fold = i
		}
	}
	if fold >= 0 {
		return v.Field(fold)
	}
	return reflect.Value{}
}

func (r *jsonReader) array(dst reflect.Value, depth int) error {
	start := r.pos
	if dst.IsValid() {
		switch dst.Kind() {
		case reflect.Slice, reflect.Array:
		default:
			if err := r.array(reflect.Value{}, depth); err != nil {
				return err
			}
			return &jsonError{offset: start, msg: "want " + describe(dst) + ", got an array"}
		}
	}
	r.pos++ // '['
	r.skipSpace()
	n := 0
	// As encoding/json: elements are decoded into the existing ones (a
	// repeated key), the rest of an array zeroed, a slice cut to length.
	defer func() {
		switch {
		case !dst.IsValid():
		case dst.Kind() == reflect.Array:
			for i := n; i < dst.Len(); i++ {
				dst.Index(i).SetZero()
			}
		case n == 0:
			dst.Set(reflect.MakeSlice(dst.Type(), 0, 0))
		case n < dst.Len():
			dst.SetLen(n)
		}
	}()
	if r.pos < len(r.data) && r.data[r.pos] == ']' {
		r.pos++
		return nil
	}
	for {
		var elem reflect.Value
		switch {
		case !dst.IsValid():
		case dst.Kind() == reflect.Slice:
			if n >= dst.Cap() {
				dst.Grow(1)
			}
			if n >= dst.Len() {
				dst.SetLen(n + 1)
			}
			elem = dst.Index(n)
		case n < dst.Len():
			elem = dst.Index(n)
		}
		if err := r.value(elem, depth); err != nil {
			return within(err, "["+strconv.Itoa(n)+"]")
		}
		n++
		r.skipSpace()
		if r.pos >= len(r.data) {
			return r.errorf("unexpected end of input in an array")
		}
		switch r.data[r.pos] {
		case ',':
			r.pos++
			r.skipSpace()
		case ']':
			r.pos++
			return nil
		default:
			return r.errorf("want ',' or ']' after an array element")
		}
	}
}

// number reads -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? into dst.
func (r *jsonReader) number(dst reflect.Value) error {
	start := r.pos
	digits := func() int {
		n := 0
		for r.pos < len(r.data) && '0' <= r.data[r.pos] && r.data[r.pos] <= '9' {
			r.pos++
			n++
		}
		return n
	}
	if r.data[r.pos] == '-' {
		r.pos++
	}
	if r.pos < len(r.data) && r.data[r.pos] == '0' {
		r.pos++
	} else if digits() == 0 {
		return r.errorf("want a digit in a number")
	}
	if r.pos < len(r.data) && r.data[r.pos] == '.' {
		r.pos++
		if digits() == 0 {
			return r.errorf("want a digit after the decimal point")
		}
	}
	if r.pos < len(r.data) && (r.data[r.pos] == 'e' || r.data[r.pos] == 'E') {
		r.pos++
		if r.pos < len(r.data) && (r.data[r.pos] == '+' || r.data[r.pos] == '-') {
			r.pos++
		}
		if digits() == 0 {
			return r.errorf("want a digit in the exponent")
		}
	}
	if !dst.IsValid() {
		return nil
	}
	lit := string(r.data[start:r.pos])
	bad := func() error {
		return &jsonError{offset: start, msg: "want " + describe(dst) + ", got " + lit}
	}
	if isTextUnmarshaler(dst) {
		return bad()
	}
	switch dst.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(lit, 10, 64)
		if err != nil || dst.OverflowInt(n) {
			return bad()
		}
		dst.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(lit, 10, 64)
		if err != nil || dst.OverflowUint(n) {
			return bad()
		}
		dst.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(lit, dst.Type().Bits())
		if err != nil || dst.OverflowFloat(f) {
			return bad()
		}
		dst.SetFloat(f)
	default:
		return bad()
	}
	return nil
}

// str reads a string at r.pos: escapes decoded, a surrogate pair joined, a
// lone surrogate or invalid UTF-8 replaced by U+FFFD (as encoding/json
// does), control characters refused.
func (r *jsonReader) str() (string, error) {
	r.pos++ // '"'
	start := r.pos
	// The common case: no escapes, valid UTF-8.
	for r.pos < len(r.data) {
		c := r.data[r.pos]
		if c == '"' {
			s := r.data[start:r.pos]
			if utf8.Valid(s) {
				r.pos++
				return string(s), nil
			}
			break
		}
		if c == '\\' || c < 0x20 {
			break
		}
		r.pos++
	}
	b := make([]byte, 0, r.pos-start+16)
	r.pos = start
	for r.pos < len(r.data) {
		c := r.data[r.pos]
		switch {
		case c == '"':
			r.pos++
			return string(b), nil
		case c < 0x20:
			return "", r.errorf("control character %#02x in a string", c)
		case c == '\\':
			if r.pos+1 >= len(r.data) {
				return "", r.errorf("unexpected end of input in a string escape")
			}
			e := r.data[r.pos+1]
			if e == 'u' {
				rn, err := r.hex4(r.pos + 2)
				if err != nil {
					return "", err
				}
				r.pos += 6
				if utf16.IsSurrogate(rn) {
					low := rune(-1)
					if r.pos+1 < len(r.data) && r.data[r.pos] == '\\' && r.data[r.pos+1] == 'u' {
						if l, err := r.hex4(r.pos + 2); err == nil {
							low = l
						}
					}
					if pair := utf16.DecodeRune(rn, low); pair != utf8.RuneError {
						r.pos += 6
						rn = pair
					} else {
						rn = utf8.RuneError
					}
				}
				b = utf8.AppendRune(b, rn)
				continue
			}
			k := strings.IndexByte(`"\/bfnrt`, e)
			if k < 0 {
				return "", r.errorf("invalid escape \\%c in a string", e)
			}
			b = append(b, "\"\\/\b\f\n\r\t"[k])
			r.pos += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			r.pos++
		default:
			rn, size := utf8.DecodeRune(r.data[r.pos:])
			b = utf8.AppendRune(b, rn) // RuneError for invalid bytes
			r.pos += size
		}
	}
	return "", r.errorf("unexpected end of input in a string")
}

// hex4 reads the four hex digits of a \u escape at i.
func (r *jsonReader) hex4(i int) (rune, error) {
	if i+4 > len(r.data) {
		return 0, &jsonError{offset: i, msg: "unexpected end of input in a \\u escape"}
	}
	n, err := strconv.ParseUint(string(r.data[i:i+4]), 16, 16)
	if err != nil {
		return 0, &jsonError{offset: i, msg: fmt.Sprintf("invalid \\u escape %q", r.data[i:i+4])}
	}
	return rune(n), nil
}
