package clip

import (
	"fmt"

	"github.com/clipwasm/clipwasm/kernels"
)

// conv is a convolution with its BatchNorm folded in at load time, so it
// carries a bias even though CLIP's convolutions have none.
type conv struct {
	w                  *kernels.Matrix // [out, K·K·in], columns (kh, kw, c)
	b                  []float32
	in, out, k, stride int
}

// bottleneck is ModifiedResNet's anti-aliased block: the convolutions never
// stride; an average pool does the downsampling.
type bottleneck struct {
	conv1, conv2, conv3 conv
	stride              int
	downsample          *conv // AvgPool(stride) → 1×1 conv → BN, or nil
}

// attentionPool is the ResNet's head: one query (the mean of the feature
// map) attends over the mean and every position.
type attentionPool struct {
	positional []float32 // [h·w+1, C]
	q, k, v, c linear
	heads      int
}

// modifiedResNet is CLIP's ResNet image tower.
type modifiedResNet struct {
	res    int
	stem   [3]conv
	layers [4][]bottleneck
	pool   attentionPool
}

// fmap is a batch of channels-last feature maps [n, h, w, c].
type fmap struct {
	data       []float32
	n, h, w, c int
}

func (p *pass) conv(x fmap, cv conv) fmap {
	s := kernels.ConvShape{N: x.n, H: x.h, W: x.w, InC: x.c, OutC: cv.out, K: cv.k, Stride: cv.stride, Pad: cv.k / 2}
	oh, ow := s.OutSize()
	y := fmap{make([]float32, x.n*oh*ow*cv.out), x.n, oh, ow, cv.out}
	p.b.Conv2D(y.data, x.data, s, cv.w, cv.b)
	return y
}

func (p *pass) relu(x fmap) fmap { p.b.Activate(x.data, kernels.ReLU); return x }

func (p *pass) avgPool(x fmap, k int) fmap {
	y := fmap{make([]float32, x.n*(x.h/k)*(x.w/k)*x.c), x.n, x.h / k, x.w / k, x.c}
	p.b.AvgPool2D(y.data, x.data, x.n, x.h, x.w, x.c, k)
	return y
}

func (p *pass) emitMap(name string, x fmap) { p.emit(name, x.data, x.h, x.w, x.c) }

// encode maps images [n,3,R,R] (normalised, NCHW) to embeddings [n,E].
func (r *modifiedResNet) encode(p *pass, images []float32, n int) []float32 {
	x := fmap{toChannelsLast(images, n, 3, r.res, r.res), n, r.res, r.res, 3}
	for i, cv := range r.stem {
		x = p.relu(p.conv(x, cv))
		p.emitMap(fmt.Sprintf("image0_stem_relu%d", i+1), x)
	}
	x = p.avgPool(x, 2)
	p.emitMap("image0_stem", x)
	for i, layer := range r.layers {
		for _, blk := range layer {
			x = blk.forward(p, x)
		}
		p.emitMap(fmt.Sprintf("image0_layer%d", i+1), x)
	}
	return r.pool.forward(p, x)
}

// forward is relu(conv3(pool(relu(conv2(relu(conv1(x)))))) + downsample(x)).
func (b *bottleneck) forward(p *pass, x fmap) fmap {
	out := p.relu(p.conv(x, b.conv1))
	out = p.relu(p.conv(out, b.conv2))
	if b.stride > 1 {
		out = p.avgPool(out, b.stride)
	}
	out = p.conv(out, b.conv3)
	identity := x
	if b.downsample != nil {
		if b.stride > 1 {
			identity = p.avgPool(identity, b.stride)
		}
		identity = p.conv(identity, *b.downsample)
	}
	p.b.Add(out.data, identity.data)
	return p.relu(out)
}

// forward pools x [n,h,w,C] into embeddings [n,E].
func (a *attentionPool) forward(p *pass, x fmap) []float32 {
	n, hw, C := x.n, x.h*x.w, x.c
	T := hw + 1
	// tokens = [mean over h·w; positions row-major] + positional_embedding   [n, T, C]
	tokens := make([]float32, n*T*C)
	for i := 0; i < n; i++ {
		seq, src := tokens[i*T*C:(i+1)*T*C], x.data[i*hw*C:(i+1)*hw*C]
		copy(seq[C:], src)
		for j := 0; j < hw; j++ {
			for c := 0; c < C; c++ {
				seq[c] += src[j*C+c]
			}
		}
		for c := 0; c < C; c++ {
			seq[c] /= float32(hw)
		}
		p.b.Add(seq, a.positional)
	}
	p.emit("image0_attnpool_tokens", tokens, T, C)

	query := make([]float32, n*C) // the mean token of each image
	for i := 0; i < n; i++ {
		copy(query[i*C:(i+1)*C], tokens[i*T*C:])
	}
	q := make([]float32, n*C)
	p.linear(q, query, n, a.q)
	k := make([]float32, n*T*C)
	p.linear(k, tokens, n*T, a.k)
	v := make([]float32, n*T*C)
	p.linear(v, tokens, n*T, a.v)
	attn := make([]float32, n*C)
	p.b.Attention(attn, q, k, v, kernels.AttentionShape{
		Batch: n, SeqQ: 1, SeqK: T, Heads: a.heads, HeadDim: C / a.heads, LDQ: C, LDKV: C,
	})
	out := make([]float32, n*a.c.w.Rows)
	p.linear(out, attn, n, a.c)
	p.emit("image0_final", out, a.c.w.Rows)
	return out
}
