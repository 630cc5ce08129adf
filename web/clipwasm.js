// clipwasm.js — CLIP zero-shot image classification in the browser. Photos
// never leave the device: the engine (Go compiled to WebAssembly) runs in a
// Web Worker on weights fetched once and kept in the Cache API.
//
//   import { ClipWasm } from './clipwasm.js';
//   const clip = await ClipWasm.load('models/vit-b-32-int8/manifest.json', { onProgress });
//   const ranked = await clip.classify(file, ['cat', 'dog']);   // [{label, prob, logit}, ...]
//
// Threads: on a cross-origin isolated page (served with
// Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy:
// require-corp or credentialless) the engine runs its matrix products on
// min(threads, navigator.hardwareConcurrency) threads; elsewhere on one.
// clip.threads says how many it got.
//
// Every method takes {signal} (an AbortSignal). Embeddings are the raw
// projected CLIP embeddings (Float32Array, not normalised).

const PROTOCOL = 1;

/** An engine error: code is one of the worker protocol's error codes. */
export class ClipWasmError extends Error {
  constructor({ code, message, shard }) {
    super(message);
    this.name = 'ClipWasmError';
    this.code = code;
    if (shard) this.shard = shard;
  }
}

export class ClipWasm {
  #worker;
  #nextId = 1;
  #pending = new Map(); // id → {resolve, reject, onProgress}
  #ready;
  #dead = null;

  /** Model and load details from the worker's load result. */
  info = null;
  /** Backend name and template ensembles the engine offers. */
  backend = '';
  ensembles = [];
  /** The threads the engine runs on (1 where the page is not cross-origin isolated). */
  threads = 1;

  /**
   * Starts a worker and loads the bundle whose manifest is at manifestURL
   * (relative to the page).
   * @param {string|URL} manifestURL
   * @param {{onProgress?: (p: object) => void, signal?: AbortSignal, threads?: number}} [options]
   *   onProgress gets {phase, loadedBytes, totalBytes, loadedFiles, totalFiles, cachedFiles, cachedBytes}.
   *   threads caps the threads (default: navigator.hardwareConcurrency); see the top of this file.
   */
  static async load(manifestURL, { onProgress, signal, threads } = {}) {
    const clip = new ClipWasm({ threads });
    try {
      await clip.#ready;
      const url = new URL(manifestURL, globalThis.document?.baseURI ?? location.href).href;
      clip.info = await clip.#request({ op: 'load', url }, { onProgress, signal });
    } catch (err) {
      clip.dispose();
      throw err;
    }
    return clip;
  }

