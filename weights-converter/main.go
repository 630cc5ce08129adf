// Command weights-converter turns a CLIP checkpoint — an OpenAI .pt file, a
// Hugging Face or OpenCLIP folder, a safetensors file, or a model fetched
// from the Hugging Face Hub — into a bundle of quantized weight shards
// (package shards), then checks the bundle against the original model.
//
// Usage:
//
//	weights-converter --in CHECKPOINT --out DIR --quant int8|q4|f16|f32
//	    [--shard-size 16MiB] [--scale-dtype f32|f16] [--vocab PATH]
//	    [--calibrate=false] [--budget 8.5%]
//	weights-converter --from-hub openai/clip-vit-base-patch32 [--revision main]
//	    [--cache DIR] [--hub-url URL] --out DIR --quant ...
//
// Under int8 and q4 the converter first calibrates (package
// shards/quantize): it runs the float32 model on random inputs, quantizes
// every matrix with GPTQ on the recorded input statistics, and keeps the
// matrices whose rounding costs the embeddings most per byte a step more
// precise (int8 under q4, f32 under int8) within --budget, a percentage of
// the matrices' bytes (default 8.5% for q4, 2.5% for int8). Where that
// leaves a tower's embeddings too far from the float32 model's for the
// scheme's cosine bar, the default budget doubles until they are close
// enough or the bundle has grown by the larger of it and 4 MiB (so a small
// model may go most of the way to int8; full-size ones keep their size); a
// --budget given is kept to.
// --calibrate=false rounds each weight to its nearest code instead.
//
// Under f16 every matrix that binary16 holds exactly is stored f16 (a
// BatchNorm-folded convolution as its f16 weights and an f32 scale per
// row); calibration measures which of the others may be rounded with the
// embeddings staying within a quarter of the fixtures' tolerance
// (1e-4·max), and the rest stay f32 (all of them with --calibrate=false).
//
// The converter streams the checkpoint: neither the calibration nor the
// self-check holds the float32 model (quantize.Stream reads each matrix
// when it is used), so converting an f16 ViT-L/14 (855 MB) to int8 stays
// under twice the checkpoint's size: measured peak Go heap 1.47×, peak
// resident set 1.85× (the bundle's mapped pages during the self-check
// included).
//
// The tokenizer stored in the bundle comes from --vocab; else from
// vocab.json and merges.txt (or bpe_simple_vocab_16e6.txt.gz) beside the
// weights; else from $CLIPWASM_VOCAB; else from
// ../shared/reference/bpe_simple_vocab_16e6.txt.gz relative to the working
// folder. OpenAI's .pt files carry no vocabulary.
//
// Hub downloads go to --cache (default $XDG_CACHE_HOME/clipwasm or
// ~/.cache/clipwasm), by repository and revision, resume after a broken
// connection, and send $HF_TOKEN as a bearer token when it is set. The hub
// address is --hub-url, else $HF_ENDPOINT, else https://huggingface.co.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/clipwasm/clipwasm/convert"
	"github.com/clipwasm/clipwasm/internal/hub"
	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/native"
	"github.com/clipwasm/clipwasm/shards"
	"github.com/clipwasm/clipwasm/shards/quantize"
	"github.com/clipwasm/clipwasm/tokenizer"
)

func main() {
	// Only the command sets process-wide limits: tests call run in-process.
	limitMemory = true
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "weights-converter:", err)
		}
		os.Exit(1)
	}
}

// limitMemory says that run may set the process's soft memory limit (see
// setMemoryLimit).
var limitMemory bool

// setMemoryLimit sets the garbage collector's soft memory limit to 1.5×
// the size of the checkpoint at path (at least 256 MiB), unless GOMEMLIMIT
// sets one. The converter streams the checkpoint, so what it holds live
// is well under that; without the limit the collector lets garbage grow
// to as much again as the live heap, which would take the conversion of a
// ViT-L/14 past twice its checkpoint's size.
func setMemoryLimit(path string) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	var size int64
	filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable: convert.Open reports it
		}
		if info, err := d.Info(); err == nil && info.Mode().IsRegular() {
			size += info.Size()
		}
		return nil
	})
	debug.SetMemoryLimit(max(size/2*3, 256<<20))
}

