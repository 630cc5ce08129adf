// Command clipbench is clipwasm's engine for the peers kit
// (../shared/peers, README "Engine contract"): it times this project's
// model on the kit's full-size weights and inputs, beside ONNX Runtime in
// the same run.
//
//	clipbench --model-dir D --inputs-dir I --out-dir O --threads T \
//	          --encoder image|text [--warmup 2] [--runs 7] [--peer-name NAME]
//
// It loads D/weights.safetensors (OpenAI names) with convert.Load, checks the
// model against D/manifest.json, and for each task of the encoder (image_b1
// and image_b8, or text_80) runs W untimed then R timed encodes under the
// kit's contention rule, writes the last output to O/<task>_t<T>.npy and
// appends one JSON line to O/results.jsonl. The peer name is --peer-name,
// which defaults to $ENGINE_NAME (run.sh's default, "engine", if unset).
// T sets both GOMAXPROCS and the backend's worker count; the backend is
// the best this CPU runs (kernels/native), and --quant (or $CLIPBENCH_QUANT)
// quantizes the weights in memory to time the int8 and q4 kernels.
//
// Typical use, from the repository root:
//
//	go build -o bin/clipbench ./cmd/clipbench
//	ENGINE_NAME=go ENGINE_CMD="$PWD/bin/clipbench" ../shared/peers/run.sh ViT-B/32 ort-node go
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/convert"
	"github.com/clipwasm/clipwasm/internal/npy"
	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/native"
)

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "clipbench:", err)
		os.Exit(1)
	}
}

// task is one of the kit's timed tasks (lib/npy.mjs TASKS).
type task struct {
	name, encoder, input string
	batch                int
}

var tasks = []task{
	{"image_b1", "image", "images_b1.npy", 1},
	{"image_b8", "image", "images.npy", 8},
	{"text_80", "text", "tokens.npy", 80},
}

// options are the command-line flags.
type options struct {
	modelDir, inputsDir, outDir string
	threads, warmup, runs       int
	encoder, peer, quant        string
}

