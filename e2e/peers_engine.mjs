// The browser engine as an engine of the peers kit (../shared/peers,
// README "Engine contract"): times clipwasm in headless Chromium on the
// kit's exact inputs, side by side with ONNX Runtime Web in the same run.
//
//   ENGINE_NAME=clipwasm-web-int8 ENGINE_CMD="node e2e/peers_engine.mjs" \
//     ../shared/peers/run.sh ViT-B/32 ort-web-wasm clipwasm-web-int8
//   (make peers-web runs it for int8 and f32)
//
// $ENGINE_CMD --model-dir D --inputs-dir I --out-dir O --threads T
//   --encoder image|text --warmup W --runs R
//
// D/weights.safetensors is converted once per quantization (CLIPWASM_QUANT,
// default int8; the converter is $CLIPWASM_CONVERTER, default
// bin/weights-converter) into bin/peers-bundles/, reconverted when the
// weights (their sha256 in D/manifest.json) or the converter change.
// web/ (make wasm) and the bundle are served on 127.0.0.1 with COOP/COEP,
// so the page is cross-origin isolated and threads are possible; a fresh
// Chromium and profile per call. The page loads the engine through clipwasm.js with
// {threads: T} and feeds images.npy (already normalised, NCHW) through
// embedPixels and tokens.npy through embedTokens; only that call is timed.
// Contention: the kit's rule (lib/procstat.mjs, lib/npy.mjs), with this
// browser's processes as "own". peak_rss_mb is the peak resident memory
// (VmHWM) of the page's renderer process, where its workers run.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

const args = parseArgs(process.argv.slice(2));
for (const a of ['model-dir', 'inputs-dir', 'out-dir', 'threads', 'encoder']) {
  if (args[a] === undefined) throw new Error(`missing --${a} (see the top of ${path.basename(fileURLToPath(import.meta.url))})`);
}
if (!['image', 'text'].includes(args.encoder)) throw new Error(`--encoder ${args.encoder}: want image or text`);
const modelDir = path.resolve(args['model-dir']);
const inputsDir = path.resolve(args['inputs-dir']);
const outDir = path.resolve(args['out-dir']);
const threads = Number(args.threads);
const warmup = Number(args.warmup ?? 2);
const runs = Number(args.runs ?? 7);
const quant = process.env.CLIPWASM_QUANT ?? 'int8';
const peer = process.env.ENGINE_NAME ?? `clipwasm-web-${quant}`;

// The kit's own helpers: .npy writing, the contention rule, run selection.
const kitLib = path.join(inputsDir, '..', 'lib');
const { serializeNpy, median, needMoreRuns, selectRuns } = await import(path.join(kitLib, 'npy.mjs'));
const { snapshot, contention, ticksOfMarked, ownProcessSeconds } = await import(path.join(kitLib, 'procstat.mjs'));
const { quietFromEnv } = await import(path.join(kitLib, 'cli.mjs'));
const { chromium } = createRequire(path.join(REPO, 'e2e', 'package.json'))('playwright-core');

const kitManifest = JSON.parse(fs.readFileSync(path.join(modelDir, 'manifest.json'), 'utf8'));
const bundleDir = convertOnce();
if (!fs.existsSync(path.join(REPO, 'web', 'clipwasm.wasm'))) throw new Error('no web/clipwasm.wasm: run make wasm');

const TASKS = args.encoder === 'image'
  ? [{ task: 'image_b1', file: 'images_b1.npy' }, { task: 'image_b8', file: 'images.npy' }]
  : [{ task: 'text_80', file: 'tokens.npy' }];

