// glue.mjs — links clipwasm's WebAssembly SIMD kernels to a Go wasm instance.
//
// The Go side (package wasmsimd) declares every kernel with
// //go:wasmimport clipkernels <name>. Go's instance must exist before the
// kernel modules can be instantiated (they import its memory), so the Go
// imports are one-line trampolines that forward to the kernel instance
// once it is linked:
//
//   import { kernelImports, instantiateKernels } from "./glue.mjs";
//   let kernels = null;
//   const go = new Go();
//   const { instance } = await WebAssembly.instantiateStreaming(fetch("main.wasm"),
//     { ...go.importObject, ...kernelImports(() => kernels) });
//   kernels = await instantiateKernels(instance, { relaxed: true });
//   go.run(instance);
//
// Works in a page, a Web Worker and Node (which reads file: URLs from disk;
// Node 20 needs --experimental-wasm-relaxed-simd for the relaxed set).
// Kernels a runtime cannot run are replaced by stubs that throw, and
// `available` tells the Go side not to call them; whether a set that
// compiles also computes correctly is for the Go self-test to decide.

/** The import module name the Go side uses. */
export const IMPORT_MODULE = "clipkernels";

/** Bits of `available`, as the Go side reads them. */
export const HAVE_SIMD128 = 1;
export const HAVE_RELAXED = 2;

// The exports of each kernel module (see simd128.wat and relaxed.wat).
const SIMD128_KERNELS = [
  "f32_gemm", "f32_gemm_nn", "quant_i8", "quant_u7", "q4_to_i8", "i8_dequant", "i8_rowsums",
  "i8_gemm", "layernorm", "softmax_rows", "gelu", "quickgelu", "relu", "add",
];
const RELAXED_KERNELS = ["f32_gemm_relaxed", "i8_gemm_relaxed"];

// Feature probes: (func (result v128) (v128.const i32x4 0 0 0 0)) and
// (func (param v128) (result v128) (i32x4.relaxed_dot_i8x16_i7x16_add_s …)),
// so a runtime without the feature is detected before anything is fetched.
const SIMD128_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 22, 1, 20, 0, 253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11]);
const RELAXED_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 6, 1, 96, 1, 123, 1, 123, 3, 2, 1, 0, 10, 13, 1, 11, 0, 32, 0, 32, 0, 32, 0, 253, 147, 2, 11]);

/** Reports whether this runtime validates SIMD128 and relaxed-SIMD code. */
export function detectFeatures() {
  const simd128 = WebAssembly.validate(SIMD128_PROBE);
  return { simd128, relaxed: simd128 && WebAssembly.validate(RELAXED_PROBE) };
}

/**
 * Returns the import object fragment `{ clipkernels: {...} }` to merge into
 * Go's importObject. getKernels() must return the result of
 * instantiateKernels by the time Go first calls a kernel (go.run comes
 * after linking, so it does); the exports are looked up on the first call
 * and kept.
 *
 * Each trampoline is its own function literal passing exactly the kernel's
 * parameters: V8 keeps call feedback per literal, so every call site stays
 * monomorphic and the JS-to-wasm call takes its fast path (a generic
 * forwarder shared by all kernels measured 19–28 ns per call against 12 ns
 * in Chromium 156).
 */
