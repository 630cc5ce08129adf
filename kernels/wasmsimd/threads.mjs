// threads.mjs — runs the GEMM kernels on a pool of Web Workers over one
// shared WebAssembly memory.
//
// Go's wasm engine is single-threaded, and its kernel calls arrive one at a
// time through glue.mjs's trampolines. When the page is cross-origin
// isolated, the worker instead instantiates the shared-memory build (`make
// wasm` runs internal/wasmshare over the engine and kernel modules: the
// engine imports its memory, shared, instead of defining it) and starts
// threads − 1 helper workers, each with its own instance of the same
// kernel modules over that memory. wrapKernels replaces each GEMM export,
// and the MLP's activation, with one that cuts the output into blocks of
// columns (each block reads only its own rows of W, so W, the large
// operand, is still read once) or,
// when there are too few columns, of rows, and posts the call to the
// helpers through a small control block. Every thread, the caller
// included, then claims blocks one at a time until none is left, and the
// caller waits for the blocks in progress. Claiming rather than a fixed
// share per thread matters on a busy machine: a helper the OS does not
// schedule in time just gets fewer blocks, instead of holding up the call.
// Every output element is computed by the same kernel code with the same
// operands as in one call (rows and columns of a GEMM are independent, and
// the cuts fall on whole register tiles), so the results are bit-identical
// to one thread's. Calls below MIN_WORK multiply-adds run on the calling
// thread alone: waking the helpers costs tens of µs.
//
//   const pool = await startPool({ threads, memory, modules: [simd128, relaxed] });
//   kernels = { ...kernels, exports: pool.wrapKernels(kernels.exports) };
//   pool.stats(); // {threads, gemms, split}: calls so far of the kernels it can split, and those split
//
// The helpers block in Atomics.wait (allowed in workers), so they never
// return to their event loops; they end with the worker that started them.
// The kernels' memory accesses see memory growth by themselves; nothing
// here keeps a view of the wasm memory.

/** Smallest m·n·k for which a GEMM is split across threads. */
export const MIN_WORK = 1 << 20;
const ELEMENT_WORK = 16;

// The kernels the pool splits, by export name: the argument indices of m
// (GEMMs only) and n, and the pointer arguments that move with a row block (rows) or
// a column block (cols) as [argument, stride argument or -1, element
// bytes]: a block starting at row (column) s moves the pointer by
// s·stride·bytes (s·bytes without a stride). A null pointer (an absent
// bias) stays null.
const SPLITS = {
  f32_gemm: { arity: 10, m: 7, n: 8, rows: [[0, 1, 4], [2, 3, 4]], cols: [[0, -1, 4], [4, 5, 4], [6, -1, 4]] },
  f32_gemm_relaxed: { arity: 10, m: 7, n: 8, rows: [[0, 1, 4], [2, 3, 4]], cols: [[0, -1, 4], [4, 5, 4], [6, -1, 4]] },
  // W is [k, n] here: a column block moves along W's rows.
  f32_gemm_nn: { arity: 9, m: 6, n: 7, rows: [[0, 1, 4], [2, 3, 4]], cols: [[0, -1, 4], [4, -1, 4]] },
  i8_gemm: { arity: 12, m: 9, n: 10, rows: [[0, 1, 4], [2, 3, 1], [4, -1, 4]], cols: [[0, -1, 4], [5, 6, 1], [7, -1, 4], [8, -1, 4]] },
  i8_gemm_relaxed: {
    arity: 14, m: 11, n: 12,
    rows: [[0, 1, 4], [2, 3, 1], [4, -1, 4], [5, -1, 4]],
    cols: [[0, -1, 4], [6, 7, 1], [8, -1, 4], [9, -1, 4], [10, -1, 4]],
  },
  // The MLP's activation, in place over n floats (n a multiple of 4): cut
  // like columns. Its work is counted as ELEMENT_WORK multiply-adds per
  // value, so that it is split from 64k values on: 50·3072 values ran
  // 1.84× faster on 2 threads, 50·768 (38k, ~70 µs) 0.8× (Chromium 156,
  // BenchmarkThreadedGEMMs).
  gelu: { arity: 2, n: 1, cols: [[0, -1, 4]], work: (a) => a[1] * ELEMENT_WORK },
  quickgelu: { arity: 2, n: 1, cols: [[0, -1, 4]], work: (a) => a[1] * ELEMENT_WORK },
};
const SPLIT_NAMES = Object.keys(SPLITS);

