// Command wasmshare rewrites a WebAssembly module to use an imported shared
// memory (see package wasmshare): `make wasm` runs it on the Go engine
// (whose memory it turns into an import) and on the SIMD kernel modules
// (whose imported memory it marks shared), for the threaded build.
//
// Usage:
//
//	wasmshare -in clipwasm.wasm -out clipwasm.shared.wasm [-max-pages 65536] [-module env] [-name mem]
package main

import (
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/clipwasm/clipwasm/internal/wasmshare"
)

func main() {
	in := flag.String("in", "", "the module to rewrite")
	out := flag.String("out", "", "where to write the rewritten module")
	maxPages := flag.Uint("max-pages", wasmshare.MaxPages32, "the shared memory's maximum, in 64 KiB pages")
	module := flag.String("module", "env", "import module name for a defined memory made an import")
	name := flag.String("name", "mem", "import field name for a defined memory made an import")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("wasmshare: ")
	if *in == "" || *out == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*in, *out, wasmshare.Options{ImportModule: *module, ImportName: *name, MaxPages: uint32(min(*maxPages, 1<<32-1))}); err != nil {
		log.Fatal(err)
	}
}

func run(in, out string, opts wasmshare.Options) error {
	module, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	shared, mem, err := wasmshare.Rewrite(module, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if err := os.WriteFile(out, shared, 0o644); err != nil {
		return err
	}
	fmt.Printf("%s: shared memory %s.%s, %d..%d pages\n", out, mem.Module, mem.Name, mem.Initial, mem.Maximum)
	return nil
}
