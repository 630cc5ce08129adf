# clipwasm — CLIP zero-shot image classification in Go.
# The README names two targets: `make run` (the main job) and `make test`.

GO       ?= go
BIN      := bin
FIXTURES ?= ../shared/fixtures
MODEL    ?= $(FIXTURES)/openai/vit_tiny/vit_tiny.state_dict.pt
LABELS   ?= cat,dog,dumpling,diagram
FUZZTIME ?= 30s

.PHONY: all build run test vet fuzz bench peers clean

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

test: vet
	$(GO) test -timeout 20m ./...

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