// Blocks start on multiples of these and span at least two of them: the
// kernels' register tiles are at most 4 rows by 16 columns, and a column
// block of f32_gemm_nn narrower than 8 would take its scalar path (not
// fused on the relaxed set).
const ROW_ALIGN = 4;
const COL_ALIGN = 16;
// Blocks shrink as the job goes (guided self-scheduling): each is
// 1/(GUIDE·threads) of what is left, at least two alignment units. Big
// blocks first keep the calls few; small ones last keep short the time
// the caller waits for a block still in progress after the last claim
// (with 4 equal blocks per thread that wait was 7% of a ViT-B/32 image
// at 2 threads). MAX_BLOCKS bounds a job's list of block boundaries.
const GUIDE = 2;
const MAX_BLOCKS = 48;

// The control block: Int32 slots in a SharedArrayBuffer of its own.
const GEN = 0; // job generation, bumped by the caller to start a job
const FINISHED = 1; // blocks computed in the current job
const FAILED = 2; // a kernel threw (a helper prints its error to its console)
const KERNEL = 3; // index into SPLIT_NAMES
const BY_COLS = 4; // 1: column blocks, 0: row blocks
const BLOCKS = 5; // blocks in the current job
// The next block to claim, tagged with the job: (generation & 0x7fff) << 16
// | block. The caller closes a finished job (block CLOSED), so a helper
// that wakes late can claim nothing of it, nor of a job whose arguments it
// has not read.
const CLAIM = 6;
const CLOSED = 0xffff;
const ARGS = 8; // the kernel's arguments, all i32
const BOUNDS = ARGS + 16; // block b spans [BOUNDS+b, BOUNDS+b+1) rows or columns
const CONTROL_SLOTS = BOUNDS + MAX_BLOCKS + 1;

// How long a thread polls before sleeping in Atomics.wait: a futex wake-up
// takes tens of µs (more in a VM), while the engine's GEMMs come a few µs
// to a few ms apart, the work between them on the calling thread. The
// caller waits for the blocks in progress SPIN_MS. A helper polls
// HELPER_SPIN_MS after its last job, which spans the gaps within and
// between the requests of a busy page: a helper woken from sleep for each
// request was, on this 2-vCPU VM, often placed on the caller's CPU and
// took no part in a whole image (ViT-B/32 b1 at 2 threads: runs of
// ~130 ms among ~80 ms ones in the peers kit). A polling helper uses a
// core that would otherwise idle.
const SPIN_MS = 2;
const HELPER_SPIN_MS = 50;
// Polls between clock reads.
const SPIN_CHECK = 1024;

/**
 * The number of threads to use: min(requested, hardwareConcurrency), and 1
 * where the page is not cross-origin isolated (no SharedArrayBuffer, no
 * shared wasm memory) or the runtime lacks shared memory. requested
 * defaults to hardwareConcurrency.
 */
export function threadCount(requested) {
  const cores = globalThis.navigator?.hardwareConcurrency || 1;
  if (!globalThis.crossOriginIsolated || typeof SharedArrayBuffer !== 'function') return 1;
  const n = Math.floor(Number(requested ?? cores));
  return Number.isFinite(n) ? Math.max(1, Math.min(n, cores)) : 1;
}

/**
 * Creates the shared memory a module rewritten by internal/wasmshare
 * imports, as its "clipwasm.shared_memory" custom section describes it.
 * Resolves to { memory, module, name } (the import to supply it as).
 */
export function sharedMemoryFor(module) {
  const [section] = WebAssembly.Module.customSections(module, 'clipwasm.shared_memory');
  if (!section) throw new Error('threads: the module has no clipwasm.shared_memory section (not rewritten by wasmshare)');
  const { module: importModule, name, initial, maximum } = JSON.parse(new TextDecoder().decode(section));
  return { memory: new WebAssembly.Memory({ initial, maximum, shared: true }), module: importModule, name };
}

/**
 * Lets Go's wasm_exec.js run on a shared memory. It decodes strings with
 * TextDecoder.decode and fills random bytes with crypto.getRandomValues
 * straight over views of the wasm memory, and both refuse views of a
 * SharedArrayBuffer; with this, a shared view is copied to (or filled
 * through) an ordinary buffer first. Only this realm's prototypes change,
 * and unshared views take the original path.
 */
export function allowSharedViews() {
  const shared = (v) => ArrayBuffer.isView(v) && v.buffer instanceof SharedArrayBuffer;
  const bytesOf = (v) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  const decode = TextDecoder.prototype.decode;
  if (decode.allowsShared) return;
  const sharedDecode = function (input, options) {
    // A SharedArrayBuffer's slice is shared too: copy into a new array.
    return decode.call(this, shared(input) ? new Uint8Array(bytesOf(input)) : input, options);
  };
  sharedDecode.allowsShared = true;
  TextDecoder.prototype.decode = sharedDecode;
  const crypto = globalThis.crypto;
  if (!crypto) return;
  const getRandomValues = crypto.getRandomValues;
  crypto.getRandomValues = function (view) {
    if (!shared(view)) return getRandomValues.call(crypto, view);
    const bytes = new Uint8Array(view.byteLength);
    getRandomValues.call(crypto, bytes);
    bytesOf(view).set(bytes);
    return view;
  };
}

