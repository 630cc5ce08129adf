// profile.mjs — where the browser engine's time goes: runs the peers kit's
// ViT-B/32 tasks (image b1, image b8, 80 prompts) on a bundle in headless
// Chromium, with V8's sampling CPU profiler attached to the engine's Web
// Worker, and prints each task's wall time, the worker thread's CPU time
// (from /proc: steadier than wall time on a shared machine) and its self
// time by function (Go functions, the kernels of simd128.wasm /
// relaxed.wasm, JS glue, GC).
//
// Usage (from the repository root):
//
//	node e2e/profile.mjs --bundle DIR [--wasm clipwasm.wasm] [--kernels DIR]
//	    [--runs 3] [--top 25] [--json out.json] [--tasks image_b1,image_b8,text_80]
//	    [--threads 1] [--web DIR]
//
// Only the engine's own worker is profiled: with --threads above 1 the GEMM
// helper workers' time shows as waiting.
//
// --wasm serves another engine binary than web/clipwasm.wasm: build one
// with function names for a readable profile (make wasm strips them):
//
//	GOOS=js GOARCH=wasm go build -trimpath -o /tmp/named.wasm ./wasm
//
// The kernel glue and modules come from kernels/wasmsimd (the working
// tree's, no make wasm needed) and wasm_exec.js from GOROOT; --kernels
// serves the files that DIR has instead (simd128.wasm and relaxed.wasm
// assembled with wat2wasm --debug-names name the kernels' helpers in the
// profile; another revision's modules and glue.mjs time that revision).
// Everything else is web/, or --web DIR (another revision's page and
// worker, to go with its engine and kernels). CHROMIUM names the browser (default
// /usr/bin/chromium); playwright-core only drives it.
import http from 'node:http';
import fs from 'node:fs/promises';
import path from 'node:path';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';

const { values: opt } = parseArgs({
  options: {
    bundle: { type: 'string' },
    wasm: { type: 'string' },
    kernels: { type: 'string' },
    runs: { type: 'string', default: '3' },
    top: { type: 'string', default: '25' },
    json: { type: 'string' },
    tasks: { type: 'string', default: 'image_b1,image_b8,text_80' },
    threads: { type: 'string', default: '1' },
    web: { type: 'string' },
  },
});
if (!opt.bundle) {
  console.error('usage: node e2e/profile.mjs --bundle DIR [--wasm FILE] [--kernels DIR] [--runs N] [--top N] [--json FILE]');
  process.exit(2);
}
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const web = path.resolve(opt.web ?? path.join(root, 'web'));
const goroot = process.env.GOROOT || execFileSync('go', ['env', 'GOROOT']).toString().trim();
const peers = process.env.CLIPWASM_FIXTURES
  ? path.join(process.env.CLIPWASM_FIXTURES, '..', 'peers', 'inputs')
  : path.join(root, '..', 'shared', 'peers', 'inputs');

const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
const page = '<!doctype html><meta charset="utf-8"><title>clipwasm profile</title>';

// resolve maps a request path to a file; null for anything outside the
// served folders.
function resolve(p) {
  const inside = (dir, rel) => {
    const f = path.resolve(dir, '.' + path.posix.normalize('/' + rel));
    return f.startsWith(path.resolve(dir) + path.sep) ? f : null;
  };
  if (p === '/clipwasm.wasm' && opt.wasm) return path.resolve(opt.wasm);
  if (p === '/wasm_exec.js') return path.join(goroot, 'lib', 'wasm', 'wasm_exec.js');
  if (p.startsWith('/kernels/')) {
    const own = opt.kernels && inside(opt.kernels, p.slice('/kernels/'.length));
    return own && existsSync(own) ? own : inside(path.join(root, 'kernels', 'wasmsimd'), p.slice('/kernels/'.length));
  }
  if (p.startsWith('/models/bundle/')) return inside(opt.bundle, p.slice('/models/bundle/'.length));
  return inside(web, p.slice(1));
}