  /** @param {{threads?: number}} [options] as for load */
  constructor({ threads } = {}) {
    const url = new URL('./worker.js', import.meta.url);
    if (threads !== undefined) url.searchParams.set('threads', String(threads));
    this.#worker = startWorker(url);
    this.#ready = new Promise((resolve, reject) => {
      this.#worker.onmessage = ({ data }) => {
        if (data.type === 'threads') {
          this.threads = data.threads;
          return;
        }
        if (data.type === 'ready') {
          this.backend = data.backend;
          this.ensembles = data.ensembles;
          resolve();
          return;
        }
        this.#receive(data, reject);
      };
      this.#worker.onerror = (e) => {
        e.preventDefault();
        const err = new ClipWasmError({ code: 'internal', message: `worker failed: ${e.message}` });
        this.#fail(err);
        reject(err);
      };
    });
  }

  #receive(msg, rejectReady) {
    if (msg.v !== PROTOCOL) return;
    if (msg.id === undefined) {
      // The engine could not start or crashed: nothing will answer.
      const err = new ClipWasmError(msg.error);
      this.#fail(err);
      rejectReady(err);
      return;
    }
    const p = this.#pending.get(msg.id);
    if (!p) return; // aborted here already
    if (msg.type === 'progress') {
      p.onProgress?.(msg.progress);
      return;
    }
    this.#pending.delete(msg.id);
    if (msg.type === 'error') p.reject(new ClipWasmError(msg.error));
    else p.resolve(msg.result);
  }

  #fail(err) {
    this.#dead = err;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  #request(req, { onProgress, signal } = {}) {
    if (this.#dead) return Promise.reject(this.#dead);
    if (signal?.aborted) return Promise.reject(signal.reason);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const abort = () => {
        // Reject now; the worker stops at its next check and its late
        // answer is dropped.
        this.#pending.delete(id);
        this.#worker.postMessage({ v: PROTOCOL, id: this.#nextId++, op: 'cancel', target: id });
        reject(signal.reason);
      };
      signal?.addEventListener('abort', abort, { once: true });
      const done = (f) => (v) => {
        signal?.removeEventListener('abort', abort);
        f(v);
      };
      this.#pending.set(id, { resolve: done(resolve), reject: done(reject), onProgress });
      this.#worker.postMessage({ v: PROTOCOL, id, ...req });
    });
  }

  /**
   * Embeds one image.
   * @param {Blob|File|ImageBitmap|ImageData|HTMLImageElement|HTMLCanvasElement|OffscreenCanvas} image
   * @returns {Promise<Float32Array>}
   */
  async embedImage(image, options) {
    return (await this.embedImages([image], options))[0];
  }

  /** Embeds several images; resolves to one Float32Array per image. */
  async embedImages(images, options) {
    const prepared = await Promise.all(images.map(postable));
    const r = await this.#request({ op: 'embedImage', images: prepared }, options);
    return rows(r);
  }

  /**
   * Embeds texts (each tokenized as clip.tokenize does, cut to 77 tokens).
   * @param {string|string[]} texts
   * @returns {Promise<Float32Array|Float32Array[]>} one row, or one per text
   */
  async embedText(texts, options) {
    const single = typeof texts === 'string';
    const r = rows(await this.#request({ op: 'embedText', texts: single ? [texts] : texts }, options));
    return single ? r[0] : r;
  }

  /**
   * Embeds images already preprocessed into the model's input: n×3×R×R
   * floats, NCHW, resized, cropped and normalised as CLIP's preprocess
   * does (R is info.config.image_resolution). For benchmarks and checks on
   * fixed inputs; pages pass images to embedImages.
   * @param {Float32Array} pixels
   * @returns {Promise<Float32Array[]>} one row per image
   */
  async embedPixels(pixels, options) {
    return rows(await this.#request({ op: 'embedImage', pixels }, options));
  }

  /**
   * Embeds texts given as token ids: n rows of info.config.context_length
   * ids, as clip.tokenize makes them.
   * @param {Int32Array} tokens
   * @returns {Promise<Float32Array[]>} one row per text
   */
  async embedTokens(tokens, options) {
    return rows(await this.#request({ op: 'embedText', tokens }, options));
  }

  /**
   * Ranks labels for an image, zero-shot.
   * @param image as for embedImage
   * @param {string[]} labels
   * @param {{templates?: string[], ensemble?: string, topK?: number, signal?: AbortSignal}} [options]
   *   templates hold "{}" for the label (default "a photo of a {}."); or name an ensemble (see ensembles).
   * @returns {Promise<{label: string, prob: number, logit: number}[]>} most probable first
   */
  async classify(image, labels, { templates, ensemble, topK = 0, signal } = {}) {
    const prepared = await postable(image);
    const r = await this.#request({ op: 'classify', images: [prepared], labels, templates, ensemble, topK }, { signal });
    return r.results[0];
  }

  /**
   * The engine's memory: {heapBytes, sysBytes, numGC}. sysBytes is about
   * the size of its WebAssembly memory, which never shrinks.
   */
  stats() {
    return this.#request({ op: 'stats' });
  }

  /**
   * The engine's threads: {threads, gemms, split}, the matrix products run
   * so far and how many of them were split across the threads.
   */
  threadStats() {
    return this.#request({ op: 'threads' });
  }

  /** Cancels every request in flight; each rejects with an AbortError. */
  cancel() {
    for (const [id, p] of this.#pending) {
      this.#worker.postMessage({ v: PROTOCOL, id: this.#nextId++, op: 'cancel', target: id });
      p.reject(new DOMException('cancelled', 'AbortError'));
    }
    this.#pending.clear();
  }

  /** Stops the worker and frees its memory; the instance is unusable after. */
  dispose() {
    this.#worker.terminate();
    this.#fail(new ClipWasmError({ code: 'disposed', message: 'disposed' }));
  }
}

/**
 * Starts the worker. A page on another origin than this module (an
 * embedded widget) cannot start a worker from its URL directly, so it
 * starts a same-origin one that imports it (the server must allow CORS).
 */
function startWorker(url) {
  if (url.origin === location.origin) return new Worker(url, { type: 'module' });
  const shim = new Blob([`import ${JSON.stringify(url.href)};`], { type: 'text/javascript' });
  return new Worker(URL.createObjectURL(shim), { type: 'module' });
}

/**
 * Makes an image postable: Blobs, ImageData and ImageBitmaps are copied to
 * the worker as they are (it decodes Blobs); DOM images and canvases, which
 * cannot cross to a worker, become ImageBitmaps here.
 */
async function postable(image) {
  if (image instanceof Blob || image instanceof ImageData || image instanceof ImageBitmap) return image;
  return createImageBitmap(image, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
}

/** Splits an Embeddings result into one Float32Array per row. */
function rows({ dim, data }) {
  const out = [];
  for (let i = 0; i < data.length; i += dim) out.push(data.subarray(i, i + dim));
  return out;
}
