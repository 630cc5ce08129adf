package convert

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"gorgonia.org/tensor"

	"github.com/clipwasm/clipwasm/clip"
)

// source is one tensor of a checkpoint in OpenAI's state_dict naming and
// layout, read on demand.
type source struct {
	shape []int
	load  func() ([]float32, error)
}

// stateDict maps OpenAI's state_dict keys to tensors.
type stateDict map[string]source

func dense(shape []int, d []float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(d))
}

func data(t tensor.Tensor, err error) ([]float32, error) {
	if err != nil {
		return nil, err
	}
	return t.Data().([]float32), nil
}

// transpose2D turns [r, c] into [c, r].
func transpose2D(d []float32, r, c int) ([]float32, error) {
	return data(tensor.Transpose(dense([]int{r, c}, d), 1, 0))
}

// channelsLast reorders a convolution weight [out, in, kh, kw] to
// [out, kh, kw, in], the column order of the channels-last Conv2D op.
func channelsLast(d []float32, shape []int) ([]float32, error) {
	return data(tensor.Transpose(dense(shape, d), 0, 2, 3, 1))
}

// stack concatenates tensors along their first axis.
func stack(parts ...source) func() ([]float32, error) {
	return func() ([]float32, error) {
		ts := make([]tensor.Tensor, len(parts))
		for i, p := range parts {
			d, err := p.load()
			if err != nil {
				return nil, err
			}
			ts[i] = dense(p.shape, d)
		}
		if len(ts) == 1 {
			return ts[0].Data().([]float32), nil
		}
		return data(tensor.Concat(0, ts[0], ts[1:]...))
	}
}

// bnEps is BatchNorm2d's default epsilon, which CLIP uses.
const bnEps = 1e-5

// bnScale returns s = γ/√(var+eps) per channel, computed in float64.
func bnScale(sd stateDict, bn string) ([]float64, error) {
	gamma, err := sd[bn+".weight"].load()
	if err != nil {
		return nil, err
	}
	variance, err := sd[bn+".running_var"].load()
	if err != nil {
		return nil, err
	}
	s := make([]float64, len(gamma))
	for i := range s {
		s[i] = float64(gamma[i]) / math.Sqrt(float64(variance[i])+bnEps)
	}
	return s, nil
}

// foldedConv is W·s laid out channels-last: the convolution with its
// BatchNorm's scale folded into each output channel, computed in float32
// as the product of convFactors' base and scale.
func foldedConv(sd stateDict, conv, bn string) func() ([]float32, error) {
	return func() ([]float32, error) {
		w, s, err := convFactors(sd, conv, bn)()
		if err != nil {
			return nil, err
		}
		out, rest := len(s), len(w)/len(s)
		scale, err := tensor.Repeat(dense([]int{out, 1}, s), 1, rest)
		if err != nil {
			return nil, err
		}
		return data(tensor.Mul(dense([]int{out, rest}, w), scale))
	}
}

// convFactors returns foldedConv's factors: the convolution's weight laid
// out channels-last, [out, kh·kw·in], and the BatchNorm's scale per output
// channel rounded to float32.
func convFactors(sd stateDict, conv, bn string) func() (base, scale []float32, err error) {
	return func() ([]float32, []float32, error) {
		src := sd[conv]
		w, err := src.load()
		if err != nil {
			return nil, nil, err
		}
		s, err := bnScale(sd, bn)
		if err != nil {
			return nil, nil, err
		}
		s32 := make([]float32, len(s))
		for i, v := range s {
			s32[i] = float32(v)
		}
		base, err := channelsLast(w, src.shape)
		return base, s32, err
	}
}

// foldedBias is β − s·μ, the bias a folded BatchNorm leaves behind.
func foldedBias(sd stateDict, bn string) func() ([]float32, error) {
	return func() ([]float32, error) {
		s, err := bnScale(sd, bn)
		if err != nil {
			return nil, err
		}
		beta, err := sd[bn+".bias"].load()
		if err != nil {
			return nil, err
		}
		mean, err := sd[bn+".running_mean"].load()
		if err != nil {
			return nil, err
		}
		b := make([]float32, len(s))
		for i := range b {
			b[i] = float32(float64(beta[i]) - s[i]*float64(mean[i]))
		}
		return b, nil
	}
}

// layout builds the engine-layout tensor list, checking every source
// tensor's presence and shape as it goes so that a bad checkpoint fails at
// open time with the tensor named.
type layout struct {
	sd  stateDict
	out []*Tensor
	err error
}

func (l *layout) need(name string, shape ...int) source {
	src, ok := l.sd[name]
	switch {
	case l.err != nil:
	case !ok:
		l.err = fmt.Errorf("missing tensor %q", name)
	case numel(src.shape) != numel(shape) || (len(src.shape) == len(shape) && !slices.Equal(src.shape, shape)):
		l.err = fmt.Errorf("tensor %q has shape %v, want %v", name, src.shape, shape)
	}
	return src
}

func (l *layout) add(name string, kind Kind, shape []int, compute func() ([]float32, error)) {
	if l.err == nil {
		l.out = append(l.out, &Tensor{Name: name, Shape: shape, Kind: kind, compute: compute})
	}
}

// copied passes a tensor through unchanged.
func (l *layout) copied(name string, kind Kind, shape ...int) {
	l.add(name, kind, shape, l.need(name, shape...).load)
}