func parseFlags(args []string, getenv func(string) string) (options, error) {
	var o options
	fs := flag.NewFlagSet("clipbench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.modelDir, "model-dir", "", "kit model folder: weights.safetensors, manifest.json")
	fs.StringVar(&o.inputsDir, "inputs-dir", "", "kit inputs folder: images_b1.npy, images.npy, tokens.npy")
	fs.StringVar(&o.outDir, "out-dir", "", "results folder (created)")
	fs.IntVar(&o.threads, "threads", 1, "threads: GOMAXPROCS and backend workers")
	fs.StringVar(&o.encoder, "encoder", "", "image or text")
	fs.IntVar(&o.warmup, "warmup", 2, "untimed runs per task")
	fs.IntVar(&o.runs, "runs", 7, "timed runs per task (up to 3× more under contention)")
	peer := getenv("ENGINE_NAME")
	if peer == "" {
		peer = "engine"
	}
	fs.StringVar(&o.peer, "peer-name", peer, "peer name in results.jsonl (must equal run.sh's ENGINE_NAME)")
	quant := getenv("CLIPBENCH_QUANT")
	if quant == "" {
		quant = "f32"
	}
	fs.StringVar(&o.quant, "quant", quant, "weight scheme: f32, int8 or q4 (default $CLIPBENCH_QUANT, else f32)")
	if err := fs.Parse(args); err != nil {
		var usage strings.Builder
		fs.SetOutput(&usage)
		fs.PrintDefaults()
		return o, fmt.Errorf("%w\nusage: clipbench --model-dir D --inputs-dir I --out-dir O --threads T --encoder image|text [--warmup W] [--runs R]\n%s", err, usage.String())
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.modelDir == "" || o.inputsDir == "" || o.outDir == "":
		return o, errors.New("--model-dir, --inputs-dir and --out-dir are required")
	case o.encoder != "image" && o.encoder != "text":
		return o, fmt.Errorf("--encoder must be image or text, got %q", o.encoder)
	case o.quant != "f32" && o.quant != "int8" && o.quant != "q4":
		return o, fmt.Errorf("--quant must be f32, int8 or q4, got %q", o.quant)
	case o.threads < 1 || o.runs < 1 || o.warmup < 0:
		return o, fmt.Errorf("need --threads ≥ 1, --runs ≥ 1, --warmup ≥ 0 (got %d, %d, %d)", o.threads, o.runs, o.warmup)
	}
	return o, nil
}

// manifest is the part of the kit's manifest.json that clipbench uses.
type manifest struct {
	Arch   string          `json:"arch"`
	Seed   json.RawMessage `json:"seed"` // a number, or null for --from-safetensors
	Config struct {
		EmbedDim        int             `json:"embed_dim"`
		ImageResolution int             `json:"image_resolution"`
		VisionLayers    json.RawMessage `json:"vision_layers"` // ViT: depth; ResNet: four stage depths
		VisionWidth     int             `json:"vision_width"`
		VisionPatchSize *int            `json:"vision_patch_size"`
		ContextLength   int             `json:"context_length"`
		VocabSize       int             `json:"vocab_size"`
		TextWidth       int             `json:"transformer_width"`
		TextHeads       int             `json:"transformer_heads"`
		TextLayers      int             `json:"transformer_layers"`
	} `json:"config"`
}

func readManifest(dir string) (*manifest, error) {
	path := filepath.Join(dir, "manifest.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model dir: %w (make it with ../shared/peers/run.sh or gen_weights.mjs)", err)
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.Arch == "" {
		return nil, fmt.Errorf("%s: no arch", path)
	}
	if len(m.Seed) == 0 {
		m.Seed = json.RawMessage("null")
	}
	return &m, nil
}

// check compares the architecture convert.Load inferred from the weights with
// the manifest's config.
func (m *manifest) check(c *clip.Config) error {
	var layers []int
	if err := json.Unmarshal(m.Config.VisionLayers, &layers); err != nil {
		var depth int
		if err := json.Unmarshal(m.Config.VisionLayers, &depth); err != nil {
			return fmt.Errorf("manifest config vision_layers %s: want a number or a list", m.Config.VisionLayers)
		}
		layers = []int{depth}
	}
	patch := 0
	if m.Config.VisionPatchSize != nil {
		patch = *m.Config.VisionPatchSize
	}
	mc := m.Config
	want := []int{mc.EmbedDim, mc.ImageResolution, mc.VisionWidth, patch, mc.ContextLength, mc.VocabSize, mc.TextWidth, mc.TextHeads, mc.TextLayers}
	got := []int{c.EmbedDim, c.ImageResolution, c.VisionWidth, c.VisionPatchSize, c.ContextLength, c.VocabSize, c.TextWidth, c.TextHeads, c.TextLayers}
	if !slices.Equal(got, want) || !slices.Equal(c.VisionLayers, layers) {
		return fmt.Errorf("the weights hold %s, but manifest.json describes %s %+v", c.String(), m.Arch, mc)
	}
	return nil
}

// record is one line of results.jsonl, fields in the contract's order.
type record struct {
	Peer           string          `json:"peer"`
	PeerVersion    string          `json:"peer_version"`
	Arch           string          `json:"arch"`
	Seed           json.RawMessage `json:"seed"`
	Task           string          `json:"task"`
	Batch          int             `json:"batch"`
	Threads        int             `json:"threads"`
	Warmup         int             `json:"warmup"`
	Runs           int             `json:"runs"`
	TimesMs        []float64       `json:"times_ms"`
	MedianMs       float64         `json:"median_ms"`
	MinMs          float64         `json:"min_ms"`
	LoadMs         float64         `json:"load_ms"`
	PeakRSSMB      float64         `json:"peak_rss_mb"`
	Output         string          `json:"output"`
	LoadAvg1m      float64         `json:"loadavg_1m"`
	OthersCPUCores float64         `json:"others_cpu_cores"`
	AllTimesMs     []float64       `json:"all_times_ms"`
	AllBusy        []float64       `json:"all_busy"`
	Discarded      int             `json:"discarded"`
}

// gitVersion may be set at build time:
//
//	go build -ldflags "-X main.gitVersion=$(git describe --always --dirty)" ./cmd/clipbench
var gitVersion string

// version is "clipwasm <version> (<backend> <scheme>)": gitVersion if set, else the
// VCS revision Go stamps into binaries built inside the repository (unless
// -buildvcs=false), else v0.1.
func version(backend, quant string) string {
	v := gitVersion
	if bi, ok := debug.ReadBuildInfo(); ok && v == "" {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && len(s.Value) >= 7:
				rev = s.Value[:7]
			case s.Key == "vcs.modified" && s.Value == "true":
				dirty = "-dirty"
			}
		}
		if rev != "" {
			v = rev + dirty
		}
	}
	if v == "" {
		v = "v0.1"
	}
	return "clipwasm " + v + " (" + backend + " " + quant + ")"
}

