// node.mjs — Node host for a GOOS=js GOARCH=wasm binary that imports the
// clipwasm kernels: Go's wasm_exec_node.js plus the kernel glue.
// Usage: node node.mjs <path to Go's wasm_exec.js> <binary.wasm> [args...]
import { createRequire } from "node:module";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { kernelImports, instantiateKernels } from "../glue.mjs";

const [wasmExec, binary, ...args] = process.argv.slice(2);
if (!binary) {
  console.error("usage: node node.mjs <wasm_exec.js> <binary.wasm> [args...]");
  process.exit(1);
}

// wasm_exec.js expects the Node globals that wasm_exec_node.js sets up.
const require = createRequire(import.meta.url);
globalThis.require = require;
globalThis.fs = fs;
globalThis.path = path;
require(path.resolve(wasmExec));

const go = new Go();
go.argv = [binary, ...args];
go.env = Object.assign({ TMPDIR: os.tmpdir() }, process.env);
go.exit = process.exit;

let kernels = null;
const importObject = { ...go.importObject, ...kernelImports(() => kernels) };
const { instance } = await WebAssembly.instantiate(fs.readFileSync(binary), importObject);
kernels = await instantiateKernels(instance, { relaxed: true });
for (const err of kernels.errors) console.error("wasmsimd glue:", err);

process.on("exit", (code) => { // Node exits when no event is pending
  if (code === 0 && !go.exited) {
    // deadlock: make Go print the error and stack traces
    go._pendingEvent = { id: 0 };
    go._resume();
  }
});
await go.run(instance);
