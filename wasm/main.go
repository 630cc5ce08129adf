//go:build js && wasm

// Command wasm is the CLIP engine compiled to WebAssembly (make wasm builds
// web/clipwasm.wasm). It runs inside the Web Worker that web/worker.js
// starts, answers the requests of web/clipwasm.js (the protocol is in
// package wasm/worker) and reaches the browser through
// github.com/syumai/tinyutil (fetch) and github.com/gowebapi/webapi (the
// Cache API, WebCrypto), with syscall/js where those have nothing to offer.
package main

import (
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"syscall/js"

	"github.com/syumai/tinyutil/httputil"

	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/wasm/worker"
)

func main() {
	backend := newBackend()
	store := newCacheStore("clipwasm-shards-v1")
	hash := webCryptoSHA256()
	srv := worker.NewServer(post, func(onProgress func(worker.Progress)) *worker.Loader {
		l := worker.NewLoader(httputil.DefaultClient, store, onProgress)
		if hash != nil {
			l.Hash = hash
		}
		return l
	}, backend, yield)
	srv.SetMemoryLimit = func(n int64) { debug.SetMemoryLimit(n) }

	// worker.js hands every request, images already decoded, to this
	// function; it must return at once, so Handle runs the work in a
	// goroutine.
	js.Global().Set("clipwasmHandle", js.FuncOf(func(_ js.Value, args []js.Value) any {
		req, err := parseRequest(args[0])
		if err != nil {
			post(worker.Event{ID: req.ID, Type: worker.EventError, Error: worker.AsError(err)})
			return nil
		}
		srv.Handle(req)
		return nil
	}))
	postValue(toJS(map[string]any{"type": worker.EventReady, "backend": backend.Name(), "ensembles": worker.EnsembleNames()}), nil)
	select {} // serve until the worker is terminated
}

// yield parks the computing goroutine on a timer. Go's js/wasm scheduler
// then has nothing to run and returns to the browser's event loop, which
// delivers pending messages (a cancel) before the timer fires.
func yield() { time.Sleep(time.Millisecond) }

// parseRequest reads a request object. syscall/js, since webapi has no
// types for the project's own messages.
func parseRequest(v js.Value) (worker.Request, error) {
	if v.Type() != js.TypeObject {
		return worker.Request{}, &worker.Error{Code: worker.CodeProtocol, Message: "a request must be an object"}
	}
	req := worker.Request{
		V: intField(v, "v"), ID: intField(v, "id"), Op: stringField(v, "op"),
		URL: stringField(v, "url"), Ensemble: stringField(v, "ensemble"),
		TopK: intField(v, "topK"), Target: intField(v, "target"),
		Texts: stringList(v.Get("texts")), Labels: stringList(v.Get("labels")), Templates: stringList(v.Get("templates")),
	}
	var err error
	if req.Pixels, err = typedArray[float32](v, "pixels", float32Ctor); err != nil {
		return req, err
	}
	if req.Tokens, err = typedArray[int32](v, "tokens", int32Ctor); err != nil {
		return req, err
	}
	if imgs := v.Get("images"); imgs.Truthy() {
		for i := range imgs.Length() {
			img := imgs.Index(i)
			if enc := img.Get("encoded"); enc.Truthy() {
				req.Images = append(req.Images, worker.Image{Encoded: goBytes(enc)})
				continue
			}
			w, h, rgba := intField(img, "width"), intField(img, "height"), img.Get("rgba")
			if !rgba.Truthy() {
				return req, &worker.Error{Code: worker.CodeProtocol, Message: "an image needs rgba pixels or encoded bytes"}
			}
			req.Images = append(req.Images, worker.Image{Width: w, Height: h, RGBA: goBytes(rgba)})
		}
	}
	return req, nil
}

func intField(v js.Value, name string) int {
	if f := v.Get(name); f.Type() == js.TypeNumber {
		return f.Int()
	}
	return 0
}

func stringField(v js.Value, name string) string {
	if f := v.Get(name); f.Type() == js.TypeString {
		return f.String()
	}
	return ""
}

func stringList(v js.Value) []string {
	if !v.Truthy() {
		return nil
	}
	out := make([]string, v.Length())
	for i := range out {
		out[i] = v.Index(i).String()
	}
	return out
}

// post sends an event to the page. Everything but embeddings goes as JSON
// (parsed into an object here, so the page gets plain objects); embeddings
// go as a transferred Float32Array.
func post(e worker.Event) {
	msg := toJS(e)
	var transfer []any
	if emb, ok := e.Result.(*worker.Embeddings); ok {
		data := float32Array(emb.Data)
		msg.Get("result").Set("data", data)
		transfer = append(transfer, data.Get("buffer"))
	}
	postValue(msg, transfer)
}

// toJS converts a protocol value to a JavaScript object tagged with the
// protocol version.
func toJS(v any) js.Value {
	obj := jsValue(reflect.ValueOf(v))
	obj.Set("v", worker.ProtocolVersion)
	return obj
}

// jsValue builds the JavaScript value that JSON.parse(JSON.stringify(v))
// would give under encoding/json's rules for the protocol's types: json
// tags and omitempty, kernels.Activation by its name, nil slices, maps and
// pointers as null, float32 by its shortest decimal. encoding/json itself
// would add about 70 KB (gzip) to the binary.
func jsValue(v reflect.Value) js.Value {
	if !v.IsValid() {
		return js.Null()
	}
	// kernels.Activation is the protocol's one text marshaler. Asserting
	// encoding.TextMarshaler on any value instead would keep every linked
	// type's MarshalText (time, math/big, net) in the binary.
	if a, ok := v.Interface().(kernels.Activation); ok {
		return js.ValueOf(a.String())
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return js.Null()
		}
		return jsValue(v.Elem())
	case reflect.Struct:
		obj := js.Global().Get("Object").New()
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" || opts == "omitempty" && isEmpty(v.Field(i)) {
				continue
			}
			if name == "" {
				name = f.Name
			}
			obj.Set(name, jsValue(v.Field(i)))
		}
		return obj
	case reflect.Map:
		if v.IsNil() {
			return js.Null()
		}
		obj := js.Global().Get("Object").New()
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys { // in encoding/json's order
			obj.Set(k.String(), jsValue(v.MapIndex(k)))
		}
		return obj
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return js.Null()
		}
		arr := js.Global().Get("Array").New(v.Len())
		for i := range v.Len() {
			arr.SetIndex(i, jsValue(v.Index(i)))
		}
		return arr
	case reflect.Float32:
		// JSON carries float32 as its shortest decimal; the page reads that
		// decimal's nearest double, not the float32's exact value.
		f, _ := strconv.ParseFloat(strconv.FormatFloat(v.Float(), 'g', -1, 32), 64)
		return js.ValueOf(f)
	case reflect.Float64:
		return js.ValueOf(v.Float())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return js.ValueOf(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return js.ValueOf(float64(v.Uint()))
	case reflect.String:
		return js.ValueOf(v.String())
	case reflect.Bool:
		return js.ValueOf(v.Bool())
	}
	panic("toJS: unsupported type " + v.Type().String()) // a protocol bug
}

// isEmpty is omitempty's test.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	case reflect.Slice, reflect.Map, reflect.Array, reflect.String:
		return v.Len() == 0
	}
	return v.IsZero()
}

// postValue posts to the page; webapi's DedicatedWorkerGlobalScope would
// bring in bindings for most of the platform for this one call.
func postValue(msg js.Value, transfer []any) {
	js.Global().Call("postMessage", msg, transfer)
}
