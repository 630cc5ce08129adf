// driver.mjs — a headless Chromium that e2e_test.go steers. It reads one
// JSON command per line on stdin and answers one JSON line per command on
// stdout: {id, ok: true, value} or {id, ok: false, error}. Keeping the
// scenarios in the Go test lets them use the devserver's request log and
// the native engine directly.
//
// Commands: goto {url}, eval {fn, arg} (fn is the source of a function run
// in the page, awaited, with arg), fill/click/waitFor {selector}, setFiles
// {selector, files}, screenshot {path}, quota {origin, bytes} (overrides the
// origin's storage quota), memory (Chromium's processes' resident memory),
// freshPage {url} (closes the page and opens url in a new one: a new
// renderer process, so memory measured there is not left over from
// earlier tests), close.
//
// Environment: CHROMIUM (default /usr/bin/chromium).

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const profile = mkdtempSync(join(tmpdir(), 'clipwasm-e2e-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run',
  ],
  viewport: { width: 1000, height: 900 },
});
const consoleLines = [];
const listen = (p) => {
  p.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  p.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  p.on('worker', (w) => w.on('console', (m) => consoleLines.push(`worker ${m.type()}: ${m.text()}`)));
  return p;
};
let page = listen(context.pages()[0] ?? (await context.newPage()));

const commands = {
  goto: ({ url }) => page.goto(url).then((r) => r?.status()),
  freshPage: async ({ url }) => {
    const old = page;
    page = listen(await context.newPage());
    await old.close();
    return page.goto(url).then((r) => r?.status());
  },
  eval: ({ fn, arg }) => page.evaluate(`(${fn})(${JSON.stringify(arg ?? null)})`),
  fill: ({ selector, value }) => page.fill(selector, value),
  click: ({ selector }) => page.click(selector),
  waitFor: ({ selector, state, timeout }) => page.waitForSelector(selector, { state, timeout: timeout ?? 60000 }).then(() => true),
  setFiles: ({ selector, files }) => page.setInputFiles(selector, files),
  screenshot: ({ path }) => page.screenshot({ path, fullPage: true }).then(() => path),
  quota: async ({ origin, bytes }) => {
    const cdp = await context.newCDPSession(page);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: bytes });
    return true;
  },
  memory: () => chromiumMemory(),
  console: () => consoleLines.splice(0),
};

/**
 * Sums the resident memory of the Chromium processes (this driver's
 * descendants) by process type, with the largest process's and the largest
 * peak: the page's renderer runs the page and its workers. The sum is the
 * peers kit's "browser RSS". From /proc.
 */
function chromiumMemory() {
  const procs = new Map(); // pid → {ppid, cmd, status}
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      procs.set(Number(pid), {
        ppid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]),
        cmd: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'),
        status: readFileSync(`/proc/${pid}/status`, 'utf8'),
      });
    } catch {
      // exited meanwhile
    }
  }
  const mine = new Set([process.pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, p] of procs) {
      if (!mine.has(pid) && mine.has(p.ppid)) {
        mine.add(pid);
        grew = true;
      }
    }
  }
  mine.delete(process.pid);
  const byType = {};
  for (const pid of mine) {
    const { cmd, status } = procs.get(pid);
    // Chromium rewrites its children's command lines into one string.
    const type = cmd.join(' ').match(/--type=(\S+)/)?.[1] ?? 'browser';
    const kb = (key) => Number(status.match(new RegExp(`^${key}:\\s+(\\d+)`, 'm'))?.[1] ?? 0);
    const t = (byType[type] ??= { processes: 0, rssMB: 0, maxMB: 0, peakMB: 0 });
    t.processes++;
    t.rssMB += kb('VmRSS') / 1024;
    t.maxMB = Math.max(t.maxMB, kb('VmRSS') / 1024);
    t.peakMB = Math.max(t.peakMB, kb('VmHWM') / 1024);
  }
  return byType;
}

async function shutdown() {
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  process.exit(0);
}

const send = (o) => process.stdout.write(JSON.stringify(o) + '\n');
send({ id: 0, ok: true, value: 'ready' });
for await (const line of createInterface({ input: process.stdin })) {
  const { id, cmd, ...args } = JSON.parse(line);
  if (cmd === 'close') break;
  try {
    send({ id, ok: true, value: (await commands[cmd](args)) ?? null });
  } catch (err) {
    send({ id, ok: false, error: String(err?.message ?? err) });
  }
}
await shutdown();
