package purego

import (
	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/internal/im2col"
)

// Conv2D convolves src [N,H,W,InC] with w [OutC, K*K*InC] into
// dst [N,OH,OW,OutC] as im2col followed by the Linear GEMM (package
// im2col), so every weight scheme runs on this backend's GEMM.
func (b *backend) Conv2D(dst, src []float32, s kernels.ConvShape, w *kernels.Matrix, bias []float32) {
	im2col.Conv2D("purego", b.pool.Pool, b.linear, dst, src, s, w, bias)
}
