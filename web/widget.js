// widget.js — <clip-classifier>, a zero-shot photo classifier for any page.
// The photo is classified on the visitor's device; it is never uploaded.
//
//   <script type="module" src="https://example.org/clipwasm/widget.js"></script>
//   <clip-classifier model="https://example.org/models/vit-b-32-int8/manifest.json"
//                    labels="cat, dog, bird" ensemble="imagenet" top="3"></clip-classifier>
//
// Attributes: model (manifest URL), labels (comma-separated), templates
// ("|"-separated, each with {} for the label) or ensemble (a name the engine
// offers), top (how many labels to show; default 5). Changing labels,
// templates, ensemble or top re-ranks the current photo.
//
// threads caps the engine's threads (default: the device's cores; the
// first widget of a model sets it).
//
// Threads need a cross-origin isolated page: the host page must be served
// with Cross-Origin-Opener-Policy: same-origin and
// Cross-Origin-Embedder-Policy: require-corp (or credentialless), and then
// every cross-origin file it loads, these scripts and the model included,
// needs CORS or Cross-Origin-Resource-Policy: cross-origin (the project's
// devserver sends both). On a page without isolation the engine runs on
// one thread, with the same results.
//
// Events: clip-ready {detail: {info, ensembles, threads}}, clip-result
// {detail: {results}}, clip-error {detail: {error}}. Method: classify(image?).

import { ClipWasm } from './clipwasm.js';

// One engine per model and page, however many widgets use it.
const engines = new Map();
function engine(url, onProgress, threads) {
  const key = new URL(url, document.baseURI).href;
  if (!engines.has(key)) {
    const p = ClipWasm.load(key, { onProgress, threads });
    p.catch(() => engines.delete(key)); // let a later widget retry
    engines.set(key, p);
  }
  return engines.get(key);
}

const template = document.createElement('template');
template.innerHTML = `
<style>
  :host { display: block; font: 15px/1.4 system-ui, sans-serif; color: #1d2433; max-width: 36rem; }
  .drop { display: grid; place-items: center; gap: .5rem; min-height: 9rem; padding: 1rem;
          border: 2px dashed #8a94a6; border-radius: .75rem; cursor: pointer; text-align: center; }
  .drop:focus-within, .drop.over { border-color: #2f6fde; background: #eef4ff; }
  .drop input { position: absolute; opacity: 0; width: 1px; height: 1px; }
  .drop img { max-width: 100%; max-height: 16rem; border-radius: .5rem; }
  progress { width: 100%; }
  .status { min-height: 1.4em; margin: .5rem 0; color: #4a5568; }
  .status.error { color: #b42318; }
  ol { list-style: none; margin: 0; padding: 0; display: grid; gap: .35rem; }
  li { display: grid; grid-template-columns: minmax(6rem, 1fr) 3fr 4rem; align-items: center; gap: .5rem; }
  .bar { height: .8rem; border-radius: .4rem; background: linear-gradient(90deg, #2f6fde var(--p), #e2e8f0 var(--p)); }
  .prob { text-align: right; font-variant-numeric: tabular-nums; }
  .private { font-size: .8rem; color: #4a5568; }
</style>
<label class="drop" part="drop">
  <input type="file" accept="image/*">
  <img alt="" hidden>
  <span class="prompt">Choose a photo, or drop one here</span>
  <span class="private">Classified on this device: the photo is not uploaded.</span>
</label>
<progress hidden max="1" value="0"></progress>
<p class="status" role="status" aria-live="polite"></p>
<ol class="results" aria-label="Predicted labels"></ol>`;

export class ClipClassifier extends HTMLElement {
  static observedAttributes = ['model', 'labels', 'templates', 'ensemble', 'top'];

  #root = this.attachShadow({ mode: 'open' });
  #engine = null; // Promise<ClipWasm>
  #image = null;
  #run = null; // AbortController of the classification in progress
  #preview = null;
  #queued = null; // the classification classify() scheduled

