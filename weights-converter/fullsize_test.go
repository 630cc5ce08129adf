package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/convert"
	"github.com/clipwasm/clipwasm/internal/randweights"
	"github.com/clipwasm/clipwasm/kernels/native"
	"github.com/clipwasm/clipwasm/shards"
	"github.com/clipwasm/clipwasm/shards/quantize"
)

// TestFullSize converts full-size ViT-B/32 and RN50 with the peers kit's
// random weights (seed 0) to int8 and q4 as the command does, and holds
// the bars: the cosine between the bundle's embeddings and the
// float32 model's, on 8 images and 16 texts the calibration never saw,
// int8 ≥ 0.999 and q4 ≥ 0.99; ViT-B/32's bundle, manifest included,
// int8 ≤ 160 MB and q4 ≤ 95 MB.
func TestFullSize(t *testing.T) {
	if testing.Short() {
		t.Skip("converts two full-size models twice (minutes)")
	}
	tok := testTokenizer(t)
	sot, eot := tok.SpecialIDs()
	b, err := native.New(0)
	if err != nil {
		t.Fatal(err)
	}
	limits := map[string]map[shards.Scheme]int64{"ViT-B/32": {shards.Int8: 160e6, shards.Q4: 95e6}}
	for _, arch := range []string{"ViT-B/32", "RN50"} {
		t.Run(arch, func(t *testing.T) {
			c, err := clip.Named(arch)
			if err != nil {
				t.Fatal(err)
			}
			tensors, err := randweights.Generate(c, 0)
			if err != nil {
				t.Fatal(err)
			}
			m, err := convert.FromTensors(tensors, c.Activation)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := clip.Build(m.Config, m, b)
			if err != nil {
				t.Fatal(err)
			}
			images, tokens := quantize.RandomInputs(rand.New(rand.NewPCG(1, 2)), m.Config, sot, eot, 8, 16, 0)
			refImg, refTxt, err := embed(ref, images, tokens)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range []shards.Scheme{shards.Int8, shards.Q4} {
				t.Run(string(q), func(t *testing.T) {
					dir := filepath.Join(t.TempDir(), "bundle")
					start := time.Now()
					res, plan, err := writeBundle(dir, m, tok, shards.Options{Quant: q}, &quantize.Options{Budget: -1})
					if err != nil {
						t.Fatal(err)
					}
					manifest, err := os.Stat(filepath.Join(dir, shards.ManifestFile))
					if err != nil {
						t.Fatal(err)
					}
					size := res.Manifest.TotalSize() + manifest.Size()
					kept := 0
					for _, e := range plan.Report {
						if e.Kept {
							kept++
						}
					}
					t.Logf("converted in %v: %.2f MB with the manifest, %d matrices kept more precise", time.Since(start).Round(time.Second), float64(size)/1e6, kept)
					if limit := limits[arch][q]; limit > 0 && size > limit {
						t.Errorf("bundle %d bytes, over %d", size, limit)
					}
					bd, err := shards.Open(dir)
					if err != nil {
						t.Fatal(err)
					}
					defer bd.Close()
					got, err := clip.Build(bd.Config, bd, b)
					if err != nil {
						t.Fatal(err)
					}
					img, txt, err := embed(got, images, tokens)
					if err != nil {
						t.Fatal(err)
					}
					d := m.Config.EmbedDim
					for _, c := range []struct {
						tower     string
						want, got []float32
					}{{"image", refImg, img}, {"text", refTxt, txt}} {
						cos := minRowCosine(c.want, c.got, d)
						t.Logf("%s: lowest cosine %.5f", c.tower, cos)
						if cos < minCosine[q] {
							t.Errorf("%s cosine %.5f below %g", c.tower, cos, minCosine[q])
						}
					}
				})
			}
		})
	}
}