var vmHWM = regexp.MustCompile(`VmHWM:\s+(\d+) kB`)

// peakRSSMB returns this process's peak resident set from /proc/self/status
// (VmHWM), in MB.
func peakRSSMB() (float64, error) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	m := vmHWM.FindSubmatch(raw)
	if m == nil {
		return 0, errors.New("peak RSS: no VmHWM in /proc/self/status")
	}
	kb, err := strconv.ParseFloat(string(m[1]), 64)
	return round(kb/1024, 1), err
}

// loadAvg1m returns the 1-minute load average from /proc/loadavg.
func loadAvg1m() (float64, error) {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, fmt.Errorf("load average: %w", err)
	}
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return 0, errors.New("load average: empty /proc/loadavg")
	}
	return strconv.ParseFloat(f[0], 64)
}

func run(args []string, getenv func(string) string, stdout io.Writer) error {
	o, err := parseFlags(args, getenv)
	if err != nil {
		return err
	}
	q, err := quietFromEnv(getenv)
	if err != nil {
		return err
	}
	man, err := readManifest(o.modelDir)
	if err != nil {
		return err
	}
	weights := filepath.Join(o.modelDir, "weights.safetensors")
	if _, err := os.Stat(weights); err != nil {
		return fmt.Errorf("model dir: %w", err)
	}
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return fmt.Errorf("out dir: %w", err)
	}
	runtime.GOMAXPROCS(o.threads)

	start := time.Now()
	backend, err := native.New(o.threads)
	if err != nil {
		return err
	}
	model, err := load(weights, kernels.Scheme(o.quant), backend)
	if err != nil {
		return err
	}
	loadMs := round(float64(time.Since(start).Microseconds())/1e3, 1)
	if err := man.check(&model.Config); err != nil {
		return fmt.Errorf("%s: %w", o.modelDir, err)
	}

	for _, t := range tasks {
		if t.encoder != o.encoder {
			continue
		}
		rec, err := runTask(model, t, o, q)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		rec.Peer, rec.PeerVersion, rec.Arch, rec.Seed, rec.LoadMs = o.peer, version(backend.Name(), o.quant), man.Arch, man.Seed, loadMs
		if err := appendJSONL(filepath.Join(o.outDir, "results.jsonl"), rec); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "[%s] %s t=%d median %.1f ms (load %.1f ms, rss %.1f MB, busy others %.2f, %d discarded)\n",
			rec.Peer, t.name, o.threads, rec.MedianMs, loadMs, rec.PeakRSSMB, rec.OthersCPUCores, rec.Discarded)
	}
	return nil
}

