# clipwasm — CLIP zero-shot image classification in Go.
# The README names two targets: `make run` (the main job) and `make test`.

GO       ?= go
BIN      := bin
FIXTURES ?= ../shared/fixtures
MODEL    ?= $(FIXTURES)/openai/vit_tiny/vit_tiny.state_dict.pt
LABELS   ?= cat,dog,dumpling,diagram
FUZZTIME ?= 30s

.PHONY: all build run test test-go test-wasm test-browser vet fuzz bench peers clean

all: build

build:
	$(GO) build -o $(BIN)/clip ./cmd/clip
	$(GO) build -o $(BIN)/clipbench ./cmd/clipbench

# The main job: classify the fixture photos zero-shot with the CLI.
# MODEL= any supported checkpoint file or folder; LABELS= comma-separated.
run: build
	$(BIN)/clip classify --model $(MODEL) --labels "$(LABELS)" --ensemble imagenet --top 3 \
		$(FIXTURES)/images/photo_640x480.jpg $(FIXTURES)/images/rgba_333x500.png

vet:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

# Everything: the Go tests, the WAT kernels (committed binaries vs sources,
# and under GOOS=js in Node), and the browser tests in headless Chromium.
# Needs wabt, Debian's chromium, node and npm (.ci/run installs them).
test: vet test-go test-wasm test-browser

test-go:
	$(GO) test -timeout 20m ./...

test-wasm: wasm-kernels-check wasm-kernels-test wasm-size-check

test-browser: wasm-kernels-test-chromium e2e

# Each fuzz target for FUZZTIME (go test runs one target per invocation).
fuzz:
	@for pkg in ./tokenizer ./imageproc ./checkpoint; do \
		for t in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

# Go benchmarks of the full-size encoders (random weights made in-process).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x -cpu 1,2 ./clip ./kernels/...

# Side by side with ONNX Runtime on identical weights (../shared/peers).
peers: build
	ENGINE_NAME=go ENGINE_CMD="$(CURDIR)/$(BIN)/clipbench" ../shared/peers/run.sh ViT-B/32 ort-node go
	ENGINE_NAME=go ENGINE_CMD="$(CURDIR)/$(BIN)/clipbench" ../shared/peers/run.sh RN50 ort-node go

clean:
	rm -rf $(BIN)

# --- WebAssembly SIMD kernels (kernels/wasmsimd) ------------------------
# The kernel modules are hand-written WAT assembled by wabt's wat2wasm
# (Debian's 1.0.32, which spells the relaxed int8 dot
# i32x4.dot_i8x16_i7x16_add_s); the .wasm files are committed next to the
# sources. Tests run under GOOS=js in Node (with the kernels linked) and in
# headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core
# installed into an ignored folder; no browser is ever downloaded).
WASMSIMD    := kernels/wasmsimd
WAT2WASM    ?= wat2wasm
CHROMIUM    ?= /usr/bin/chromium
PLAYWRIGHT  := $(WASMSIMD)/run/node_modules/playwright-core
WASMSIMD_TEST_FLAGS ?= -test.v
# Chromium ships relaxed SIMD, so its self-test must pick the relaxed set.
WASMSIMD_WANT       ?= relaxed
WASMSIMD_BENCH      ?= .

.PHONY: wasm-kernels wasm-kernels-check wasm-kernels-test wasm-kernels-test-chromium wasm-kernels-bench-chromium

wasm-kernels:
	$(WAT2WASM) $(WASMSIMD)/simd128.wat -o $(WASMSIMD)/simd128.wasm
	$(WAT2WASM) --enable-relaxed-simd $(WASMSIMD)/relaxed.wat -o $(WASMSIMD)/relaxed.wasm

# The committed binaries must be exactly what the sources assemble to.
wasm-kernels-check:
	@command -v $(WAT2WASM) >/dev/null || { echo "wasm-kernels-check: $(WAT2WASM) not found (apt-get install wabt)" >&2; exit 1; }
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	$(WAT2WASM) $(WASMSIMD)/simd128.wat -o $$tmp/simd128.wasm && \
	$(WAT2WASM) --enable-relaxed-simd $(WASMSIMD)/relaxed.wat -o $$tmp/relaxed.wasm && \
	cmp $$tmp/simd128.wasm $(WASMSIMD)/simd128.wasm && cmp $$tmp/relaxed.wasm $(WASMSIMD)/relaxed.wasm && \
	echo "wasm-kernels-check: committed .wasm match their .wat"

# Kernel and backend tests under GOOS=js in Node, kernels linked.
wasm-kernels-test:
	GOOS=js GOARCH=wasm $(GO) test -exec $(CURDIR)/$(WASMSIMD)/run/go_js_wasm_exec ./$(WASMSIMD)/

$(PLAYWRIGHT): $(WASMSIMD)/run/package-lock.json
	cd $(WASMSIMD)/run && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund

# The same tests in headless Chromium: the test binary, Go's wasm_exec.js
# and the glue served from localhost to a page, its output collected.
wasm-kernels-test-chromium: $(PLAYWRIGHT)
	GOOS=js GOARCH=wasm $(GO) test -c -o $(BIN)/wasmsimd.test.wasm ./$(WASMSIMD)/
	CHROMIUM=$(CHROMIUM) node $(WASMSIMD)/run/chromium.mjs $(BIN)/wasmsimd.test.wasm \
		-wasmsimd.want=$(WASMSIMD_WANT) $(WASMSIMD_TEST_FLAGS)