/**
 * Starts threads − 1 helper workers, each instantiating the compiled
 * kernel modules (WebAssembly.Module, importing env.mem shared) over
 * memory. Resolves to { threads, wrapKernels(exports), stats(), close() }.
 */
export async function startPool({ threads, memory, modules }) {
  const control = new Int32Array(new SharedArrayBuffer(CONTROL_SLOTS * 4));
  const helpers = [];
  try {
    await Promise.all(Array.from({ length: threads - 1 }, (_, i) => {
      const helper = startHelper();
      helpers.push(helper);
      return new Promise((resolve, reject) => {
        helper.onmessage = ({ data }) => (data.error ? reject(new Error(`threads: helper ${i + 1}: ${data.error}`)) : resolve());
        helper.onerror = (e) => {
          e.preventDefault();
          reject(new Error(`threads: helper ${i + 1} did not start: ${e.message}`));
        };
        helper.postMessage({ memory, modules, control: control.buffer, helper: i + 1 });
      });
    }));
  } catch (err) {
    for (const h of helpers) h.terminate();
    throw err;
  }
  const counts = { gemms: 0, split: 0 };
  return {
    threads,
    wrapKernels: (exports) => wrapKernels(exports, control, threads, counts),
    stats: () => ({ threads, ...counts }),
    close: () => helpers.forEach((h) => h.terminate()),
  };
}

// startHelper starts this module as a helper worker. A worker started from
// a blob (clipwasm.js's cross-origin shim) cannot load a script of another
// origin directly, so then it goes through a same-origin shim too.
function startHelper() {
  const url = new URL(import.meta.url);
  url.searchParams.set('role', 'helper');
  if (url.origin === globalThis.location?.origin) return new Worker(url, { type: 'module' });
  const shim = new Blob([`import ${JSON.stringify(url.href)};`], { type: 'text/javascript' });
  return new Worker(URL.createObjectURL(shim), { type: 'module' });
}

// wrapKernels returns exports with each GEMM replaced by its split form,
// counting calls in counts. A GEMM whose arity differs from the table
// above (a changed kernel) is left single-threaded rather than split
// wrongly.
function wrapKernels(exports, control, threads, counts) {
  const wrapped = { ...exports };
  for (const [index, name] of SPLIT_NAMES.entries()) {
    const kernel = exports[name];
    if (typeof kernel !== 'function') continue;
    if (kernel.length !== SPLITS[name].arity) {
      console.warn(`threads: ${name} takes ${kernel.length} arguments, not ${SPLITS[name].arity}; it stays on one thread`);
      continue;
    }
    wrapped[name] = (...args) => run(kernel, index, args, control, threads, counts);
  }
  return wrapped;
}

// run computes one GEMM call with the helpers: post it, claim blocks like
// every helper, wait for the blocks still in progress, close the job.
function run(kernel, index, args, control, threads, counts) {
  const spec = SPLITS[SPLIT_NAMES[index]];
  counts.gemms++;
  const m = args[spec.m], n = args[spec.n];
  let byCols;
  if ((spec.work ? spec.work(args) : m * n * args[spec.n + 1]) < MIN_WORK) {
    return kernel(...args);
  } else if (n >= threads * 2 * COL_ALIGN) {
    byCols = 1;
  } else if (spec.rows && m >= threads * 2 * ROW_ALIGN) {
    byCols = 0;
  } else {
    return kernel(...args);
  }
  counts.split++;
  const gen = (Atomics.load(control, GEN) + 1) | 0;
  const tag = (gen & 0x7fff) << 16;
  const blocks = guidedBounds(control, byCols ? n : m, byCols ? COL_ALIGN : ROW_ALIGN, threads);
  control[KERNEL] = index;
  control[BY_COLS] = byCols;
  control[BLOCKS] = blocks;
  for (let i = 0; i < args.length; i++) control[ARGS + i] = args[i];
  Atomics.store(control, FINISHED, 0);
  Atomics.store(control, FAILED, 0);
  Atomics.store(control, CLAIM, tag);
  Atomics.store(control, GEN, gen);
  Atomics.notify(control, GEN);
  const err = work(control, tag, (b) => runBlock(kernel, spec, args, byCols, control, b));
  // Wait for the blocks helpers claimed, even after a failure here: they
  // still read the arguments.
  for (const spin = spinner(SPIN_MS), done = () => Atomics.load(control, FINISHED); done() < blocks;) {
    const seen = done();
    if (!spin()) Atomics.wait(control, FINISHED, seen);
  }
  Atomics.store(control, CLAIM, tag | CLOSED);
  if (err) throw err;
  if (Atomics.load(control, FAILED)) throw new Error('threads: a GEMM failed in a helper worker (see its console)');
}

