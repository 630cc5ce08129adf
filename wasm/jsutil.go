//go:build js && wasm

package main

import (
	"fmt"
	"syscall/js"
	"unsafe"

	"github.com/clipwasm/clipwasm/wasm/worker"
)

var (
	uint8Array  = js.Global().Get("Uint8Array")
	float32Ctor = js.Global().Get("Float32Array")
	int32Ctor   = js.Global().Get("Int32Array")
)

// goBytes copies a Uint8Array or Uint8ClampedArray into Go memory.
func goBytes(v js.Value) []byte {
	b := make([]byte, v.Get("byteLength").Int())
	js.CopyBytesToGo(b, v)
	return b
}

// jsBytes copies b into a new Uint8Array.
func jsBytes(b []byte) js.Value {
	u := uint8Array.New(len(b))
	js.CopyBytesToJS(u, b)
	return u
}

// scratch is one Uint8Array reused to hand bytes to browser APIs that copy
// their argument when called (WebCrypto's digest, the Response
// constructor). A fresh copy of each shard for each of them is garbage
// that V8 frees late: after a ViT-B/32 int8 load it held about 300 MB of
// the renderer's memory.
var scratch js.Value

// jsScratch copies b into the scratch buffer and returns a view of it that
// is valid until the next call: only for APIs that copy it before
// returning. (Go's js/wasm runs one goroutine at a time and switches only
// when one blocks, so nothing runs between this call and the next JS call
// of the goroutine that made it.)
func jsScratch(b []byte) js.Value {
	if scratch.IsUndefined() || scratch.Length() < len(b) {
		scratch = uint8Array.New(len(b))
	}
	v := scratch.Call("subarray", 0, len(b))
	js.CopyBytesToJS(v, b)
	return v
}

// float32Array copies x into a new Float32Array. js.CopyBytesToJS takes
// bytes only, so the floats go over as their little-endian bytes (wasm is
// little-endian, as is every typed array on the platforms that run it).
func float32Array(x []float32) js.Value {
	u := jsBytes(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), 4*len(x)))
	return float32Ctor.New(u.Get("buffer"))
}

// typedArray copies the field name of v, a typed array made by ctor whose
// elements are Ts, into Go memory; nil if the field is absent.
func typedArray[T float32 | int32](v js.Value, name string, ctor js.Value) ([]T, error) {
	f := v.Get(name)
	if f.IsUndefined() || f.IsNull() {
		return nil, nil
	}
	if !f.InstanceOf(ctor) {
		return nil, &worker.Error{Code: worker.CodeProtocol, Message: fmt.Sprintf("%s must be a %s", name, ctor.Get("name").String())}
	}
	out := make([]T, f.Length())
	raw := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), f.Get("byteLength").Int())
	js.CopyBytesToGo(raw, uint8Array.New(f.Get("buffer"), f.Get("byteOffset"), f.Get("byteLength")))
	return out, nil
}

// await waits for a promise and returns its value, or its rejection as a
// *jsError. It must not be called from a js.FuncOf callback, which would
// deadlock the event loop.
func await(p js.Value) (js.Value, error) {
	type settled struct {
		v   js.Value
		err error
	}
	ch := make(chan settled, 1)
	then := js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- settled{v: arg0(args)}
		return nil
	})
	catch := js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- settled{err: newJSError(arg0(args))}
		return nil
	})
	defer then.Release()
	defer catch.Release()
	p.Call("then", then, catch)
	s := <-ch
	return s.v, s.err
}

func arg0(args []js.Value) js.Value {
	if len(args) == 0 {
		return js.Undefined()
	}
	return args[0]
}

// jsError is a rejected promise's reason: a DOMException or Error has a
// name ("QuotaExceededError", "TypeError") and a message.
type jsError struct{ name, message string }

func newJSError(v js.Value) *jsError {
	if v.Type() == js.TypeObject && v.Get("name").Type() == js.TypeString {
		return &jsError{name: v.Get("name").String(), message: v.Get("message").String()}
	}
	return &jsError{name: "Error", message: js.Global().Call("String", v).String()}
}

func (e *jsError) Error() string { return fmt.Sprintf("%s: %s", e.name, e.message) }