const server = http.createServer(async (req, res) => {
  const p = new URL(req.url, 'http://x').pathname;
  const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cache-Control': 'no-store' };
  if (p === '/profile.html') {
    res.writeHead(200, { ...headers, 'Content-Type': 'text/html' }).end(page);
    return;
  }
  const file = resolve(p);
  try {
    if (!file) throw new Error('outside');
    const body = await fs.readFile(file);
    res.writeHead(200, { ...headers, 'Content-Type': types[path.extname(file)] ?? 'application/octet-stream' }).end(body);
  } catch {
    console.error(`profile: 404 ${p}`);
    res.writeHead(404, headers).end();
  }
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;

// launch (not a persistent context) starts Chromium on a fresh temporary
// profile and gives the Browser object that browser-level CDP needs.
const browserApp = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const browser = await browserApp.newContext();

// The worker's CDP session: Playwright opens sessions on pages only, so
// attach through a browser-level session (non-flattened, so messages to
// the worker travel inside Target.sendMessageToTarget).
const cdp = await browserApp.newBrowserCDPSession();
let workerSession = null;
let nextId = 1;
const pending = new Map();
async function attachWorker() {
  const { targetInfos } = await cdp.send('Target.getTargets');
  const w = targetInfos.find((t) => t.type === 'worker' && new URL(t.url).pathname === '/worker.js');
  if (!w) throw new Error('no engine worker among the targets: ' + targetInfos.map((t) => `${t.type} ${t.url}`).join(', '));
  const { sessionId } = await cdp.send('Target.attachToTarget', { targetId: w.targetId, flatten: false });
  workerSession = sessionId;
}
{
  cdp.on('Target.receivedMessageFromTarget', ({ sessionId, message }) => {
    if (sessionId !== workerSession) return;
    const m = JSON.parse(message);
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.error) p.reject(new Error(m.error.message));
    else p.resolve(m.result);
  });
}
function workerSend(method, params = {}) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    cdp.send('Target.sendMessageToTarget', { sessionId: workerSession, message: JSON.stringify({ id, method, params }) }).catch(reject);
  });
}

const tab = await browser.newPage();
tab.on('console', (m) => console.error(`page ${m.type()}: ${m.text()}`));
tab.on('worker', (w) => w.on('console', (m) => console.error(`worker ${m.type()}: ${m.text()}`)));
await tab.goto(base + '/profile.html');

// The kit's inputs, read here: images_u8.npy [8, 224, 224, 3] as RGBA
// pixels (base64, for the trip into the page) and the prompts.
const kitImages = (() => {
  const npy = readFileSync(path.join(peers, 'images_u8.npy'));
  const rgb = npy.subarray(10 + npy.readUInt16LE(8));
  const size = 224 * 224;
  return Array.from({ length: rgb.length / (3 * size) }, (_, i) => {
    const rgba = Buffer.alloc(4 * size, 255);
    for (let p = 0; p < size; p++) rgb.copy(rgba, 4 * p, 3 * (i * size + p), 3 * (i * size + p + 1));
    return rgba.toString('base64');
  });
})();
const prompts = readFileSync(path.join(peers, 'prompts.txt'), 'utf8').split('\n').filter(Boolean);

// Loads the bundle and the inputs into window.prof; the tasks are then run
// by name, one call per evaluate so the profiler brackets them.
await tab.evaluate(async ({ threads, kitImages, prompts }) => {
  const { ClipWasm } = await import('/clipwasm.js');
  const images = kitImages.map((b64) => new ImageData(Uint8ClampedArray.from(atob(b64), (c) => c.charCodeAt(0)), 224, 224));
  const clip = await ClipWasm.load('/models/bundle/manifest.json', { threads });
  window.prof = {
    clip,
    tasks: {
      image_b1: () => clip.embedImage(images[0]),
      image_b8: () => clip.embedImages(images),
      text_80: () => clip.embedText(prompts),
    },
  };
  return `${clip.backend}, ${clip.threads} thread(s)`;
}, { threads: Number(opt.threads), kitImages, prompts }).then((b) => console.log(`backend: ${b}`));

// runTask runs a task once and returns its wall time and the CPU time of
// the busiest renderer thread meanwhile (the engine's worker): on a shared
// machine the wall time follows other processes' load, the thread's CPU
// time much less.
async function runTask(name) {
  const before = rendererThreadTicks();
  const wall = await tab.evaluate(async (name) => {
    const t0 = performance.now();
    await window.prof.tasks[name]();
    return performance.now() - t0;
  }, name);
  const after = rendererThreadTicks();
  let busiest = 0;
  for (const [tid, t] of after) busiest = Math.max(busiest, t - (before.get(tid) ?? 0));
  return { wall, cpu: busiest * 1000 / CLOCK_TICKS };
}

// CLOCK_TICKS is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const CLOCK_TICKS = 100;

// rendererThreadTicks returns user+system CPU ticks by thread id for every
// thread of the Chromium renderer processes descended from this process,
// read from /proc (empty where there is no /proc).
function rendererThreadTicks() {
  const parent = new Map();
  const renderers = [];
  let pids = [];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return new Map();
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      parent.set(pid, stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('--type=renderer')) renderers.push(pid);
    } catch {
      // exited meanwhile
    }
  }
  const mine = (pid) => {
    for (let p = pid; p && p !== '0' && p !== '1'; p = parent.get(p)) if (p === String(process.pid)) return true;
    return false;
  };
  const ticks = new Map();
  for (const pid of renderers.filter(mine)) {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        ticks.set(tid, Number(f[11]) + Number(f[12]));
      } catch {
        // exited meanwhile
      }
    }
  }
  return ticks;
}

