// The Web Worker that runs the Go engine (clipwasm.wasm). clipwasm.js
// starts it; the protocol is documented in wasm/worker. This glue
// starts Go with the SIMD kernels linked, decodes images (the browser's
// decoders work in workers too, which keeps the page's thread free) and
// hands each request to Go.

import './wasm_exec.js'; // defines globalThis.Go
import { decodeImage } from './decode.js';
import { kernelImports, instantiateKernels, detectFeatures } from './kernels/glue.mjs';
import { threadCount, sharedMemoryFor, allowSharedViews, startPool } from './kernels/threads.mjs';

const PROTOCOL = 1;

// Requests whose images are being decoded, by id → {cancelled}. A cancel
// can arrive before Go has seen its target.
const preparing = new Map();

// The thread pool's counters, or null on one thread (see kernels/threads.mjs).
let threadStats = null;

const engine = start();
// An engine that cannot start, or that exits (a Go panic), fails every
// request: the page hears it through an error event without an id.
engine.catch((err) => fail(undefined, 'internal', `the engine did not start: ${err.message}`));

self.onmessage = async ({ data: req }) => {
  if (req.op === 'threads') {
    // Answered here: the pool is JS, Go does not know it.
    await engine.catch(() => {});
    const result = threadStats?.() ?? { threads: 1, gemms: 0, split: 0 };
    return self.postMessage({ v: PROTOCOL, id: req.id, type: 'result', result });
  }
  if (req.op === 'cancel' && preparing.has(req.target)) {
    preparing.get(req.target).cancelled = true;
  }
  if (req.images) {
    const state = { cancelled: false };
    preparing.set(req.id, state);
    try {
      req.images = await Promise.all(req.images.map(decodeImage));
    } catch (err) {
      return fail(req.id, 'bad-request', `cannot decode the image: ${err.message}`);
    } finally {
      preparing.delete(req.id);
    }
    if (state.cancelled) return fail(req.id, 'cancelled', 'cancelled');
  }
  let handle;
  try {
    handle = await engine;
  } catch {
    return; // reported once, above
  }
  handle(req);
};

function fail(id, code, message) {
  self.postMessage({ v: PROTOCOL, id, type: 'error', error: { code, message } });
}

/**
 * Instantiates the engine and resolves to its request handler. The Go
 * binary imports the SIMD kernels (//go:wasmimport clipkernels ...), so the
 * kernel glue supplies those imports, then links the kernel modules to Go's
 * memory; the Go side's self-test picks the set to use.
 *
 * Threads: this worker's URL may carry ?threads=N (clipwasm.js's threads
 * option). Where the page is cross-origin isolated and more than one
 * thread is wanted, the worker fetches the shared-memory build instead
 * (clipwasm.shared.wasm and kernels/*.shared.wasm, made by `make wasm`
 * with internal/wasmshare; only one of the two builds is downloaded) and
 * runs the GEMMs on a pool of helper workers (kernels/threads.mjs).
 */
async function start() {
  const go = new Go();
  let kernels = null;
  const imports = { ...go.importObject, ...kernelImports(() => kernels) };
  let threads = threadCount(new URL(import.meta.url).searchParams.get('threads') ?? undefined);
  let instance;
  if (threads > 1) {
    try {
      ({ instance, kernels } = await startThreaded(imports, threads));
    } catch (err) {
      console.warn('clipwasm: threads did not start, running on one:', err);
      threads = 1;
    }
  }
  if (threads === 1) {
    ({ instance } = await WebAssembly.instantiateStreaming(fetch(new URL('clipwasm.wasm', import.meta.url)), imports));
    kernels = await instantiateKernels(instance);
  }
  for (const err of kernels.errors) console.warn('clipwasm: a kernel module did not load:', err);
  self.postMessage({ v: PROTOCOL, type: 'threads', threads });
  // main serves until the worker ends, so an exit is a crash (a Go panic,
  // printed to the console).
  go.exit = (code) => fail(undefined, 'internal', `the engine exited with code ${code}; see the console`);
  go.run(instance); // runs main until it blocks; main posts "ready"
  return globalThis.clipwasmHandle;
}

/**
 * Instantiates the shared-memory build over a new shared memory, links
 * the kernels to it and starts threads − 1 helpers that compute blocks of
 * each GEMM with their own instances of the same kernel modules.
 */
async function startThreaded(imports, threads) {
  const url = (name) => new URL(name, import.meta.url);
  const compile = (name) => WebAssembly.compileStreaming(fetch(url(name)));
  const features = detectFeatures();
  // Without SIMD the engine runs plain Go, which has no kernels to share.
  if (!features.simd128) throw new Error('this browser has no WebAssembly SIMD');
  const [engine, simd128, relaxed] = await Promise.all([
    compile('clipwasm.shared.wasm'),
    compile('kernels/simd128.shared.wasm'),
    features.relaxed ? compile('kernels/relaxed.shared.wasm') : null,
  ]);
  const shared = sharedMemoryFor(engine);
  allowSharedViews(); // wasm_exec.js decodes strings over the (now shared) memory
  const instance = await WebAssembly.instantiate(engine, {
    ...imports, [shared.module]: { [shared.name]: shared.memory },
  });
  const kernels = await instantiateKernels(instance, { simd128, relaxedModule: relaxed, relaxed: relaxed !== null });
  const pool = await startPool({ threads, memory: shared.memory, modules: relaxed ? [simd128, relaxed] : [simd128] });
  threadStats = pool.stats;
  return { instance, kernels: { ...kernels, exports: pool.wrapKernels(kernels.exports) } };
}
