// The Web Worker that runs the Go engine (clipwasm.wasm). clipwasm.js
// starts it; the protocol is documented in wasm/worker. This glue
// starts Go with the SIMD kernels linked, decodes images (the browser's
// decoders work in workers too, which keeps the page's thread free) and
// hands each request to Go.

import './wasm_exec.js'; // defines globalThis.Go
import { decodeImage } from './decode.js';
import { kernelImports, instantiateKernels } from './kernels/glue.mjs';

const PROTOCOL = 1;

// Requests whose images are being decoded, by id → {cancelled}. A cancel
// can arrive before Go has seen its target.
const preparing = new Map();

const engine = start();
// An engine that cannot start, or that exits (a Go panic), fails every
// request: the page hears it through an error event without an id.
engine.catch((err) => fail(undefined, 'internal', `the engine did not start: ${err.message}`));

self.onmessage = async ({ data: req }) => {
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
 */
async function start() {
  const go = new Go();
  let kernels = null;
  const { instance } = await WebAssembly.instantiateStreaming(
    fetch(new URL('clipwasm.wasm', import.meta.url)),
    { ...go.importObject, ...kernelImports(() => kernels) },
  );
  kernels = await instantiateKernels(instance);
  for (const err of kernels.errors) console.warn('clipwasm: a kernel module did not load:', err);
  // main serves until the worker ends, so an exit is a crash (a Go panic,
  // printed to the console).
  go.exit = (code) => fail(undefined, 'internal', `the engine exited with code ${code}; see the console`);
  go.run(instance); // runs main until it blocks; main posts "ready"
  return globalThis.clipwasmHandle;
}
