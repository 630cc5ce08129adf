package avx2

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/convert"
	"github.com/clipwasm/clipwasm/internal/randweights"
	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/actquant"
	"github.com/clipwasm/clipwasm/shards/quantize"
)

// int8Weights serves every matrix of a float32 model as per-channel int8,
// the converter's plain (uncalibrated) int8 scheme.
type int8Weights struct{ clip.Weights }

func (w int8Weights) Matrix(name string, rows, cols int) (*kernels.Matrix, error) {
	m, err := w.Weights.Matrix(name, rows, cols)
	if err != nil {
		return nil, fmt.Errorf("int8 view of %s: %w", name, err)
	}
	if m.F32 == nil {
		return nil, fmt.Errorf("int8 view of %s: scheme %q, want float32", name, m.Scheme)
	}
	return kernels.QuantizeInt8(rows, cols, m.F32), nil
}

// TestFullSizeInt8 runs full-size ViT-B/32 (the peers kit's seed-0 random
// weights) with float32 weights and with int8 weights on New's kernels
// (AVX-512/VNNI where the CPU has them) and holds the int8 bar: cosine ≥
// 0.999 between the two models' embeddings of 2 images and 8 texts. It
// also logs what 8-bit activations (what VPDPBUSD multiplies; modelled by
// package actquant) would give, the design this backend does not use.
func TestFullSizeInt8(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping in -short: full-size ViT-B/32, three forward passes")
	}
	be := newTest(t, 0)
	cfg, err := clip.Named("ViT-B/32")
	if err != nil {
		t.Fatal(err)
	}
	tensors, err := randweights.Generate(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	f32, err := convert.FromTensors(tensors, cfg.Activation)
	if err != nil {
		t.Fatal(err)
	}
	const sot, eot = 49406, 49407
	images, tokens := quantize.RandomInputs(rand.New(rand.NewPCG(1, 2)), f32.Config, sot, eot, 2, 8, 0)
	encode := func(t *testing.T, w clip.Weights, b kernels.Backend) (image, text []float32) {
		m, err := clip.Build(f32.Config, w, b)
		if err != nil {
			t.Fatal(err)
		}
		if image, err = m.EncodeImage(images, 2); err != nil {
			t.Fatal(err)
		}
		if text, err = m.EncodeText(tokens); err != nil {
			t.Fatal(err)
		}
		return image, text
	}
	refImage, refText := encode(t, f32, be)
	d := f32.Config.EmbedDim
	for _, c := range []struct {
		name    string
		backend kernels.Backend
		floor   float64 // 0: measured and logged only
	}{
		{"int16_activations", be, 0.999},
		{"int8_activations_not_used", actquant.New(be, actquant.Int8), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			image, text := encode(t, int8Weights{f32}, c.backend)
			for _, tower := range []struct {
				name      string
				got, want []float32
			}{{"image", image, refImage}, {"text", text, refText}} {
				lowest := 1.0
				for r := 0; r < len(tower.want); r += d {
					cos, _ := cosine(tower.got[r:r+d], tower.want[r:r+d])
					lowest = min(lowest, cos)
				}
				t.Logf("int8 weights on %s: %s lowest cosine to float32 %.6f", c.backend.Name(), tower.name, lowest)
				if !(lowest >= c.floor) {
					t.Errorf("%s: cosine %.6f below %v", tower.name, lowest, c.floor)
				}
			}
		})
	}
}
