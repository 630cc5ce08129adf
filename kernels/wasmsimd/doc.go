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
// e2e/profile.mjs, ViT-B/32 int8, one thread, AMD EPYC with AVX2) puts
// 76–83% of image and text time in i8_gemm, 4–7% in the float32 GEMMs
// (patch embedding, attention scores), 2–3% each in quant_i8 and
// quickgelu, about 1% each in softmax and P·V, under 1% in layernorm and
// add; f32 bundles spend about 90% in f32_gemm_relaxed. i8_gemm's fastest
// calls reach 60–64 GOP/s, and so did two other tilings tried (4 rows of
// i16-widened activations by 2 weight rows, with and without the 4 rows
// interleaved so that one pointer reaches them, which issues about 10%
// fewer instructions per multiply-add): the remaining speed is in fewer
// multiply-adds (text rows padded to a chunk's longest prompt) and in
// threads, not in this loop.
//
// On other platforms the package builds, but New returns an error.
package wasmsimd
