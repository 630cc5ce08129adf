package im2col

import (
	"strings"
	"testing"

	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/internal/workpool"
)

// TestConv2DBadInput checks that mismatched shapes panic with a message
// naming the backend and the problem, before any work. (The purego and
// avx2 backends' Conv2D tests check the results, chunked im2col included.)
func TestConv2DBadInput(t *testing.T) {
	s := kernels.ConvShape{N: 1, H: 4, W: 4, InC: 2, OutC: 3, K: 3, Stride: 1, Pad: 1}
	kk := s.K * s.K * s.InC
	unused := func(dst, x []float32, m int, w *kernels.Matrix, bias []float32) {
		t.Error("linear called on bad input")
	}
	for _, c := range []struct {
		name     string
		dst, src []float32
		w        *kernels.Matrix
		want     string
	}{
		{"weight rows", make([]float32, 48), make([]float32, 32), kernels.NewMatrix(4, kk, make([]float32, 4*kk)), "weight shape"},
		{"weight cols", make([]float32, 48), make([]float32, 32), kernels.NewMatrix(3, kk+1, make([]float32, 3*(kk+1))), "weight shape"},
		{"short src", make([]float32, 48), make([]float32, 31), kernels.NewMatrix(3, kk, make([]float32, 3*kk)), "too short"},
		{"short dst", make([]float32, 47), make([]float32, 32), kernels.NewMatrix(3, kk, make([]float32, 3*kk)), "too short"},
	} {
		func() {
			defer func() {
				msg, _ := recover().(string)
				if !strings.HasPrefix(msg, "test: ") || !strings.Contains(msg, c.want) {
					t.Errorf("%s: panic %q, want \"test: …%s…\"", c.name, msg, c.want)
				}
			}()
			Conv2D("test", workpool.New(1), unused, c.dst, c.src, s, c.w, nil)
		}()
	}
}