export function kernelImports(getKernels) {
  let k = null;
  const K = () => (k ??= getKernels().exports);
  return {
    [IMPORT_MODULE]: {
      available: () => getKernels()?.available ?? 0,
      f32_gemm: (dst, ldd, x, ldx, w, ldw, bias, m, n, kk) => K().f32_gemm(dst, ldd, x, ldx, w, ldw, bias, m, n, kk),
      f32_gemm_relaxed: (dst, ldd, x, ldx, w, ldw, bias, m, n, kk) => K().f32_gemm_relaxed(dst, ldd, x, ldx, w, ldw, bias, m, n, kk),
      f32_gemm_nn: (dst, ldd, x, ldx, w, ldw, m, n, kk) => K().f32_gemm_nn(dst, ldd, x, ldx, w, ldw, m, n, kk),
      quant_i8: (dst, ldd, sx, x, ldx, m, kk) => K().quant_i8(dst, ldd, sx, x, ldx, m, kk),
      quant_u7: (dst, ldd, sx, zx, x, ldx, m, kk) => K().quant_u7(dst, ldd, sx, zx, x, ldx, m, kk),
      q4_to_i8: (dst, rs, q4, scales, rows, cols) => K().q4_to_i8(dst, rs, q4, scales, rows, cols),
      i8_dequant: (dst, w, scales, rows, cols) => K().i8_dequant(dst, w, scales, rows, cols),
      i8_rowsums: (dst, w, ldw, n, kk) => K().i8_rowsums(dst, w, ldw, n, kk),
      i8_gemm: (dst, ldd, x, ldx, sx, w, ldw, sw, bias, m, n, kk) => K().i8_gemm(dst, ldd, x, ldx, sx, w, ldw, sw, bias, m, n, kk),
      i8_gemm_relaxed: (dst, ldd, x, ldx, sx, zx, w, ldw, sw, wsum, bias, m, n, kk) =>
        K().i8_gemm_relaxed(dst, ldd, x, ldx, sx, zx, w, ldw, sw, wsum, bias, m, n, kk),
      layernorm: (dst, x, gamma, beta, m, n, eps) => K().layernorm(dst, x, gamma, beta, m, n, eps),
      softmax_rows: (x, ld, rows, n, scale, causal) => K().softmax_rows(x, ld, rows, n, scale, causal),
      gelu: (x, n) => K().gelu(x, n),
      quickgelu: (x, n) => K().quickgelu(x, n),
      relu: (x, n) => K().relu(x, n),
      add: (dst, src, n) => K().add(dst, src, n),
    },
  };
}

// Each kernel's parameter count, read off its trampoline; linking checks
// the modules against it.
const ARITY = Object.fromEntries(Object.entries(kernelImports(() => null)[IMPORT_MODULE])
  .map(([name, f]) => [name, f.length]));

/**
 * Compiles and instantiates the kernel modules against goInstance's
 * exported memory. Options:
 *   relaxed: load the relaxed-SIMD module where the runtime supports it
 *            (default true);
 *   simd128, relaxedModule: where to get each module: a URL or string
 *            (fetched; file: URLs are read from disk under Node), bytes, or
 *            a compiled WebAssembly.Module (e.g. posted to a Worker).
 *            Defaults: simd128.wasm and relaxed.wasm next to this file.
 * Resolves to { available, exports, errors }: the bitmask of linked sets,
 * every kernel (a throwing stub where its module is missing), and the
 * reasons a supported module failed to load.
 */
export async function instantiateKernels(goInstance, {
  relaxed = true,
  simd128 = new URL("./simd128.wasm", import.meta.url),
  relaxedModule = new URL("./relaxed.wasm", import.meta.url),
} = {}) {
  const mem = goInstance.exports.mem;
  if (!(mem instanceof WebAssembly.Memory)) {
    throw new TypeError("instantiateKernels: the Go instance exports no memory 'mem'");
  }
  const imports = { env: { mem } };
  const exports = {};
  for (const name of [...SIMD128_KERNELS, ...RELAXED_KERNELS]) {
    exports[name] = () => { throw new Error(`clipkernels.${name}: kernel module not linked`); };
  }
  const errors = [];
  const features = detectFeatures();
  let available = 0;
  const link = async (source, names, bit) => {
    try {
      const instance = await instantiate(source, imports);
      for (const name of names) {
        if (instance.exports[name]?.length !== ARITY[name]) {
          throw new Error(`glue: kernel ${name} missing or not of ${ARITY[name]} parameters`);
        }
      }
      for (const name of names) exports[name] = instance.exports[name];
      available |= bit;
    } catch (err) {
      errors.push(err);
    }
  };
  if (features.simd128) {
    await link(simd128, SIMD128_KERNELS, HAVE_SIMD128);
  }
  if (relaxed && features.relaxed && (available & HAVE_SIMD128)) {
    await link(relaxedModule, RELAXED_KERNELS, HAVE_RELAXED);
  }
  return { available, exports, errors };
}

// instantiate accepts a Module, bytes, or a URL to fetch (or read, for
// file: URLs under Node).
async function instantiate(source, imports) {
  if (source instanceof WebAssembly.Module) {
    return WebAssembly.instantiate(source, imports);
  }
  if (typeof source === "string" || source instanceof URL) {
    const url = new URL(source, import.meta.url);
    if (url.protocol === "file:") {
      const { readFile } = await import("node:fs/promises");
      source = await readFile(url);
    } else {
      const res = await fetch(url);
      if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
      source = await res.arrayBuffer();
    }
  }
  return (await WebAssembly.instantiate(source, imports)).instance;
}
