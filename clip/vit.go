package clip

import "github.com/clipwasm/clipwasm/kernels"

// visionTransformer is CLIP's ViT image tower.
type visionTransformer struct {
	res, patch, width int
	conv1             *kernels.Matrix // patch embedding [W, P·P·3], columns (kh, kw, c)
	classEmbedding    []float32       // [W]
	positional        []float32       // [grid²+1, W]
	lnPre, lnPost     layerNorm
	transformer       transformer
	proj              *kernels.Matrix // [E, W]: visual.proj transposed
}

// encode maps images [n,3,R,R] (normalised, NCHW) to embeddings [n,E].
func (v *visionTransformer) encode(p *pass, images []float32, n int) []float32 {
	g, w := v.res/v.patch, v.width
	T := g*g + 1

	// Patch embedding: a P×P convolution with stride P on channels-last pixels.
	pixels := toChannelsLast(images, n, 3, v.res, v.res)
	patches := make([]float32, n*g*g*w) // [n, g·g, W]
	p.b.Conv2D(patches, pixels, kernels.ConvShape{N: n, H: v.res, W: v.res, InC: 3, OutC: w, K: v.patch, Stride: v.patch}, v.conv1, nil)
	p.emit("image0_patch_embed", patches, g, g, w)

	// x = [class_embedding; patches] + positional_embedding   [n, T, W]
	x := make([]float32, n*T*w)
	for i := 0; i < n; i++ {
		seq := x[i*T*w : (i+1)*T*w]
		copy(seq, v.classEmbedding)
		copy(seq[w:], patches[i*g*g*w:(i+1)*g*g*w])
		p.b.Add(seq, v.positional)
	}
	p.emit("image0_embed", x, T, w)

	p.norm(x, v.lnPre)
	p.emit("image0_ln_pre", x, T, w)
	v.transformer.forward(p, x, n, T, false, "image0_")

	cls := make([]float32, n*w) // ln_post(x[:, 0, :])   [n, W]
	for i := 0; i < n; i++ {
		copy(cls[i*w:(i+1)*w], x[i*T*w:])
	}
	p.norm(cls, v.lnPost)
	p.emit("image0_ln_post", cls, w)

	out := make([]float32, n*v.proj.Rows) // cls @ proj   [n, E]
	p.b.Linear(out, cls, n, v.proj, nil)
	p.emit("image0_final", out, v.proj.Rows)
	return out
}

// toChannelsLast converts [n,c,h,w] to [n,h,w,c].
func toChannelsLast(x []float32, n, c, h, w int) []float32 {
	out := make([]float32, len(x))
	for i := 0; i < n; i++ {
		src, dst := x[i*c*h*w:], out[i*c*h*w:]
		for ch := 0; ch < c; ch++ {
			for pix := 0; pix < h*w; pix++ {
				dst[pix*c+ch] = src[ch*h*w+pix]
			}
		}
	}
	return out
}