{
  await attachWorker();
  await workerSend('Profiler.enable');
  await workerSend('Profiler.setSamplingInterval', { interval: 200 });
}

const report = {};
const runs = Number(opt.runs);
for (const task of opt.tasks.split(',')) {
  await runTask(task); // warm-up
  const results = [];
  const stats = () => tab.evaluate(() => window.prof.clip.stats());
  const before = await stats();
  await workerSend('Profiler.start');
  for (let i = 0; i < runs; i++) results.push(await runTask(task));
  const { profile } = await workerSend('Profiler.stop');
  const after = await stats();
  const sorted = (xs) => [...xs].sort((a, b) => a - b);
  const times = sorted(results.map((r) => r.wall));
  const cpu = sorted(results.map((r) => r.cpu));
  report[task] = {
    median_ms: times[times.length >> 1], times_ms: times,
    cpu_median_ms: cpu[cpu.length >> 1], cpu_ms: cpu,
    // Go's collections per run and its heap: in the browser the heap is
    // bounded tightly (the wasm memory never shrinks), so collections
    // cost time.
    gc_per_run: (after.numGC - before.numGC) / runs, heap_mb: after.heapBytes / 2 ** 20, wasm_mb: after.sysBytes / 2 ** 20,
    ...summarize(profile, runs),
  };
  print(task, report[task]);
}
// A check that the profiled engine computes the right thing: image b1's
// cosine to PyTorch's output on the kit's seed-0 weights (meaningful when
// the bundle was converted from those).
const expected = path.join(peers, '..', 'models', 'ViT-B-32', 'expected-seed0', 'torch_image_b1.npy');
if (existsSync(expected)) {
  const got = await tab.evaluate(async () => Array.from(await window.prof.tasks.image_b1()));
  const npy = readFileSync(expected);
  const body = npy.subarray(10 + npy.readUInt16LE(8));
  const want = new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.length));
  let dot = 0, gg = 0, ww = 0;
  for (let i = 0; i < want.length; i++) {
    dot += got[i] * want[i];
    gg += got[i] * got[i];
    ww += want[i] * want[i];
  }
  report.image_b1_cosine_to_torch = dot / Math.sqrt(gg * ww);
  console.log(`\nimage b1 cosine to PyTorch (seed-0 weights): ${report.image_b1_cosine_to_torch.toFixed(6)}`);
}
if (opt.json) writeFileSync(opt.json, JSON.stringify(report, null, 1));
await browserApp.close();
server.close();

// summarize turns a CPU profile into per-run milliseconds: self time by
// function, and total (inclusive) time of each function on the stack.
function summarize(profile, runs) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const name = (n) => {
    const f = n.callFrame;
    const file = f.url ? f.url.slice(f.url.lastIndexOf('/') + 1) : '';
    return (f.functionName || '(anonymous)') + (file && !file.endsWith('.wasm') && !f.functionName.startsWith('$') ? ` [${file}]` : '');
  };
  const self = new Map();
  const total = new Map();
  let sum = 0;
  profile.samples.forEach((id, i) => {
    const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000 / runs;
    sum += dt;
    const n = byId.get(id);
    const s = name(n);
    self.set(s, (self.get(s) ?? 0) + dt);
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const nm = name(byId.get(cur));
      if (seen.has(nm)) continue;
      seen.add(nm);
      total.set(nm, (total.get(nm) ?? 0) + dt);
    }
  });
  const sorted = (m) => [...m].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, Math.round(v * 100) / 100]);
  return { sampled_ms: sum, self: sorted(self), total: sorted(total) };
}

function print(task, r) {
  console.log(`\n== ${task}: median ${r.median_ms.toFixed(1)} ms (${r.times_ms.map((t) => t.toFixed(0)).join(', ')}); ` +
    `worker CPU median ${r.cpu_median_ms.toFixed(0)} ms (${r.cpu_ms.map((t) => t.toFixed(0)).join(', ')})`);
  console.log(`   Go: ${r.gc_per_run.toFixed(2)} collections per run; heap ${r.heap_mb.toFixed(1)} MB of ${r.wasm_mb.toFixed(1)} MB from the wasm memory`);
  const top = Number(opt.top);
  console.log(`   sampled ${r.sampled_ms.toFixed(1)} ms per run; self time per run:`);
  for (const [k, v] of r.self.slice(0, top)) console.log(`   ${v.toFixed(2).padStart(9)}  ${k}`);
  console.log('   total (inclusive) per run:');
  for (const [k, v] of r.total.slice(0, top)) console.log(`   ${v.toFixed(2).padStart(9)}  ${k}`);
}
