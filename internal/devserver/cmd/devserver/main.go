// Command devserver serves the web page and model bundles locally, with the
// headers the wasm engine expects (see package devserver).
//
// Usage:
//
//	devserver [-addr 127.0.0.1:8080] [-control] [-not-isolated] -mount /=web -mount /models/=DIR ...
//
// -not-isolated serves without the cross-origin isolation headers, to see
// the engine's one-thread fallback.
package main

import (
	"flag"
	"fmt"
	"log"
	"strings"

	"github.com/clipwasm/clipwasm/internal/devserver"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	control := flag.Bool("control", false, "enable the test control endpoints under "+devserver.ControlPrefix)
	notIsolated := flag.Bool("not-isolated", false, "leave out COOP/COEP (no SharedArrayBuffer: the engine runs on one thread)")
	mounts := map[string]string{}
	flag.Func("mount", "PREFIX=DIR: serve folder DIR under URL prefix PREFIX (repeatable)", func(s string) error {
		prefix, dir, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("want PREFIX=DIR, got %q", s)
		}
		mounts[prefix] = dir
		return nil
	})
	flag.Parse()
	if len(mounts) == 0 {
		mounts["/"] = "web"
	}
	s, err := devserver.New(devserver.Options{Mounts: mounts, Control: *control, NotIsolated: *notIsolated})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serving %v on http://%s/", mounts, *addr)
	log.Fatal(devserver.ListenAndServe(*addr, s))
}