  constructor() {
    super();
    this.#root.append(template.content.cloneNode(true));
    const drop = this.#$('.drop');
    this.#$('input').addEventListener('change', (e) => {
      if (e.target.files[0]) this.classify(e.target.files[0]);
    });
    drop.addEventListener('dragover', (e) => {
      e.preventDefault();
      drop.classList.add('over');
    });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      const file = [...e.dataTransfer.files].find((f) => f.type.startsWith('image/'));
      if (file) this.classify(file);
    });
  }

  #$(selector) {
    return this.#root.querySelector(selector);
  }

  connectedCallback() {
    if (this.hasAttribute('model')) this.#engine ??= this.#load();
  }

  attributeChangedCallback(name, old, value) {
    if (!this.isConnected || old === value) return;
    if (name === 'model') this.#engine = this.#load();
    if (this.#image) this.classify();
  }

  #status(text, isError = false) {
    const s = this.#$('.status');
    s.textContent = text;
    s.classList.toggle('error', isError);
  }

  #fail(error) {
    if (error.name === 'AbortError') return;
    this.#status(error.message, true);
    this.dispatchEvent(new CustomEvent('clip-error', { detail: { error } }));
  }

  async #load() {
    const model = this.getAttribute('model');
    const bar = this.#$('progress');
    bar.hidden = false;
    this.#status('Loading the model…');
    try {
      const threads = this.hasAttribute('threads') ? Number(this.getAttribute('threads')) : undefined;
      const clip = await engine(model, (p) => {
        bar.value = p.totalBytes ? p.loadedBytes / p.totalBytes : 0;
        const mb = (n) => (n / 1e6).toFixed(1);
        this.#status(p.phase === 'verify' ? 'Preparing the model…'
          : `Loading the model: ${mb(p.loadedBytes)} of ${mb(p.totalBytes)} MB (${p.loadedFiles}/${p.totalFiles} files)`);
      }, threads);
      this.#status(this.#image ? '' : 'Ready.');
      this.dispatchEvent(new CustomEvent('clip-ready', { detail: { info: clip.info, ensembles: clip.ensembles, threads: clip.threads } }));
      return clip;
    } catch (err) {
      this.#fail(err);
      return null;
    } finally {
      bar.hidden = true;
    }
  }

  get #labels() {
    return (this.getAttribute('labels') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  }

  /**
   * Classifies image (a File, Blob or anything clipwasm.js takes), or the
   * current one again. Calls in one task (several attributes changed at
   * once) make one classification.
   */
  classify(image) {
    if (image && image !== this.#image) {
      this.#show(image);
      this.#image = image;
    }
    this.#queued ??= Promise.resolve().then(() => {
      this.#queued = null;
      return this.#classify();
    });
    return this.#queued;
  }

  async #classify() {
    const image = this.#image;
    if (!image) return;
    if (!this.#engine) {
      this.#status('No model: set the model attribute to a bundle manifest URL.', true);
      return;
    }
    const labels = this.#labels;
    if (!labels.length) {
      this.#status('Add some labels to rank.', true);
      return;
    }
    this.#run?.abort();
    const run = (this.#run = new AbortController());
    const clip = await this.#engine;
    if (!clip || run.signal.aborted) return;
    this.#status('Classifying…');
    const templates = this.getAttribute('templates')?.split('|').map((s) => s.trim()).filter(Boolean);
    try {
      const results = await clip.classify(image, labels, {
        templates: templates?.length ? templates : undefined,
        ensemble: this.getAttribute('ensemble') || undefined,
        topK: Number(this.getAttribute('top') ?? 5),
        signal: run.signal,
      });
      this.#render(results);
      this.#status('');
      this.dispatchEvent(new CustomEvent('clip-result', { detail: { results } }));
    } catch (err) {
      this.#fail(err);
    }
  }

  #show(image) {
    const img = this.#$('img');
    if (this.#preview) URL.revokeObjectURL(this.#preview);
    this.#preview = image instanceof Blob ? URL.createObjectURL(image) : null;
    img.src = this.#preview ?? '';
    img.alt = image.name ? `Photo: ${image.name}` : 'The photo being classified';
    img.hidden = !this.#preview;
    this.#$('.prompt').textContent = 'Choose another photo, or drop one here';
  }

  #render(results) {
    const list = this.#$('.results');
    list.replaceChildren(...results.map(({ label, prob }) => {
      const li = document.createElement('li');
      li.className = 'result';
      const pct = `${(prob * 100).toFixed(1)}%`;
      li.innerHTML = '<span class="label"></span><span class="bar" aria-hidden="true"></span><span class="prob"></span>';
      li.querySelector('.label').textContent = label;
      li.querySelector('.bar').style.setProperty('--p', pct);
      li.querySelector('.prob').textContent = pct;
      return li;
    }));
  }
}

customElements.define('clip-classifier', ClipClassifier);
