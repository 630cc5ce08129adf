//go:build js && wasm

package main

import (
	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/purego"
	"github.com/clipwasm/clipwasm/kernels/wasmsimd"
)

// newBackend returns the WebAssembly SIMD backend on the fastest kernel set
// that passes its start-up self-test (relaxed SIMD, SIMD128, or plain Go
// when neither does; web/worker.js links the kernel modules). Go's js/wasm
// runs one thread, so every set runs on one.
func newBackend() kernels.Backend {
	b, err := wasmsimd.New()
	if err != nil {
		// Documented not to happen under js/wasm; a panic here would
		// take the whole worker down, so say it in the console instead.
		println("clipwasm: the SIMD kernels are unavailable:", err.Error())
		return purego.New(1)
	}
	return b
}