// projection turns OpenAI's [in, out] matrix used as x·P into a Linear
// weight [out, in].
func (l *layout) projection(from, to string, in, out int) {
	src := l.need(from, in, out)
	l.add(to, Matrix, []int{out, in}, func() ([]float32, error) {
		d, err := src.load()
		if err != nil {
			return nil, err
		}
		return transpose2D(d, in, out)
	})
}

func (l *layout) linear(prefix string, out, in int) {
	l.copied(prefix+".weight", Matrix, out, in)
	l.copied(prefix+".bias", Vector, out)
}

func (l *layout) layerNorm(prefix string, w int) {
	l.copied(prefix+".weight", Vector, w)
	l.copied(prefix+".bias", Vector, w)
}

func (l *layout) transformer(prefix string, width, mlp, layers int) {
	for i := 0; i < layers; i++ {
		p := prefix + strconv.Itoa(i) + "."
		l.layerNorm(p+"ln_1", width)
		l.copied(p+"attn.in_proj_weight", Matrix, 3*width, width)
		l.copied(p+"attn.in_proj_bias", Vector, 3*width)
		l.linear(p+"attn.out_proj", width, width)
		l.layerNorm(p+"ln_2", width)
		l.linear(p+"mlp.c_fc", mlp, width)
		l.linear(p+"mlp.c_proj", width, mlp)
	}
}

// convBN folds BatchNorm bn into conv (a bias-free [out,in,k,k] weight).
func (l *layout) convBN(conv, bn, to string, in, out, k int) {
	l.need(conv, out, in, k, k)
	for _, p := range []string{".weight", ".bias", ".running_mean", ".running_var"} {
		l.need(bn+p, out)
	}
	l.add(to+".weight", Matrix, []int{out, k * k * in}, foldedConv(l.sd, conv, bn))
	if l.err == nil {
		l.out[len(l.out)-1].rowScaled = convFactors(l.sd, conv, bn)
	}
	l.add(to+".bias", Vector, []int{out}, foldedBias(l.sd, bn))
}

// engineLayout lists the engine-layout tensors of a model of shape cfg:
// text tower first, then the image tower (see clip.Weights for the names).
func engineLayout(sd stateDict, cfg clip.Config) (*Model, error) {
	cfg.Normalize()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &layout{sd: sd}
	tw := cfg.TextWidth
	l.add("logit_scale", Vector, []int{1}, l.need("logit_scale").load)
	l.copied("token_embedding.weight", Matrix, cfg.VocabSize, tw)
	l.copied("positional_embedding", Vector, cfg.ContextLength, tw)
	l.transformer("transformer.resblocks.", tw, cfg.TextMLPWidth, cfg.TextLayers)
	l.layerNorm("ln_final", tw)
	l.projection("text_projection", "text_projection.weight", tw, cfg.EmbedDim)
	if cfg.IsViT() {
		l.vit(&cfg)
	} else {
		l.resnet(&cfg)
	}
	if l.err != nil {
		return nil, l.err
	}
	m := &Model{Config: cfg, Tensors: l.out, byName: map[string]*Tensor{}}
	for _, t := range l.out {
		m.byName[t.Name] = t
	}
	return m, nil
}

func (l *layout) vit(c *clip.Config) {
	w, p := c.VisionWidth, c.VisionPatchSize
	g := c.ImageResolution / p
	conv := l.need("visual.conv1.weight", w, 3, p, p)
	l.add("visual.patch_embed.weight", Matrix, []int{w, p * p * 3}, func() ([]float32, error) {
		d, err := conv.load()
		if err != nil {
			return nil, err
		}
		return channelsLast(d, conv.shape)
	})
	l.copied("visual.class_embedding", Vector, w)
	l.copied("visual.positional_embedding", Vector, g*g+1, w)
	l.layerNorm("visual.ln_pre", w)
	l.transformer("visual.transformer.resblocks.", w, c.VisionMLPWidth, c.VisionLayers[0])
	l.layerNorm("visual.ln_post", w)
	l.projection("visual.proj", "visual.proj.weight", w, c.EmbedDim)
}

func (l *layout) resnet(c *clip.Config) {
	w := c.VisionWidth
	l.convBN("visual.conv1.weight", "visual.bn1", "visual.conv1", 3, w/2, 3)
	l.convBN("visual.conv2.weight", "visual.bn2", "visual.conv2", w/2, w/2, 3)
	l.convBN("visual.conv3.weight", "visual.bn3", "visual.conv3", w/2, w, 3)
	in := w
	for i, depth := range c.VisionLayers {
		planes := w << i
		for j := 0; j < depth; j++ {
			p := fmt.Sprintf("visual.layer%d.%d.", i+1, j)
			l.convBN(p+"conv1.weight", p+"bn1", p+"conv1", in, planes, 1)
			l.convBN(p+"conv2.weight", p+"bn2", p+"conv2", planes, planes, 3)
			l.convBN(p+"conv3.weight", p+"bn3", p+"conv3", planes, 4*planes, 1)
			if (i > 0 && j == 0) || in != 4*planes {
				l.convBN(p+"downsample.0.weight", p+"downsample.1", p+"downsample", in, 4*planes, 1)
			}
			in = 4 * planes
		}
	}
	e, g := 32*w, c.ImageResolution/32
	l.copied("visual.attnpool.positional_embedding", Vector, g*g+1, e)
	for _, proj := range []string{"q_proj", "k_proj", "v_proj"} {
		l.linear("visual.attnpool."+proj, e, e)
	}
	l.linear("visual.attnpool.c_proj", c.EmbedDim, e)
}