// options are the parsed command line.
type options struct {
	in, out, vocab    string
	quant             shards.Scheme
	scaleDType        shards.DType
	shardSize         int64
	calibrate         bool
	budget            float64 // negative: the scheme's default
	fromHub, revision string
	cache, hubURL     string
	quiet, skipVerify bool
}

func parseArgs(args []string, stderr io.Writer) (*options, error) {
	o := &options{shardSize: shards.DefaultShardSize, budget: -1}
	fs := flag.NewFlagSet("weights-converter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.in, "in", "", "checkpoint file or folder to convert")
	fs.StringVar(&o.out, "out", "", "bundle folder to write (replaced if it holds a bundle)")
	quant := fs.String("quant", "", "matrix storage: int8, q4, f16 or f32")
	scale := fs.String("scale-dtype", "", "dtype of int8/q4 scales: f32 or f16 (default f32 for int8, f16 for q4)")
	fs.Func("shard-size", "shard size bound, e.g. 16MiB, 4MB or 1048576 (default 16MiB)", func(s string) (err error) {
		o.shardSize, err = parseSize(s)
		return err
	})
	fs.BoolVar(&o.calibrate, "calibrate", true, "int8/q4: calibrate on random inputs (GPTQ, sensitive matrices kept more precise); false: round each weight")
	fs.Func("budget", fmt.Sprintf("int8/q4: bytes the sensitive matrices may add, as a percentage of the matrices' bytes (default %.3g%% for q4, %.3g%% for int8)",
		100*quantize.DefaultBudget(shards.Q4), 100*quantize.DefaultBudget(shards.Int8)), func(s string) error {
		num, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
		v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if !pct || err != nil || v < 0 || v > 1000 {
			return fmt.Errorf("bad budget %q (want a percentage, e.g. 8.5%%)", s)
		}
		o.budget = v / 100
		return nil
	})
	fs.StringVar(&o.vocab, "vocab", "", "tokenizer: bpe_simple_vocab_16e6.txt.gz, or a folder with vocab.json and merges.txt")
	fs.StringVar(&o.fromHub, "from-hub", "", "Hugging Face Hub repository to download, e.g. openai/clip-vit-base-patch32")
	fs.StringVar(&o.revision, "revision", "main", "hub revision (branch, tag or commit)")
	fs.StringVar(&o.cache, "cache", "", "download cache (default $XDG_CACHE_HOME/clipwasm or ~/.cache/clipwasm)")
	fs.StringVar(&o.hubURL, "hub-url", "", "hub address (default $HF_ENDPOINT or "+hub.DefaultURL+")")
	fs.BoolVar(&o.quiet, "quiet", false, "no download progress")
	fs.BoolVar(&o.skipVerify, "no-verify", false, "skip the check of the bundle against the original model (it runs both models on the portable backend)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case (o.in == "") == (o.fromHub == ""):
		return nil, errors.New("give exactly one of --in and --from-hub")
	case o.out == "":
		return nil, errors.New("--out is required")
	}
	o.quant = shards.Scheme(*quant)
	switch o.quant {
	case shards.F32, shards.F16, shards.Int8, shards.Q4:
	default:
		return nil, fmt.Errorf("--quant %q: want int8, q4, f16 or f32", *quant)
	}
	switch *scale {
	case "":
	case "f32", "f16":
		o.scaleDType = shards.DType(strings.ToUpper(*scale))
	default:
		return nil, fmt.Errorf("--scale-dtype %q: want f32 or f16", *scale)
	}
	return o, nil
}

// run is the command: parse args, fetch if asked, convert, check.
func run(args []string, stdout, stderr io.Writer) error {
	o, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	in := o.in
	if o.fromHub != "" {
		if in, err = download(o, stdout, stderr); err != nil {
			return err
		}
	}
	if limitMemory {
		setMemoryLimit(in)
	}
	m, err := convert.Open(in)
	if err != nil {
		return err
	}
	defer m.Close()
	tok, tokFrom, err := loadTokenizer(o.vocab, in)
	if err != nil {
		return err
	}
	if tok.VocabSize() > m.Config.VocabSize {
		return fmt.Errorf("tokenizer %s has %d tokens, more than the model's %d embeddings", tokFrom, tok.VocabSize(), m.Config.VocabSize)
	}
	fmt.Fprintf(stdout, "model: %s\ntokenizer: %s\n", m.Config.String(), tokFrom)
	wopt := shards.Options{Quant: o.quant, ScaleDType: o.scaleDType, ShardSize: o.shardSize}
	var copt *quantize.Options
	if o.calibrate {
		copt = &quantize.Options{Budget: o.budget}
	}
	res, plan, err := writeBundle(o.out, m, tok, wopt, copt)
	if err != nil {
		return err
	}
	if plan != nil {
		printPlan(stdout, plan)
	}
	man := res.Manifest
	fmt.Fprintf(stdout, "wrote %s: %d tensors (%s), %d shards, %.1f MiB\n", o.out, len(man.Tensors), o.quant, len(man.Shards), float64(man.TotalSize())/(1<<20))
	for _, t := range res.Tensors {
		if t.Fallback != "" {
			fmt.Fprintf(stdout, "  %s: %s\n", t.Name, t.Fallback)
		}
	}
	printWorst(stdout, res.Tensors, 5)
	if o.skipVerify {
		return nil
	}
	return selfCheck(stdout, m, o.out, o.quant)
}

// writeBundle converts m into a bundle at out. Under int8 and q4 with copt
// set it calibrates first and returns the plan it wrote. Under f16 it
// stores exactly every matrix binary16 holds (row-scaled for
// BatchNorm-folded convolutions) and, with copt set,
// rounds the others where quantize.PlanF16 measures that the embeddings
// stay within quantize.F16Target; without copt it keeps them all f32.
func writeBundle(out string, m *convert.Model, tok *tokenizer.Tokenizer, wopt shards.Options, copt *quantize.Options) (*shards.Result, *quantize.Plan, error) {
	var plan *quantize.Plan
	sot, eot := tok.SpecialIDs()
	switch {
	case wopt.Quant == shards.F16 && copt == nil:
		wopt.F16Policy = keepInexact{}
	case wopt.Quant == shards.F16:
		b, err := native.New(0)
		if err != nil {
			return nil, nil, err
		}
		rowScaled := map[string]bool{}
		for _, t := range m.Tensors {
			rowScaled[t.Name] = t.RowScaled() != nil
		}
		exact := func(name string) bool { return rowScaled[name] }
		if wopt.F16Policy, err = quantize.PlanF16(m.Config, m, b, sot, eot, exact, *copt); err != nil {
			return nil, nil, err
		}
	case copt != nil && (wopt.Quant == shards.Int8 || wopt.Quant == shards.Q4):
		var err error
		if plan, err = calibrate(m, sot, eot, wopt, *copt); err != nil {
			return nil, nil, err
		}
		wopt.Quantizer = plan
	}
	src := sources(m)
	if plan != nil {
		src = plan.Sources(src) // the LayerNorms that calibration smoothed
	}
	res, err := shards.Write(out, m.Config, tok, src, wopt)
	return res, plan, err
}

// calibrate plans the int8 or q4 matrices of m within opt.Budget and, while
// a tower's embeddings of the calibration's held-out inputs stay further
// from the float32 model's than targetError allows, plans again with
// twice the budget, up to what the larger of the default budget and
// growthBytes allows (a budget given in opt is kept to): a small model that the default budget cannot bring to the
// scheme's bar gets more of its matrices a step more precise, while a
// large one keeps its size. (The tiny ResNet fixture, whose q4 image
// cosine stays near 0.96 at the default budget, needs most of its image
// tower and its token table int8; a full-size ViT-B/32 or RN50 spends no
// more than the default budget.)
func calibrate(m *convert.Model, sot, eot int, wopt shards.Options, opt quantize.Options) (*quantize.Plan, error) {
	b, err := native.New(0)
	if err != nil {
		return nil, err
	}
	ceiling := opt.Budget // a budget given is kept to
	if opt.Budget < 0 {
		opt.Budget = quantize.DefaultBudget(wopt.Quant)
		ceiling = max(opt.Budget, growthBytes/float64(matrixBytes(m, wopt)))
	}
	target := targetError(wopt.Quant)
	for {
		plan, err := quantize.Calibrate(m.Config, m, b, sot, eot, wopt, opt)
		if err != nil {
			return nil, err
		}
		met := plan.Towers[0].Planned <= target && plan.Towers[1].Planned <= target
		if met || opt.Budget >= ceiling {
			return plan, nil
		}
		opt.Budget = min(ceiling, 2*max(opt.Budget, 0.01))
	}
}

// growthBytes is what calibrate may add to any bundle to reach the target,
// whatever its default budget: 4 MiB, about twice the browser engine's
// own compressed download, a cost that does not change which devices can
// run the model. A full-size model's q4 budget is larger already
// (ViT-B/32: 7.2 MB, RN50: 4.9 MB), so it never grows; at int8 a
// ViT-B/32 may grow by 0.4 MB at most (3.8 MB default budget).
const growthBytes = 4 << 20

// targetError is the relative squared error of a tower's embeddings on the
// calibration's held-out inputs (quantize.TowerError) that calibrate aims
// for: a quarter of 1 − the scheme's cosine bar. A row at relative squared
// error e has a cosine of about 1 − e/2; the quarter leaves room for rows
// worse than the mean and for inputs unlike the random ones (on the tiny
// ResNet fixture's captions the text tower's cosine is 1 − 1.5·e).
func targetError(q shards.Scheme) float64 { return (1 - minCosine[q]) / 4 }

// matrixBytes is what m's matrices take stored in the requested scheme,
// scales included (q4 matrices whose columns do not divide into blocks
// counted int8).
func matrixBytes(m *convert.Model, wopt shards.Options) int64 {
	scale := int64(4)
	if wopt.StoredScaleDType() == shards.DTypeF16 {
		scale = 2
	}
	var total int64
	for _, t := range m.Tensors {
		if t.Kind != convert.Matrix {
			continue
		}
		rows, n := int64(t.Shape[0]), int64(1)
		for _, d := range t.Shape {
			n *= int64(d)
		}
		if wopt.Quant == shards.Q4 && (n/rows)%kernels.Q4Block == 0 {
			total += n/2 + n/kernels.Q4Block*scale
		} else {
			total += n + rows*scale
		}
	}
	return max(total, 1)
}

// keepInexact is the f16 policy without calibration: every matrix that
// binary16 cannot hold exactly stays f32, so the bundle is lossless.
type keepInexact struct{}

// KeepF32 implements shards.F16Policy.
func (keepInexact) KeepF32(string) string {
	return "kept f32: binary16 does not hold its values (--calibrate=false keeps every such matrix)"
}

// printPlan reports what calibration measured: each tower's error with
// every matrix in the requested scheme and as written.
func printPlan(w io.Writer, p *quantize.Plan) {
	gptq := 0
	for _, e := range p.Report {
		if e.GPTQ {
			gptq++
		}
	}
	fmt.Fprintf(w, "calibrated: %d of %d matrices rounded with GPTQ; relative squared error of the embeddings on held-out random inputs, all in the requested scheme → as written:\n", gptq, len(p.Report))
	for _, t := range p.Towers {
		fmt.Fprintf(w, "  %-5s tower %.3g → %.3g\n", t.Name, t.Base, t.Planned)
	}
}

// sources lists the model's tensors for shards.Write.
func sources(m *convert.Model) []shards.Source {
	out := make([]shards.Source, len(m.Tensors))
	for i, t := range m.Tensors {
		kind := shards.KindVector
		if t.Kind == convert.Matrix {
			kind = shards.KindMatrix
		}
		out[i] = shards.Source{Name: t.Name, Shape: t.Shape, Kind: kind, Float32: t.Float32, RowScaled: t.RowScaled()}
	}
	return out
}

// download fetches the --from-hub repository and returns its local folder.
func download(o *options, stdout, stderr io.Writer) (string, error) {
	cache := o.cache
	if cache == "" {
		var err error
		if cache, err = defaultCache(); err != nil {
			return "", err
		}
	}
	base := o.hubURL
	if base == "" {
		base = os.Getenv("HF_ENDPOINT")
	}
	c := &hub.Client{BaseURL: base, Token: os.Getenv("HF_TOKEN"), CacheDir: cache}
	if !o.quiet && isTerminal(stderr) {
		c.Progress = stderr
	}
	// Ctrl-C stops a download cleanly (the .part file stays for a resume).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	dir, err := c.Download(ctx, o.fromHub, o.revision)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(stdout, "downloaded %s@%s: %s\n", o.fromHub, o.revision, dir)
	return dir, nil
}

// defaultCache is $XDG_CACHE_HOME/clipwasm, or ~/.cache/clipwasm.
func defaultCache() (string, error) {
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "clipwasm"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no cache folder (give --cache): %w", err)
	}
	return filepath.Join(home, ".cache", "clipwasm"), nil
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
