// Package randweights draws deterministic random CLIP weights: a Go port of
// the peers kit's generator (../shared/peers/gen_weights.mjs, lib/rng.mjs).
// Every tensor of OpenAI's CLIP state_dict is drawn from its own splitmix64
// stream, seeded by the seed and the tensor's name alone, with the kit's
// scales (activations stay O(1)), so tests and benchmarks can build
// full-size models of any architecture without a checkpoint, and for the
// kit's architectures (ViT-B/32, RN50) the kit's PyTorch and ONNX Runtime
// outputs are references for them.
//
// The kit runs on V8, whose ln, sin, cos, exp and pow are fdlibm ports; Go's
// are not, and about a fifth of the float64 normals differ from V8's by an
// ulp. The weights are stored as float32, and the rounding hides those
// differences: for seed 0 all 151,277,313 values of ViT-B/32 and all
// 102,060,385 of RN50 equal the kit's weights.safetensors bit for bit (the
// package test checks this whenever the kit's work folder exists).
package randweights

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/convert"
	"github.com/clipwasm/clipwasm/kernels"
)

// Spec is one tensor of the state dict: its OpenAI name and shape.
type Spec struct {
	Name  string
	Shape []int
}

// Len returns the number of elements of the tensor.
func (s Spec) Len() int {
	n := 1
	for _, d := range s.Shape {
		n *= d
	}
	return n
}

// specs accumulates tensors in state_dict order.
type specs []Spec

func (l *specs) add(name string, shape ...int) { *l = append(*l, Spec{name, shape}) }

func (l *specs) layerNorm(prefix string, width int) {
	l.add(prefix+".weight", width)
	l.add(prefix+".bias", width)
}

// transformer adds the residual attention blocks of an OpenAI Transformer.
func (l *specs) transformer(prefix string, width, mlp, layers int) {
	for i := 0; i < layers; i++ {
		p := fmt.Sprintf("%s.resblocks.%d.", prefix, i)
		l.add(p+"attn.in_proj_weight", 3*width, width)
		l.add(p+"attn.in_proj_bias", 3*width)
		l.add(p+"attn.out_proj.weight", width, width)
		l.add(p+"attn.out_proj.bias", width)
		l.layerNorm(p+"ln_1", width)
		l.add(p+"mlp.c_fc.weight", mlp, width)
		l.add(p+"mlp.c_fc.bias", mlp)
		l.add(p+"mlp.c_proj.weight", width, mlp)
		l.add(p+"mlp.c_proj.bias", width)
		l.layerNorm(p+"ln_2", width)
	}
}

// convBN adds a bias-free convolution and the BatchNorm after it
// (num_batches_tracked left out).
func (l *specs) convBN(conv, bn string, in, out, k int) {
	l.add(conv+".weight", out, in, k, k)
	for _, s := range []string{"weight", "bias", "running_mean", "running_var"} {
		l.add(bn+"."+s, out)
	}
}

// vit adds OpenAI's VisionTransformer.
func (l *specs) vit(c *clip.Config) {
	w, grid := c.VisionWidth, c.ImageResolution/c.VisionPatchSize
	l.add("visual.class_embedding", w)
	l.add("visual.positional_embedding", grid*grid+1, w)
	l.add("visual.proj", w, c.EmbedDim)
	l.add("visual.conv1.weight", w, 3, c.VisionPatchSize, c.VisionPatchSize)
	l.layerNorm("visual.ln_pre", w)
	l.transformer("visual.transformer", w, c.VisionMLPWidth, c.VisionLayers[0])
	l.layerNorm("visual.ln_post", w)
}