# GEMM throughput per kernel set (and plain Go) in Chromium, one thread.
wasm-kernels-bench-chromium: $(PLAYWRIGHT)
	GOOS=js GOARCH=wasm $(GO) test -c -o $(BIN)/wasmsimd.test.wasm ./$(WASMSIMD)/
	CHROMIUM=$(CHROMIUM) node $(WASMSIMD)/run/chromium.mjs $(BIN)/wasmsimd.test.wasm \
		-test.run '^$$' -test.bench '$(WASMSIMD_BENCH)' -test.benchtime 1s $(WASMSIMD_BENCH_FLAGS)

# --- The engine in the browser (wasm/, web/, e2e/) ---
# make wasm: web/clipwasm.wasm, Go's wasm_exec.js beside it, and the SIMD
#   kernels' glue and modules in web/kernels/; for threads (cross-origin
#   isolated pages) the same binaries rewritten by internal/wasmshare to
#   import a shared memory, *.shared.wasm: a page downloads one of the two.
# make web: the page on http://$(WEB_ADDR)/ with MODEL converted (QUANT) as
#   its default bundle.
# make e2e: the text tower's truncation and the event encoding (toJS) under
#   GOOS=js in Node, then the browser tests in headless Chromium (needs
#   chromium and npm). The
#   ViT-B/32 benchmark: see BenchmarkViTB32 in e2e/bench_test.go.
WEB_ADDR ?= 127.0.0.1:8080
QUANT    ?= int8
BUNDLES  ?= $(BIN)/bundles

.PHONY: wasm web e2e

wasm:
	GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags="-s -w" -o web/clipwasm.wasm ./wasm
	cp "$$($(GO) env GOROOT)/lib/wasm/wasm_exec.js" web/wasm_exec.js
	rm -rf web/kernels && mkdir -p web/kernels
	cp kernels/wasmsimd/glue.mjs kernels/wasmsimd/threads.mjs kernels/wasmsimd/simd128.wasm kernels/wasmsimd/relaxed.wasm web/kernels/
	$(GO) build -o $(BIN)/wasmshare ./internal/wasmshare/cmd/wasmshare
	$(BIN)/wasmshare -in web/clipwasm.wasm -out web/clipwasm.shared.wasm
	for k in simd128 relaxed; do $(BIN)/wasmshare -in web/kernels/$$k.wasm -out web/kernels/$$k.shared.wasm || exit 1; done
	@if GOOS=js GOARCH=wasm $(GO) list -deps ./wasm | grep -qx 'gorgonia.org/tensor'; then \
		echo 'gorgonia.org/tensor must stay out of the wasm build'; exit 1; fi
	@for f in web/clipwasm.wasm web/clipwasm.shared.wasm web/kernels/simd128.wasm web/kernels/relaxed.wasm; do \
		echo "$$f: $$(wc -c < $$f) bytes, $$(gzip -9c $$f | wc -c) gzipped"; done

web: wasm
	$(GO) run ./weights-converter --quiet --in $(MODEL) --out $(BUNDLES)/default --quant $(QUANT)
	$(GO) run ./internal/devserver/cmd/devserver -addr $(WEB_ADDR) -mount /=web -mount /models/=$(BUNDLES)

e2e: wasm
	GOOS=js GOARCH=wasm $(GO) test -exec "$$($(GO) env GOROOT)/lib/wasm/go_js_wasm_exec" \
		-run 'TestTextStopsAtLastEOT|TestToJS' ./wasm ./wasm/worker
	cd e2e && npm ci --ignore-scripts --no-audit --no-fund
	$(GO) test -tags e2e -count=1 -timeout 30m -v ./e2e

# --- The browser engine beside ONNX Runtime Web (../shared/peers) ---
# make peers-web: the kit's ViT-B/32 in headless Chromium, 1 and 2 threads:
#   ONNX Runtime Web (wasm SIMD, fp32) and this engine on an int8 bundle in
#   one kit run, then the f32 bundle (e2e/peers_engine.mjs is the kit's
#   ENGINE_CMD; bundles are converted once into bin/peers-bundles/). The
#   report: .peers/results/ViT-B-32-seed0/report.md.
# make wasm-size-check (part of make test-wasm): fails when a shipped engine
#   binary is over WASM_GZIP_MAX bytes gzipped (issue 4's bar: 2 MB).
PEERS_KIT     ?= ../shared/peers
WASM_GZIP_MAX ?= 2000000

.PHONY: peers-web wasm-size-check

peers-web: wasm
	$(GO) build -o $(BIN)/weights-converter ./weights-converter
	cd e2e && npm ci --ignore-scripts --no-audit --no-fund
	CLIPWASM_QUANT=int8 ENGINE_NAME=clipwasm-web-int8 ENGINE_CMD="node $(CURDIR)/e2e/peers_engine.mjs" \
		$(PEERS_KIT)/run.sh ViT-B/32 ort-web-wasm clipwasm-web-int8
	CLIPWASM_QUANT=f32 ENGINE_NAME=clipwasm-web-f32 ENGINE_CMD="node $(CURDIR)/e2e/peers_engine.mjs" \
		$(PEERS_KIT)/run.sh ViT-B/32 clipwasm-web-f32

wasm-size-check: wasm
	@for f in web/clipwasm*.wasm; do \
		n=$$(gzip -9c $$f | wc -c); \
		if [ $$n -gt $(WASM_GZIP_MAX) ]; then echo "$$f: $$n bytes gzipped, over $(WASM_GZIP_MAX)" >&2; exit 1; fi; \
		echo "$$f: $$n bytes gzipped (at most $(WASM_GZIP_MAX))"; done