// work claims blocks of the job tagged tag and runs them until none is
// left, counting each finished block (and waking the caller after the
// last). It returns the first error a block threw, having marked FAILED.
function work(control, tag, runBlockAt) {
  let err = null;
  for (;;) {
    const claim = Atomics.load(control, CLAIM);
    const block = claim & 0xffff;
    if ((claim & ~0xffff) !== tag || block >= control[BLOCKS]) return err;
    if (Atomics.compareExchange(control, CLAIM, claim, claim + 1) !== claim) continue;
    try {
      runBlockAt(block);
    } catch (e) {
      err ??= e;
      Atomics.store(control, FAILED, 1);
    }
    if (Atomics.add(control, FINISHED, 1) + 1 === control[BLOCKS]) Atomics.notify(control, FINISHED);
  }
}

// guidedBounds writes the block boundaries of a job over total rows or
// columns into the control block and returns the number of blocks: each
// block 1/(GUIDE·threads) of what is left, rounded up to align, at least
// 2·align, the last one taking the rest.
function guidedBounds(control, total, align, threads) {
  let blocks = 0;
  control[BOUNDS] = 0;
  for (let start = 0; start < total; blocks++) {
    let size = Math.max(2 * align, Math.ceil((total - start) / (GUIDE * threads) / align) * align);
    if (blocks === MAX_BLOCKS - 1 || total - start - size < 2 * align) size = total - start;
    start += size;
    control[BOUNDS + blocks + 1] = start;
  }
  return blocks;
}

// spinner returns a function that says whether to keep polling: true for
// ms after the spinner was made.
function spinner(ms) {
  let polls = 0, until = 0;
  return () => {
    // A spin-wait hint (x86 PAUSE) where the runtime has it: a polling
    // thread then takes less from a sibling hardware thread.
    Atomics.pause?.();
    if (polls++ % SPIN_CHECK !== 0) return true;
    const now = performance.now();
    if (until === 0) until = now + ms;
    return now < until;
  };
}

// runBlock computes block `block` of a GEMM call with arguments args, row
// blocks or column blocks, bounds from the control block.
function runBlock(kernel, spec, args, byCols, control, block) {
  const start = control[BOUNDS + block], end = control[BOUNDS + block + 1];
  const a = args.slice();
  a[byCols ? spec.n : spec.m] = end - start;
  for (const [arg, stride, bytes] of byCols ? spec.cols : spec.rows) {
    if (a[arg] !== 0) a[arg] += start * (stride < 0 ? 1 : args[stride]) * bytes;
  }
  kernel(...a);
}

// serve is a helper's loop: wait for a job, claim and compute blocks of
// it, forever.
function serve(kernels, control, helper) {
  for (let seen = Atomics.load(control, GEN); ;) {
    for (const spin = spinner(HELPER_SPIN_MS); Atomics.load(control, GEN) === seen;) {
      if (!spin()) Atomics.wait(control, GEN, seen);
    }
    seen = Atomics.load(control, GEN);
    // The arguments are the job's while the claim carries its tag: the
    // caller rewrites them only after closing the job.
    const tag = (seen & 0x7fff) << 16;
    const name = SPLIT_NAMES[control[KERNEL]];
    const spec = SPLITS[name];
    const args = Array.from(control.subarray(ARGS, ARGS + spec.arity));
    const byCols = control[BY_COLS];
    const err = work(control, tag, (b) => runBlock(kernels[name], spec, args, byCols, control, b));
    if (err) console.error(`threads: ${name} failed in helper ${helper}:`, err);
  }
}

// A helper worker: instantiate the kernels over the shared memory, say so,
// then serve forever.
if (new URL(import.meta.url).searchParams.get('role') === 'helper') {
  self.onmessage = async ({ data: { memory, modules, control, helper } }) => {
    self.onmessage = null;
    const kernels = {};
    try {
      for (const module of modules) {
        const instance = await WebAssembly.instantiate(module, { env: { mem: memory } });
        Object.assign(kernels, instance.exports);
      }
    } catch (err) {
      self.postMessage({ error: `cannot instantiate the kernels: ${err.message}` });
      return;
    }
    self.postMessage({ ready: true });
    serve(kernels, new Int32Array(control), helper);
  };
}