// resnet adds OpenAI's ModifiedResNet: a three-convolution stem, four
// stages of bottlenecks (the first of each with a downsampling branch) and
// the attention pool.
func (l *specs) resnet(c *clip.Config) {
	w := c.VisionWidth
	l.convBN("visual.conv1", "visual.bn1", 3, w/2, 3)
	l.convBN("visual.conv2", "visual.bn2", w/2, w/2, 3)
	l.convBN("visual.conv3", "visual.bn3", w/2, w, 3)
	in := w
	for s, blocks := range c.VisionLayers {
		planes := w << s
		for b := 0; b < blocks; b++ {
			p := fmt.Sprintf("visual.layer%d.%d.", s+1, b)
			l.convBN(p+"conv1", p+"bn1", in, planes, 1)
			l.convBN(p+"conv2", p+"bn2", planes, planes, 3)
			l.convBN(p+"conv3", p+"bn3", planes, 4*planes, 1)
			if b == 0 { // stride 2 (stages 2–4) or in ≠ 4·planes (stage 1)
				l.convBN(p+"downsample.0", p+"downsample.1", in, 4*planes, 1)
			}
			in = 4 * planes
		}
	}
	e, grid := 32*w, c.ImageResolution/32
	l.add("visual.attnpool.positional_embedding", grid*grid+1, e)
	for _, p := range []string{"k", "q", "v"} {
		l.add("visual.attnpool."+p+"_proj.weight", e, e)
		l.add("visual.attnpool."+p+"_proj.bias", e)
	}
	l.add("visual.attnpool.c_proj.weight", c.EmbedDim, e)
	l.add("visual.attnpool.c_proj.bias", c.EmbedDim)
}

// Specs lists every tensor of OpenAI's clip.model.CLIP state_dict for
// config c — names, shapes and order as state_dict() returns them, without
// BatchNorm's num_batches_tracked — as the kit's kit.json lists them.
// Defaults of c are filled as clip.Config.Normalize does.
func Specs(c clip.Config) ([]Spec, error) {
	c.VisionLayers = append([]int(nil), c.VisionLayers...)
	c.Normalize()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("randweights: %w", err)
	}
	var l specs
	l.add("positional_embedding", c.ContextLength, c.TextWidth)
	l.add("text_projection", c.TextWidth, c.EmbedDim)
	l.add("logit_scale")
	if c.IsViT() {
		l.vit(&c)
	} else {
		l.resnet(&c)
	}
	l.transformer("transformer", c.TextWidth, c.TextMLPWidth, c.TextLayers)
	l.add("token_embedding.weight", c.VocabSize, c.TextWidth)
	l.layerNorm("ln_final", c.TextWidth)
	return l, nil
}

// chunk is the number of values one job fills; even, so that every job
// starts on a Box–Muller pair.
const chunk = 1 << 16

// job fills dst[lo:hi] of one tensor.
type job struct {
	name   string
	rule   rule
	dst    []float32
	lo, hi int
}

func (j job) run(seed uint64, z []float64) {
	s := NewStream(seed, j.name)
	s.Skip(uint64(j.lo)) // values 2i and 2i+1 come from outputs 2i and 2i+1
	z = z[:j.hi-j.lo]
	s.Normals(z)
	j.rule.apply(j.dst[j.lo:j.hi], z)
}

// Generate draws every tensor of Specs(c) for seed, on GOMAXPROCS
// goroutines; the values do not depend on how the work is split.
func Generate(c clip.Config, seed uint64) (map[string]clip.Tensor, error) {
	list, err := Specs(c)
	if err != nil {
		return nil, err
	}
	out := make(map[string]clip.Tensor, len(list))
	var jobs []job
	for _, s := range list {
		r, err := ruleFor(s.Name, s.Shape, c.IsViT(), c.VisionWidth)
		if err != nil {
			return nil, err
		}
		t := clip.Tensor{Shape: s.Shape, Data: make([]float32, s.Len())}
		out[s.Name] = t
		for lo := 0; lo < len(t.Data); lo += chunk {
			jobs = append(jobs, job{s.Name, r, t.Data, lo, min(lo+chunk, len(t.Data))})
		}
	}
	next := make(chan job)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			z := make([]float64, chunk)
			for j := range next {
				j.run(seed, z)
			}
		})
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	return out, nil
}

// Model builds config c's model from Generate(c, seed) on backend b, with
// c's MLP activation.
func Model(c clip.Config, seed uint64, b kernels.Backend) (*clip.Model, error) {
	tensors, err := Generate(c, seed)
	if err != nil {
		return nil, err
	}
	w, err := convert.FromTensors(tensors, c.Activation)
	if err != nil {
		return nil, fmt.Errorf("randweights: %w", err)
	}
	m, err := clip.Build(w.Config, w, b)
	if err != nil {
		return nil, fmt.Errorf("randweights: building the model: %w", err)
	}
	return m, nil
}