// encoder returns a function that encodes t's input file with m, after
// checking the input's dtype and shape.
func encoder(m *clip.Model, t task, path string) (func() ([]float32, error), error) {
	in, err := npy.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	if t.encoder == "image" {
		r := m.Config.ImageResolution
		if in.F32 == nil || !slices.Equal(in.Shape, []int{t.batch, 3, r, r}) {
			return nil, fmt.Errorf("%s: want float32 [%d 3 %d %d] (NCHW), got %s %v", path, t.batch, r, r, in.DType, in.Shape)
		}
		return func() ([]float32, error) { return m.EncodeImage(in.F32, t.batch) }, nil
	}
	ctx := m.Config.ContextLength
	if in.I64 == nil || !slices.Equal(in.Shape, []int{t.batch, ctx}) {
		return nil, fmt.Errorf("%s: want int64 [%d %d] token ids, got %s %v", path, t.batch, ctx, in.DType, in.Shape)
	}
	rows, err := in.TokenRows()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return func() ([]float32, error) { return m.EncodeText(rows) }, nil
}

// runTask runs t's warm-up and timed encodes under the contention rule and
// writes the last output; the returned record lacks the per-process fields.
func runTask(m *clip.Model, t task, o options, q quiet) (record, error) {
	encode, err := encoder(m, t, filepath.Join(o.inputsDir, t.input))
	if err != nil {
		return record{}, err
	}
	loadAvg, err := loadAvg1m()
	if err != nil {
		return record{}, err
	}
	var out []float32
	for range o.warmup {
		if out, err = encode(); err != nil {
			return record{}, err
		}
	}
	var all []timedRun
	for q.needMore(all, o.runs) {
		a, err := snapshot()
		if err != nil {
			return record{}, err
		}
		begin := time.Now()
		out, err = encode()
		ms := float64(time.Since(begin).Nanoseconds()) / 1e6
		if err != nil {
			return record{}, err
		}
		b, err := snapshot()
		if err != nil {
			return record{}, err
		}
		all = append(all, timedRun{ms: ms, busy: busyOthers(a, b)})
	}
	file := fmt.Sprintf("%s_t%d.npy", t.name, o.threads)
	if err := npy.WriteFile(filepath.Join(o.outDir, file), []int{t.batch, m.Config.EmbedDim}, out); err != nil {
		return record{}, fmt.Errorf("writing output: %w", err)
	}
	rss, err := peakRSSMB()
	if err != nil {
		return record{}, err
	}
	s := q.selectRuns(all, o.runs)
	times := make([]float64, len(s.times))
	for i, x := range s.times {
		times[i] = round(x, 3)
	}
	return record{
		Task: t.name, Batch: t.batch, Threads: o.threads, Warmup: o.warmup, Runs: o.runs,
		TimesMs: times, MedianMs: round(median(s.times), 3), MinMs: round(slices.Min(s.times), 3),
		PeakRSSMB: rss, Output: file, LoadAvg1m: round(loadAvg, 2),
		OthersCPUCores: s.othersMean, AllTimesMs: s.allTimes, AllBusy: s.allBusy, Discarded: s.discarded,
	}, nil
}

// appendJSONL appends rec as one line to path.
func appendJSONL(path string, rec record) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("results: %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("results: %s: %w", path, err)
	}
	return nil
}

// quantized serves a checkpoint's matrices quantized in memory, as a bundle
// of that scheme holds them (q4 falls back to int8 where the columns are
// not a multiple of 32, as the converter does), so the kit's f32 weights
// can time the quantized kernels.
type quantized struct {
	*convert.Model
	scheme kernels.Scheme
}

// Matrix implements clip.Weights.
func (q quantized) Matrix(name string, rows, cols int) (*kernels.Matrix, error) {
	m, err := q.Model.Matrix(name, rows, cols)
	if err != nil {
		return nil, err
	}
	if q.scheme == kernels.SchemeQ4 && cols%kernels.Q4Block == 0 {
		return kernels.QuantizeQ4(rows, cols, m.F32)
	}
	return kernels.QuantizeInt8(rows, cols, m.F32), nil
}

// load builds the model from weights in the given scheme on backend b.
func load(weights string, scheme kernels.Scheme, b kernels.Backend) (*clip.Model, error) {
	m, err := convert.Open(weights)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	var w clip.Weights = m
	if scheme != kernels.SchemeF32 {
		w = quantized{m, scheme}
	}
	return clip.Build(m.Config, w, b)
}
