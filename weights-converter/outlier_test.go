package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/convert"
	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/internal/randweights"
	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/actquant"
	"github.com/clipwasm/clipwasm/kernels/native"
	"github.com/clipwasm/clipwasm/shards"
	"github.com/clipwasm/clipwasm/shards/quantize"
)

// outlierChannels returns the residual channels made large in a stream
// of the given width: four, at the same relative places in every width.
func outlierChannels(width int) []int {
	out := []int{17, 211, 404, 490}
	for i, c := range out {
		out[i] = c * width / 512
	}
	return out
}

// outlierScale is how much larger they are made.
const outlierScale = 50

// injectOutliers makes outlierChannels of every residual stream of a
// ViT's state dict outlierScale times larger and keeps them so, as in
// trained CLIP models: the image tower's ln_pre and the text tower's
// positional embedding put them into the stream, and every block's
// attention out_proj and MLP c_proj write them back (their output rows and
// biases scaled). The token table is left alone: scaled, its int8 rows
// would lose the other channels to their four large ones, a weight
// rounding problem that no activation choice can mend.
func injectOutliers(tensors map[string]clip.Tensor) error {
	scaleCols := func(name string) error {
		t, ok := tensors[name]
		if !ok {
			return fmt.Errorf("no tensor %s", name)
		}
		cols := t.Shape[len(t.Shape)-1]
		channels := outlierChannels(cols)
		for i := range t.Data {
			if slices.Contains(channels, i%cols) {
				t.Data[i] *= outlierScale
			}
		}
		return nil
	}
	scaleRows := func(name string) error {
		t, ok := tensors[name]
		if !ok {
			return fmt.Errorf("no tensor %s", name)
		}
		cols := len(t.Data) / t.Shape[0]
		for _, c := range outlierChannels(t.Shape[0]) {
			for i := c * cols; i < (c+1)*cols; i++ {
				t.Data[i] *= outlierScale
			}
		}
		return nil
	}
	names := []string{"visual.ln_pre.weight", "visual.ln_pre.bias", "positional_embedding"}
	for name := range tensors {
		if strings.HasSuffix(name, ".attn.out_proj.weight") || strings.HasSuffix(name, ".attn.out_proj.bias") ||
			strings.HasSuffix(name, ".mlp.c_proj.weight") || strings.HasSuffix(name, ".mlp.c_proj.bias") {
			names = append(names, name)
		}
	}
	for _, name := range names {
		scale := scaleCols
		if strings.Contains(name, "proj") {
			scale = scaleRows
		}
		if err := scale(name); err != nil {
			return err
		}
	}
	return nil
}

// normWatch is a backend that records, over every LayerNorm output of the
// towers' widths, the largest |value| in the outlier channels and in the
// others.
type normWatch struct {
	kernels.Backend
	widths           []int
	outlier, regular float64
}

func (w *normWatch) LayerNorm(dst, x []float32, m, n int, gamma, beta []float32, eps float32) {
	w.Backend.LayerNorm(dst, x, m, n, gamma, beta, eps)
	if !slices.Contains(w.widths, n) {
		return
	}
	channels := outlierChannels(n)
	for i, v := range dst[:m*n] {
		a := math.Abs(float64(v))
		if slices.Contains(channels, i%n) {
			w.outlier = max(w.outlier, a)
		} else {
			w.regular = max(w.regular, a)
		}
	}
}