const server = await serve({ '/models/bundle/': bundleDir, '/inputs/': inputsDir, '/': path.join(REPO, 'web') });
const base = `http://127.0.0.1:${server.address().port}`;
try {
  const r = await withBrowser(async (page, profile) => {
    await page.goto(`${base}/peers.html`);
    const rss = rendererPeak(profile);
    const own = () => ticksOfMarked(profile) + ownProcessSeconds();
    try {
      const loaded = await page.evaluate(loadJS, { manifest: '/models/bundle/manifest.json', threads });
      const tasks = [];
      for (const t of TASKS) {
        const batch = await page.evaluate(inputJS, { url: `/inputs/${t.file}`, text: args.encoder === 'text' });
        for (let i = 0; i < warmup; i++) await page.evaluate(runJS, { keep: false });
        const all = [];
        const quiet = quietFromEnv();
        while (needMoreRuns(all, runs, quiet)) {
          const before = snapshot(own);
          const ms = await page.evaluate(runJS, { keep: false });
          const c = contention(before, snapshot(own));
          all.push({ ms, busy: c.others_cpu_cores + c.steal_cores });
        }
        const output = await page.evaluate(runJS, { keep: true });
        tasks.push({ ...t, batch, output, ...selectRuns(all, runs, quiet) });
      }
      const stats = await page.evaluate(() => window.clip.stats());
      return { ...loaded, tasks, stats, rss: rss.peak };
    } finally {
      rss.stop(); // a last reading into rss.peak
    }
  });
  fs.mkdirSync(outDir, { recursive: true });
  for (const t of r.tasks) {
    const dim = t.output.length / t.batch;
    const file = `${t.task}_t${threads}.npy`;
    fs.writeFileSync(path.join(outDir, file), serializeNpy(Float32Array.from(t.output), [t.batch, dim]));
    const { times, output: _o, file: _f, ...info } = t;
    const rec = {
      peer, peer_version: `clipwasm (${r.backend}, ${quant} bundle) in headless Chromium ${chromiumVersion()}`,
      arch: kitManifest.arch, seed: kitManifest.seed, task: t.task, batch: t.batch, threads: r.threads,
      warmup, runs, times_ms: times.map((x) => +x.toFixed(3)), median_ms: +median(times).toFixed(3),
      min_ms: +Math.min(...times).toFixed(3), load_ms: +r.loadMs.toFixed(1), peak_rss_mb: +r.rss.renderer_mb.toFixed(1),
      output: file, others_cpu_cores: info.others_cpu_cores, all_times_ms: info.all_times_ms, all_busy: info.all_busy,
      discarded: info.discarded,
      extra: { threads_requested: threads, bundle_mb: +(r.bundleBytes / 1e6).toFixed(1), browser_peak_rss_mb: +r.rss.total_mb.toFixed(1),
        renderer_rss_at_end_mb: +r.rss.renderer_now_mb.toFixed(1),
        wasm_memory_mb: +(r.stats.sysBytes / (1 << 20)).toFixed(1), go_heap_mb: +(r.stats.heapBytes / (1 << 20)).toFixed(1) },
    };
    fs.appendFileSync(path.join(outDir, 'results.jsonl'), JSON.stringify(rec) + '\n');
    console.log(`[${peer}] ${t.task} t=${r.threads} median ${rec.median_ms.toFixed(1)} ms (load ${rec.load_ms} ms, `
      + `renderer rss ${rec.peak_rss_mb} MB, wasm ${rec.extra.wasm_memory_mb} MB, busy others ${rec.others_cpu_cores})`);
  }
} finally {
  server.close();
}

// ------------------------------------------------------------ in the page
// Loads the engine (timed: fetch, verify, build) and keeps it on window.
async function loadJS({ manifest, threads }) {
  const { ClipWasm } = await import('/clipwasm.js');
  const t0 = performance.now();
  window.clip = await ClipWasm.load(manifest, { threads });
  const loadMs = performance.now() - t0;
  return { loadMs, backend: window.clip.backend, threads: window.clip.threads, bundleBytes: window.clip.info.bytes };
}

// Fetches one input .npy (float32 images or int64 token ids) into
// window.benchInput and returns its batch size.
async function inputJS({ url, text }) {
  const buf = await (await fetch(url)).arrayBuffer();
  const headerLen = new DataView(buf).getUint16(8, true);
  const header = new TextDecoder().decode(new Uint8Array(buf, 10, headerLen));
  const batch = Number(/'shape': \((\d+),/.exec(header)[1]);
  const body = buf.slice(10 + headerLen);
  if (text) {
    if (!header.includes("'<i8'")) throw new Error(`${url}: want int64 token ids, header ${header}`);
    window.benchInput = { tokens: Int32Array.from(new BigInt64Array(body), Number) };
  } else {
    if (!header.includes("'<f4'")) throw new Error(`${url}: want float32 images, header ${header}`);
    window.benchInput = { pixels: new Float32Array(body) };
  }
  return batch;
}

// One encode call: its wall time in ms, or with keep its output.
async function runJS({ keep }) {
  const { pixels, tokens } = window.benchInput;
  const t0 = performance.now();
  const rows = pixels ? await window.clip.embedPixels(pixels) : await window.clip.embedTokens(tokens);
  const ms = performance.now() - t0;
  if (!keep) return ms;
  const out = [];
  for (const r of rows) out.push(...r);
  return out;
}

// ------------------------------------------------------------ Node side
function parseArgs(argv) {
  const a = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) throw new Error(`bad arguments at ${argv[i]}`);
    a[argv[i].slice(2)] = argv[i + 1];
  }
  return a;
}

