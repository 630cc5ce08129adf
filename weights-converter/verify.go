package main

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"slices"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/kernels/purego"
	"github.com/clipwasm/clipwasm/shards"
	"github.com/clipwasm/clipwasm/shards/quantize"
)

// minCosine is the cosine between the bundle's embeddings and the original
// model's that each scheme should reach.
var minCosine = map[shards.Scheme]float64{
	shards.F32:  0.999999,
	shards.F16:  0.99999,
	shards.Int8: 0.999,
	shards.Q4:   0.99,
}

// Inputs of the self-check: a few random normalised images and token rows.
const (
	checkImages = 3
	checkTexts  = 4
)

// selfCheck builds the original model and the bundle at dir on the
// portable backend, runs both on the same random inputs and prints the
// lowest cosine between their embeddings per tower, with a warning where
// one is below minCosine for the scheme. It fails if the bundle cannot be
// loaded or run. Both models are streamed (quantize.Stream): each float32
// matrix is read from orig, or from the bundle, when it is used, so the
// check holds neither model in float32.
func selfCheck(w io.Writer, orig clip.Weights, dir string, quant shards.Scheme) error {
	// What the conversion held (the plan, garbage up to the soft memory
	// limit) goes back to the system before the bundle's shards are
	// mapped: their pages count on top of the heap. (A ViT-L/14 int8
	// conversion measured 1.55 GB peak resident without this, 0.45 GB of
	// it the bundle.)
	debug.FreeOSMemory()
	b, err := shards.Open(dir)
	if err != nil {
		return fmt.Errorf("self-check: %w", err)
	}
	defer b.Close()
	backend := purego.New(0)
	ref, err := quantize.Stream(b.Config, orig, backend)
	if err != nil {
		return fmt.Errorf("self-check: original model: %w", err)
	}
	got, err := quantize.Stream(b.Config, b, backend)
	if err != nil {
		return fmt.Errorf("self-check: bundle: %w", err)
	}
	sot, eot := b.Tokenizer().SpecialIDs()
	images, tokens := quantize.RandomInputs(rand.New(rand.NewPCG(1, 2)), b.Config, sot, eot, checkImages, checkTexts, 0)
	img, txt, err := compare(ref, got, images, tokens)
	if err != nil {
		return fmt.Errorf("self-check: %w", err)
	}
	fmt.Fprintf(w, "self-check on %d random images and %d random texts (%s backend), lowest cosine bundle vs original:\n", checkImages, checkTexts, backend.Name())
	bar := minCosine[quant]
	for _, t := range []struct {
		name   string
		cosine float64
	}{{"image", img}, {"text", txt}} {
		fmt.Fprintf(w, "  %-5s tower %.6f\n", t.name, t.cosine)
		if t.cosine < bar {
			fmt.Fprintf(w, "  WARNING: the %s tower is below %g, the bar for %s\n", t.name, bar, quant)
		}
	}
	return nil
}

// embed returns the image embeddings of images (a batch of [3, R, R]
// arrays) and the text embeddings of the token rows.
func embed(m *clip.Model, images []float32, tokens [][]int) (img, txt []float32, err error) {
	r := m.Config.ImageResolution
	if img, err = m.EncodeImage(images, len(images)/(3*r*r)); err != nil {
		return nil, nil, err
	}
	txt, err = m.EncodeText(tokens)
	return img, txt, err
}

// embedStreamed is embed on a streamed model.
func embedStreamed(m *quantize.Streamed, images []float32, tokens [][]int) (img, txt []float32, err error) {
	img, txt, err = embed(m.Model, images, tokens)
	return img, txt, cmp.Or(err, m.Err())
}

// compare runs both models on the inputs and returns the lowest cosine
// between their image embeddings and between their text embeddings.
func compare(ref, got *quantize.Streamed, images []float32, tokens [][]int) (img, txt float64, err error) {
	ri, rt, err := embedStreamed(ref, images, tokens)
	if err != nil {
		return 0, 0, fmt.Errorf("original model: %w", err)
	}
	gi, gt, err := embedStreamed(got, images, tokens)
	if err != nil {
		return 0, 0, fmt.Errorf("bundle: %w", err)
	}
	d := ref.Config.EmbedDim
	return minRowCosine(ri, gi, d), minRowCosine(rt, gt, d), nil
}

// minRowCosine returns the lowest cosine between matching rows of a and b,
// which hold rows of d values.
func minRowCosine(a, b []float32, d int) float64 {
	lowest := 1.0
	for r := 0; r+d <= len(a); r += d {
		lowest = min(lowest, cosine(a[r:r+d], b[r:r+d]))
	}
	return lowest
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

// printWorst prints the n tensors with the largest relative error.
func printWorst(w io.Writer, stats []shards.TensorStat, n int) {
	s := slices.Clone(stats)
	slices.SortStableFunc(s, func(a, b shards.TensorStat) int { return cmp.Compare(b.RelError, a.RelError) })
	fmt.Fprintf(w, "largest relative errors ‖stored − original‖/‖original‖:\n")
	for _, t := range s[:min(n, len(s))] {
		fmt.Fprintf(w, "  %-48s %-4s %.3g\n", t.Name, t.Scheme, t.RelError)
	}
}
