// chromium.mjs — runs a GOOS=js GOARCH=wasm test binary that imports the
// clipwasm kernels in headless Chromium and exits with its status.
// Usage: node chromium.mjs <binary.wasm> [test flags...]
// The page, Go's wasm_exec.js, glue.mjs, the kernel modules and the binary
// are served from 127.0.0.1 on an ephemeral port; console output is copied
// to stdout. CHROMIUM names the browser (default /usr/bin/chromium);
// playwright-core only drives it, it never downloads one.
import http from "node:http";
import fs from "node:fs/promises";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const [binary, ...args] = process.argv.slice(2);
if (!binary) {
  console.error("usage: node chromium.mjs <binary.wasm> [test flags...]");
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const goroot = process.env.GOROOT || execFileSync("go", ["env", "GOROOT"]).toString().trim();

// Every served path, mapped to a file: nothing else is reachable.
const files = {
  "/index.html": [path.join(here, "index.html"), "text/html"],
  "/wasm_exec.js": [path.join(goroot, "lib/wasm/wasm_exec.js"), "text/javascript"],
  "/glue.mjs": [path.join(here, "../glue.mjs"), "text/javascript"],
  "/simd128.wasm": [path.join(here, "../simd128.wasm"), "application/wasm"],
  "/relaxed.wasm": [path.join(here, "../relaxed.wasm"), "application/wasm"],
  "/test.wasm": [path.resolve(binary), "application/wasm"],
};
const server = http.createServer(async (req, res) => {
  const entry = files[new URL(req.url, "http://x").pathname];
  if (!entry) {
    res.writeHead(404).end();
    return;
  }
  try {
    const body = await fs.readFile(entry[0]);
    // Cross-origin isolation gives performance.now() (and so Go's clock)
    // 5 µs resolution instead of 100 µs, for the benchmarks.
    res.writeHead(200, {
      "Content-Type": entry[1],
      "Cache-Control": "no-store",
      "Cross-Origin-Opener-Policy": "same-origin",
      "Cross-Origin-Embedder-Policy": "require-corp",
    }).end(body);
  } catch (err) {
    res.writeHead(500).end(String(err));
  }
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const url = `http://127.0.0.1:${server.address().port}/index.html?args=${encodeURIComponent(JSON.stringify(args))}`;

// playwright-core starts the browser with a fresh temporary profile.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
let code = 1;
try {
  const page = await browser.newPage();
  page.on("console", (msg) => process.stdout.write(msg.text() + "\n"));
  page.on("pageerror", (err) => {
    // Go's timers may fire after the program exited; wasm_exec.js then
    // throws this, which says nothing about the run.
    if (!String(err).includes("Go program has already exited")) process.stderr.write(`page error: ${err}\n`);
  });
  await page.goto(url);
  const timeout = Number(process.env.WASMSIMD_TIMEOUT_MS ?? 30 * 60 * 1000);
  await page.waitForFunction(() => window.goExit !== undefined, null, { timeout, polling: 200 });
  code = await page.evaluate(() => window.goExit);
  console.error(`chromium ${browser.version()}: exit ${code}`);
} finally {
  await browser.close();
  server.close();
}
process.exit(code);
