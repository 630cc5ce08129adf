// Package wasmsimd is the WebAssembly backend of package kernels: under
// GOOS=js GOARCH=wasm its heavy ops run in hand-written WebAssembly SIMD
// kernels (simd128.wat, relaxed.wat, assembled into the .wasm files next to
// them) that a second module instance runs directly on the Go instance's
// memory. Go's wasm compiler emits no SIMD, so this is where the browser
// engine gets its speed.
//
// # Linking
//
// The Go side declares each kernel with //go:wasmimport under the module
// name "clipkernels". The host must provide those imports when it
// instantiates the Go binary, and link the kernel modules to Go's exported
// memory afterwards; glue.mjs does both:
//
//	import { kernelImports, instantiateKernels } from "./glue.mjs";
//	let kernels = null;
//	const go = new Go();
//	const { instance } = await WebAssembly.instantiateStreaming(fetch("main.wasm"),
//		{ ...go.importObject, ...kernelImports(() => kernels) });
//	kernels = await instantiateKernels(instance, { relaxed: true });
//	go.run(instance);
//
// A binary that imports this package cannot be instantiated without those
// imports (Go's plain wasm_exec.js lacks them). The glue always provides
// them; kernels a browser cannot run are reported as unavailable, and the
// Go side then never calls them.
//
// # Kernel sets
//
// New runs a known-answer self-test of every kernel against plain Go
// references once, then picks the fastest set whose kernels all pass:
// "relaxed" (relaxed-SIMD int8 dot and fused f32 multiply-add, plus the
// SIMD128 row ops), "simd128", or "go" (package purego). So a browser
// without relaxed SIMD, or a runtime that miscomputes it (Node 20's
// baseline compiler does, for the int8 dot), still gets right answers.
// Selected reports the choice.
//
// # Numerics
//
// Linear with f32 weights is a float32 GEMM. Int8 and q4 weights multiply
// activations quantized per row (token) on the fly: to int8 symmetric for
// the simd128 set, and to 7-bit unsigned with a zero point for the relaxed
// set, whose int8 dot requires one operand below 128 (the weights keep
// their 8 bits). q4 weights are converted once to int8 with one scale per
// row and cached in Matrix.Prepared.
//
// # Where the time goes
//
// A V8 CPU profile of the engine's worker in Chromium 156 (node
// e2e/profile.mjs, ViT-B/32 int8, one thread, AMD EPYC with AVX2, image
// b1) puts about 82% in i8_gemm_relaxed, 5% in f32_gemm_relaxed (patch
// embedding, attention scores), 2.5% in quickgelu, 1.5% in f32_gemm_nn
// (P·V), under 1% each in quant_u7, softmax and layernorm, and under 1%
// in Go's collector. i8_gemm_relaxed runs at 85–88 GOP/s on the image
// tower's shapes (V8 lowers each dot to vpmaddubsw + vpmaddwd + vpaddd
// there: two multiply uops per 16 multiply-adds, which bounds it near
// 100); the SIMD128 set's i8_gemm, with 8-bit activations, at 60–64.
// Tilings tried on i8_gemm (4 rows of i16-widened activations by 2
// weight rows, with and without the rows interleaved) were no faster.
//
// On other platforms the package builds, but New returns an error.
package wasmsimd