// outlierModel returns the model of config c with the peers kit's random
// weights (seed 0), with outlier channels injected if asked.
func outlierModel(t *testing.T, c clip.Config, outliers bool) *convert.Model {
	t.Helper()
	tensors, err := randweights.Generate(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	if outliers {
		if err := injectOutliers(tensors); err != nil {
			t.Fatal(err)
		}
	}
	m, err := convert.FromTensors(tensors, c.Activation)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkBrowserActivations converts m to int8 as the command does and runs
// the bundle as the browser does: the activations of every int8 Linear
// quantized per token, 7-bit with a zero point (the relaxed dot, which the
// browser uses where it can and the converter measures with) and 8-bit
// (the SIMD128 fallback), through package actquant, which computes what the
// wasm kernels compute (their tests hold them to it). The cosine to the
// float32 model's embeddings of the inputs must reach the int8 bar in
// both modes. It also checks that the manifest's "activations" entries
// are the plan's and reach the matrices the bundle hands out, and logs the
// largest LayerNorm outputs of outlier and other channels.
func checkBrowserActivations(t *testing.T, m *convert.Model, images []float32, tokens [][]int, outliers bool) {
	tok := testTokenizer(t)
	b, err := native.New(0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.Config
	watch := &normWatch{Backend: b, widths: []int{cfg.VisionWidth, cfg.TextWidth}}
	ref, err := clip.Build(cfg, m, watch)
	if err != nil {
		t.Fatal(err)
	}
	n := len(images) / (3 * cfg.ImageResolution * cfg.ImageResolution)
	refImg, refTxt, err := embed(ref, images, tokens)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("LayerNorm outputs, max |value|: channels %v (of %d) %.3g, others %.3g", outlierChannels(cfg.VisionWidth), cfg.VisionWidth, watch.outlier, watch.regular)
	if outliers && watch.outlier < 10*watch.regular {
		t.Errorf("injected channels not outliers at the LayerNorm outputs: %.3g vs %.3g", watch.outlier, watch.regular)
	}
	dir := filepath.Join(t.TempDir(), "bundle")
	start := time.Now()
	_, plan, err := writeBundle(dir, m, tok, shards.Options{Quant: shards.Int8}, &quantize.Options{Budget: -1})
	if err != nil {
		t.Fatal(err)
	}
	smoothed := 0
	for _, s := range plan.Activations.Smoothed {
		if s.Alpha > 0 {
			smoothed++
		}
	}
	t.Logf("converted in %v; smoothed %d of %d LayerNorm → Linear pairs; error with 7-bit activations image %.3g, text %.3g; %d matrices given float32 activations %v, then %.3g, %.3g",
		time.Since(start).Round(time.Second), smoothed, len(plan.Activations.Smoothed), plan.Activations.Quantized[0], plan.Activations.Quantized[1],
		len(plan.Activations.F32), plan.Activations.F32, plan.Activations.Chosen[0], plan.Activations.Chosen[1])
	if outliers && smoothed < len(plan.Activations.Smoothed) {
		t.Errorf("with outlier channels, %d of %d LayerNorm → Linear pairs smoothed, want all", smoothed, len(plan.Activations.Smoothed))
	}
	bd, err := shards.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer bd.Close()
	var inManifest []string
	for _, e := range bd.Manifest.Tensors {
		if e.Activations == "" {
			continue
		}
		inManifest = append(inManifest, e.Name)
		mat, err := bd.Matrix(e.Name, e.Shape[0], e.Shape[1])
		if err != nil {
			t.Fatal(err)
		}
		if mat.Activations != e.Activations {
			t.Errorf("%s: manifest says activations %q, the bundle's matrix %q", e.Name, e.Activations, mat.Activations)
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(inManifest)), slices.Sorted(slices.Values(plan.Activations.F32))) {
		t.Errorf("manifest has float32 activations for %v, the plan chose %v", inManifest, plan.Activations.F32)
	}
	checkActivationsValidated(t, bd.Manifest)
	for _, mode := range []actquant.Mode{actquant.Int8, actquant.U7} {
		got, err := clip.Build(bd.Config, bd, actquant.New(b, mode))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		img, txt, err := embed(got, images, tokens)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s activations: %d images and %d texts in %v", mode, n, len(tokens), time.Since(start).Round(time.Millisecond))
		for _, tw := range []struct {
			tower     string
			want, got []float32
		}{{"image", refImg, img}, {"text", refTxt, txt}} {
			cos := minRowCosine(tw.want, tw.got, cfg.EmbedDim)
			t.Logf("%s activations, %s: lowest cosine %.5f", mode, tw.tower, cos)
			if cos < minCosine[shards.Int8] {
				t.Errorf("%s activations, %s cosine %.5f below %g", mode, tw.tower, cos, minCosine[shards.Int8])
			}
		}
	}
}

// checkActivationsValidated checks that a manifest's "activations" field
// takes only "f32", and only on an int8 or q4 matrix: each change below,
// made to a valid manifest, must be refused with an error naming the
// tensor.
func checkActivationsValidated(t *testing.T, valid *shards.Manifest) {
	t.Helper()
	matrix := slices.IndexFunc(valid.Tensors, func(e shards.TensorEntry) bool { return e.Scheme == shards.Int8 })
	vector := slices.IndexFunc(valid.Tensors, func(e shards.TensorEntry) bool { return e.Kind == shards.KindVector })
	for _, c := range []struct {
		tensor int
		value  kernels.ActivationPrecision
	}{{matrix, "int16"}, {matrix, "F32"}, {vector, kernels.ActivationsF32}} {
		m := *valid
		m.Tensors = slices.Clone(valid.Tensors)
		m.Tensors[c.tensor].Activations = c.value
		data, err := json.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		_, err = shards.ParseManifest(data)
		if name := m.Tensors[c.tensor].Name; err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("activations %q on %s: err = %v, want one naming it", c.value, name, err)
		}
	}
}

// TestBrowserActivations holds every fixture model's int8 bundle, on its
// golden inputs, and the tiny ViT fixture's shape with random weights and
// outlier channels, to the int8 bar with the browser's activations (see
// checkBrowserActivations).
func TestBrowserActivations(t *testing.T) {
	for _, fx := range fixtureModels {
		t.Run(fx.name, func(t *testing.T) {
			m, err := convert.Open(fixtures.Path(fx.path...))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			checkBrowserActivations(t, m, fx.npy(t, fx.images).F32, fx.tokenRows(t), false)
		})
	}
	t.Run("vit_tiny-outliers", func(t *testing.T) {
		f, err := convert.Open(fixtures.Path(fixtureModels[0].path...))
		if err != nil {
			t.Fatal(err)
		}
		cfg := f.Config
		f.Close()
		tok := testTokenizer(t)
		sot, eot := tok.SpecialIDs()
		images, tokens := quantize.RandomInputs(rand.New(rand.NewPCG(1, 2)), cfg, sot, eot, 4, 8, 0)
		checkBrowserActivations(t, outlierModel(t, cfg, true), images, tokens, true)
	})
}

// TestOutlierChannels is checkBrowserActivations on a full-size ViT-B/32
// with the peers kit's random weights (seed 0), plain and with outlier
// channels injected (injectOutliers), on 4 images and 8 texts that the
// calibration never saw.
func TestOutlierChannels(t *testing.T) {
	if testing.Short() {
		t.Skip("converts full-size ViT-B/32 twice (minutes)")
	}
	c, err := clip.Named("ViT-B/32")
	if err != nil {
		t.Fatal(err)
	}
	c.Normalize()
	tok := testTokenizer(t)
	sot, eot := tok.SpecialIDs()
	images, tokens := quantize.RandomInputs(rand.New(rand.NewPCG(1, 2)), c, sot, eot, 4, 8, 0)
	for _, tc := range []struct {
		name     string
		outliers bool
	}{{"plain", false}, {"outliers", true}} {
		t.Run(tc.name, func(t *testing.T) {
			checkBrowserActivations(t, outlierModel(t, c, tc.outliers), images, tokens, tc.outliers)
		})
	}
}