// convertOnce converts the kit's weights into a bundle in bin/peers-bundles/
// unless one made from the same weights by the same converter (both by
// sha256) is there.
function convertOnce() {
  const slug = `${kitManifest.arch.replaceAll('/', '-')}-seed${kitManifest.seed}-${quant}`;
  const dir = path.join(REPO, 'bin', 'peers-bundles', slug);
  const stamp = path.join(REPO, 'bin', 'peers-bundles', `${slug}.stamp`);
  const converter = process.env.CLIPWASM_CONVERTER ?? path.join(REPO, 'bin', 'weights-converter');
  const made = `weights ${kitManifest.files['weights.safetensors']} converter `
    + createHash('sha256').update(fs.readFileSync(converter)).digest('hex');
  if (fs.existsSync(path.join(dir, 'manifest.json')) && fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === made) return dir;
  console.log(`[${peer}] converting ${modelDir}/weights.safetensors to a ${quant} bundle in ${dir}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  execFileSync(converter, ['--quiet', '--no-verify', '--in', path.join(modelDir, 'weights.safetensors'), '--out', dir, '--quant', quant],
    { stdio: 'inherit', cwd: REPO });
  fs.writeFileSync(stamp, made);
  return dir;
}

// serve answers GETs for files under each prefix's folder, cross-origin
// isolated (COOP/COEP), uncached, on a free port of 127.0.0.1.
function serve(roots) {
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm',
    '.json': 'application/json' };
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin', 'Cache-Control': 'no-store' };
    if (url === '/peers.html') {
      // A blank page of this origin for the engine (web/index.html would
      // start the product page).
      res.writeHead(200, { ...headers, 'Content-Type': 'text/html' });
      res.end('<!doctype html><title>clipwasm peers engine</title>');
      return;
    }
    const prefix = Object.keys(roots).find((p) => url.startsWith(p));
    const file = prefix && path.join(roots[prefix], path.normalize(url.slice(prefix.length)));
    if (!file || !file.startsWith(roots[prefix]) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, headers);
      res.end();
      return;
    }
    headers['Content-Type'] = types[path.extname(file)] ?? 'application/octet-stream';
    headers['Content-Length'] = fs.statSync(file).size;
    res.writeHead(200, headers);
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// withBrowser runs fn(page, profile) in a fresh headless Chromium with a
// fresh profile, with the page's console forwarded on failure.
async function withBrowser(fn) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'clipwasm-peers-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, timeout: 60000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--enable-precise-memory-info'],
  });
  const lines = [];
  try {
    const page = ctx.pages()[0] ?? await ctx.newPage();
    page.setDefaultTimeout(0);
    page.on('console', (m) => lines.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => lines.push(`pageerror: ${e}`));
    try {
      return await fn(page, profile);
    } catch (e) {
      throw new Error(`${e.message}\nbrowser console:\n${lines.slice(-20).join('\n')}`);
    }
  } finally {
    await ctx.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

// rendererPeak follows the memory of this browser's processes (their
// command lines hold the profile folder): the largest renderer's peak
// (VmHWM, so no spike between polls is missed) and its resident memory at
// the last reading, and the peak of all of them together (polled).
function rendererPeak(marker) {
  const peak = { renderer_mb: 0, renderer_now_mb: 0, total_mb: 0 };
  const tick = () => {
    let total = 0;
    for (const pid of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (!cmd.includes(marker)) continue;
        const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
        const mb = (field) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024;
        total += mb('VmRSS');
        if (cmd.includes('--type=renderer') && mb('VmHWM') >= peak.renderer_mb) {
          peak.renderer_mb = mb('VmHWM');
          peak.renderer_now_mb = mb('VmRSS');
        }
      } catch { /* the process ended */ }
    }
    peak.total_mb = Math.max(peak.total_mb, total);
  };
  const h = setInterval(tick, 100);
  return { peak, stop: () => { tick(); clearInterval(h); } };
}

function chromiumVersion() {
  try {
    return /Chromium ([\d.]+)/.exec(execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }))?.[1] ?? '?';
  } catch {
    return '?';
  }
}
