package wasmshare

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Hand-made module pieces. A section is id, LEB128 size, body.
func sec(id byte, body ...byte) []byte {
	return append(append([]byte{id}, appendU32(nil, uint32(len(body)))...), body...)
}

func module(sections ...[]byte) []byte {
	return append(append([]byte(nil), magic...), bytes.Join(sections, nil)...)
}

var (
	// (type (func)) and one function of that type returning nothing.
	typeSec = sec(1, 1, 0x60, 0, 0)
	funcSec = sec(3, 1, 0)
	codeSec = sec(10, 1, 2, 0, 0x0b)
	// (export "mem" (memory 0))
	exportMem = sec(7, 1, 3, 'm', 'e', 'm', 2, 0)
	// (import "go" "f" (func (type 0)))
	funcImport = []byte{2, 'g', 'o', 1, 'f', 0, 0}
	// (import "env" "mem" (memory 1))
	importMem1 = []byte{3, 'e', 'n', 'v', 3, 'm', 'e', 'm', 2, 0, 1}
	// (data (i32.const 8) "hi")
	dataSec = sec(11, 1, 0, 0x41, 8, 0x0b, 2, 'h', 'i')
)

func importSec(entries ...[]byte) []byte {
	return sec(2, append([]byte{byte(len(entries))}, bytes.Join(entries, nil)...)...)
}

// sharedImport is (import "env" "mem" (memory min max shared)).
func sharedImport(min, max uint32) []byte {
	return appendU32(appendU32([]byte{3, 'e', 'n', 'v', 3, 'm', 'e', 'm', 2, 3}, min), max)
}

func customSec(mem Memory) []byte {
	desc, _ := json.Marshal(mem)
	return sec(0, append(appendName(nil, SectionName), desc...)...)
}

var opts = Options{ImportModule: "env", ImportName: "mem", MaxPages: 1000}

func TestRewrite(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []byte
		opts    Options
		want    []byte
		wantMem Memory
	}{
		{
			name:    "defined memory, no imports: an import section goes before the functions",
			in:      module(typeSec, funcSec, sec(5, 1, 0, 17), exportMem, codeSec, dataSec),
			want:    module(typeSec, importSec(sharedImport(17, 1000)), funcSec, exportMem, codeSec, dataSec, customSec(Memory{"env", "mem", 17, 1000})),
			wantMem: Memory{"env", "mem", 17, 1000},
		},
		{
			name:    "defined memory after function imports: appended as the last import, functions keep their indices",
			in:      module(sec(0, 1, 'x'), typeSec, importSec(funcImport), funcSec, sec(5, 1, 0, 0x80, 0x01), exportMem, codeSec),
			want:    module(sec(0, 1, 'x'), typeSec, importSec(funcImport, sharedImport(128, 1000)), funcSec, exportMem, codeSec, customSec(Memory{"env", "mem", 128, 1000})),
			wantMem: Memory{"env", "mem", 128, 1000},
		},
		{
			name:    "a defined maximum below the option's is kept",
			in:      module(sec(5, 1, 1, 2, 40)),
			want:    module(importSec(sharedImport(2, 40)), customSec(Memory{"env", "mem", 2, 40})),
			wantMem: Memory{"env", "mem", 2, 40},
		},
		{
			name:    "other import names",
			in:      module(sec(5, 1, 0, 1)),
			opts:    Options{ImportModule: "a", ImportName: "b", MaxPages: MaxPages32},
			want:    module(sec(2, 1, 1, 'a', 1, 'b', 2, 3, 1, 0x80, 0x80, 0x04), customSec(Memory{"a", "b", 1, MaxPages32})),
			wantMem: Memory{"a", "b", 1, MaxPages32},
		},
		{
			name:    "imported memory (a kernel module): made shared in place, no custom section",
			in:      module(typeSec, importSec(funcImport, importMem1), funcSec, codeSec),
			want:    module(typeSec, importSec(funcImport, sharedImport(1, 1000)), funcSec, codeSec),
			wantMem: Memory{"env", "mem", 1, 1000},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			if o == (Options{}) {
				o = opts
			}
			got, mem, err := Rewrite(tc.in, o)
			if err != nil {
				t.Fatal(err)
			}
			if mem != tc.wantMem {
				t.Errorf("memory = %+v, want %+v", mem, tc.wantMem)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("rewritten module\n got % x\nwant % x", got, tc.want)
			}
		})
	}
}

func TestRewriteRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		in         []byte
		opts       Options
	}{
		{"empty", "not a WebAssembly module", nil, opts},
		{"not wasm", "not a WebAssembly module", []byte("\x7fELF\x02\x01\x01\x00"), opts},
		{"component", "unsupported WebAssembly binary version", []byte{0, 'a', 's', 'm', 0x0d, 0, 1, 0}, opts},
		{"truncated section", "section 5 at byte 8: unexpected end of data", module([]byte{5, 9, 1, 0}), opts},
		{"LEB128 too long", "LEB128 value does not fit 32 bits", module([]byte{5, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}), opts},
		{"LEB128 over 32 bits", "does not fit 32 bits", module([]byte{5, 0x80, 0x80, 0x80, 0x80, 0x10}), opts},
		{"unknown section", "unknown section id 14", module(sec(14)), opts},
		{"sections out of order", "section 3 at byte 13 is out of order", module(sec(5, 1, 0, 1), sec(3, 0)), opts},
		{"no memory", "has no memory", module(typeSec, funcSec, codeSec), opts},
		{"two defined memories", "more than one memory", module(sec(5, 2, 0, 1, 0, 1)), opts},
		{"imported and defined memory", "more than one memory", module(importSec(importMem1), sec(5, 1, 0, 1)), opts},
		{"two imported memories", "imports more than one memory", module(importSec(importMem1, importMem1)), opts},
		{"shared already", "shared already", module(importSec(sharedImport(1, 2))), opts},
		{"memory64", "memory64", module(sec(5, 1, 4, 1)), opts},
		{"unknown limit flags", "unknown limit flags 0x8", module(sec(5, 1, 8, 1)), opts},
		{"maximum below minimum", "maximum 1 below its minimum 2", module(sec(5, 1, 1, 2, 1)), opts},
		{"minimum above the option's maximum", "starts at 2000 pages, above the maximum of 1000", module(sec(5, 1, 0, 0xd0, 0x0f)), opts},
		{"unknown import kind", `import go.f has unknown kind 9`, module(importSec([]byte{2, 'g', 'o', 1, 'f', 9})), opts},
		{"GC table type", "unsupported table element type 0x64", module(importSec([]byte{1, 't', 1, 't', 1, 0x64, 0x70, 0, 0})), opts},
		{"bytes after the imports", "import section: 1 bytes after the last entry", module(sec(2, 0, 0)), opts},
		{"maximum out of range", "out of range", module(sec(5, 1, 0, 1)), Options{ImportModule: "env", ImportName: "mem", MaxPages: MaxPages32 + 1}},
		{"no import name", "needs a module and a name", module(sec(5, 1, 0, 1)), Options{ImportModule: "env", MaxPages: 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Rewrite(tc.in, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// helloProgram is a GOOS=js program that exercises what a shared memory
// changes for wasm_exec.js: strings from Go (TextDecoder over the memory),
// random bytes (crypto.getRandomValues into it) and growth of the memory
// well past its initial size (views over it re-made).
const helloProgram = `package main

import (
	"crypto/rand"
	"fmt"
	"syscall/js"
)

func main() {
	var b [16]byte
	rand.Read(b[:])
	big := make([][]byte, 0)
	for range 8 {
		big = append(big, make([]byte, 16<<20))
	}
	big[7][1<<20] = 42
	js.Global().Set("goSaid", fmt.Sprintf("hello, shared memory: %d MiB, %d", 16*len(big), big[7][1<<20]))
	fmt.Println("printed from Go after growth")
}
`

// runSharedJS runs a rewritten GOOS=js binary in Node on a shared memory
// made the way web/worker.js makes it (threads.mjs), links a rewritten
// kernel module to the same memory, and prints what Go said.
const runSharedJS = `
import { readFileSync } from "node:fs";
const [wasmExec, threads, binary, kernel] = process.argv.slice(2);
await import(wasmExec);
const { sharedMemoryFor, allowSharedViews } = await import(threads);
const module = new WebAssembly.Module(readFileSync(binary));
const shared = sharedMemoryFor(module);
allowSharedViews();
const go = new Go();
const instance = new WebAssembly.Instance(module, { ...go.importObject, [shared.module]: { [shared.name]: shared.memory } });
if (instance.exports.mem !== shared.memory) throw new Error("the mem export is not the shared memory");
const kernels = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(kernel)), { env: { mem: shared.memory } });
const initial = shared.memory.buffer.byteLength;
await go.run(instance);
console.log(globalThis.goSaid);
console.log("shared:", shared.memory.buffer instanceof SharedArrayBuffer, "grown:", shared.memory.buffer.byteLength > initial,
  "kernel exports:", Object.keys(kernels.exports).length > 0);
`

// TestGoBinaryRunsOnSharedMemory builds a real Go wasm binary, rewrites
// it and the committed SIMD kernel module, checks that Node validates both
// (it has threads on by default) and runs the program on a shared memory.
func TestGoBinaryRunsOnSharedMemory(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("this test needs node (Node.js 20 or newer) on PATH: ", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(helloProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", "hello.wasm", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the GOOS=js program: %v\n%s", err, out)
	}
	rewrite := func(in, out string) Memory {
		t.Helper()
		b, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		shared, mem, err := Rewrite(b, Options{ImportModule: "env", ImportName: "mem", MaxPages: MaxPages32})
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if err := os.WriteFile(out, shared, 0o644); err != nil {
			t.Fatal(err)
		}
		return mem
	}
	mem := rewrite(filepath.Join(dir, "hello.wasm"), filepath.Join(dir, "hello.shared.wasm"))
	if mem.Initial == 0 || mem.Maximum != MaxPages32 {
		t.Errorf("Go's memory: %+v", mem)
	}
	rewrite(filepath.Join("..", "..", "kernels", "wasmsimd", "simd128.wasm"), filepath.Join(dir, "simd128.shared.wasm"))

	script := filepath.Join(dir, "run.mjs")
	if err := os.WriteFile(script, []byte(runSharedJS), 0o644); err != nil {
		t.Fatal(err)
	}
	threads, err := filepath.Abs(filepath.Join("..", "..", "kernels", "wasmsimd", "threads.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script, filepath.Join(runtime.GOROOT(), "lib", "wasm", "wasm_exec.js"), threads,
		filepath.Join(dir, "hello.shared.wasm"), filepath.Join(dir, "simd128.shared.wasm"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("running on a shared memory: %v\n%s", err, out)
	}
	for _, want := range []string{
		"printed from Go after growth",
		"hello, shared memory: 128 MiB, 42",
		"shared: true grown: true kernel exports: true",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
