package avx2

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/purego"
)

// TestConv2D compares against purego's Conv2D, f32 weights, including the
// 1×1 shortcut, padding wider than the image, the ViT patch embedding, and
// an image large enough for several im2col chunks.
func TestConv2D(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	ref := purego.New(1)
	for _, s := range []kernels.ConvShape{
		{N: 1, H: 1, W: 1, InC: 1, OutC: 1, K: 1, Stride: 1},
		{N: 2, H: 5, W: 7, InC: 3, OutC: 5, K: 1, Stride: 1},
		{N: 1, H: 6, W: 5, InC: 4, OutC: 3, K: 1, Stride: 2},
		{N: 2, H: 7, W: 6, InC: 3, OutC: 19, K: 3, Stride: 1, Pad: 1},
		{N: 1, H: 8, W: 9, InC: 5, OutC: 6, K: 3, Stride: 2, Pad: 1},
		{N: 2, H: 16, W: 13, InC: 3, OutC: 8, K: 7, Stride: 2, Pad: 3},
		{N: 1, H: 3, W: 4, InC: 2, OutC: 3, K: 7, Stride: 1, Pad: 3},
		{N: 2, H: 64, W: 64, InC: 3, OutC: 40, K: 32, Stride: 32},
		{N: 1, H: 30, W: 30, InC: 3, OutC: 10, K: 8, Stride: 8},
		{N: 1, H: 130, W: 128, InC: 256, OutC: 5, K: 3, Stride: 1, Pad: 1},
	} {
		kk := s.K * s.K * s.InC
		src := randSlice(rng, s.N*s.H*s.W*s.InC)
		wd := randSlice(rng, s.OutC*kk)
		bias := randSlice(rng, s.OutC)
		oh, ow := s.OutSize()
		want := make([]float32, s.N*oh*ow*s.OutC)
		ref.Conv2D(want, src, s, kernels.NewMatrix(s.OutC, kk, wd), bias)
		for _, th := range []int{1, 2} {
			dst := make([]float32, len(want))
			newTest(t, th).Conv2D(dst, src, s, kernels.NewMatrix(s.OutC, kk, wd), bias)
			checkClose(t, fmt.Sprintf("%+v t%d", s, th), dst, want, 1e-5)
		}
	}
}

// TestConv2DQuantized checks that quantized conv weights take the integer
// path: the result must match Linear on purego's im2col of the same image,
// i.e. Conv2D with dequantized weights, within the activation quantization.
func TestConv2DQuantized(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	s := kernels.ConvShape{N: 1, H: 64, W: 64, InC: 3, OutC: 24, K: 32, Stride: 32}
	kk := s.K * s.K * s.InC
	src := randSlice(rng, s.N*s.H*s.W*s.InC)
	wd := randSlice(rng, s.OutC*kk)
	oh, ow := s.OutSize()
	for _, scheme := range []kernels.Scheme{kernels.SchemeInt8, kernels.SchemeQ4} {
		w := quantizedMatrix(t, scheme, s.OutC, kk, wd)
		want := make([]float32, s.N*oh*ow*s.OutC)
		purego.New(1).Conv2D(want, src, s, kernels.NewMatrix(s.OutC, kk, w.Dequantize()), nil)
		dst := make([]float32, len(want))
		newTest(t, 2).Conv2D(dst, src, s, w, nil)
		checkClose(t, string(scheme), dst, want, 1e-4)
		if _, ok := w.Prepared.(*intPanels); !ok {
			t.Fatalf("%s: Prepared = %T, want *intPanels (integer path)", scheme, w.Prepared)
		}
	}
}
