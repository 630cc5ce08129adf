package clip

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/clipwasm/clipwasm/checkpoint"
	"github.com/clipwasm/clipwasm/kernels"
)

// entry is one tensor of a state dict in OpenAI's naming, read on demand.
type entry struct {
	shape []int
	load  func() ([]float32, error)
}

// stateDict maps OpenAI's state_dict keys to tensors.
type stateDict map[string]entry

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Load opens a checkpoint — an OpenAI .pt (TorchScript or state dict), a
// Hugging Face folder or an OpenCLIP folder or file — and builds the model
// on backend b.
func Load(path string, b kernels.Backend) (*Model, error) {
	ck, err := checkpoint.Open(path)
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	defer ck.Close()
	m, err := FromCheckpoint(ck, b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// FromCheckpoint builds a model from an opened checkpoint. The architecture
// comes from the checkpoint's config when it has one (Hugging Face
// config.json, open_clip_config.json) and otherwise from the tensor shapes,
// the way OpenAI's build_model infers it.
func FromCheckpoint(ck *checkpoint.Checkpoint, b kernels.Backend) (*Model, error) {
	var (
		sd  stateDict
		cfg Config
		err error
	)
	if ck.Config != nil {
		sd, cfg, err = fromHuggingFace(ck)
	} else {
		sd = stateDict{}
		for name, t := range ck.Tensors {
			sd[name] = entry{t.Shape, t.Float32}
		}
		cfg, err = InferConfig(sd)
		if err == nil && ck.OpenCLIPConfig != nil {
			err = applyOpenCLIPConfig(&cfg, ck.OpenCLIPConfig)
		}
	}
	if err != nil {
		return nil, err
	}
	return build(sd, cfg, b)
}

// countBlocks returns how many distinct indices follow prefix in the keys,
// e.g. the number of "transformer.resblocks.N." blocks.
func countBlocks(sd stateDict, prefix string) int {
	seen := map[string]bool{}
	for k := range sd {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			seen[strings.SplitN(rest, ".", 2)[0]] = true
		}
	}
	return len(seen)
}

// InferConfig derives the architecture from tensor shapes exactly as
// OpenAI's build_model does (heads from widths, head_dim 64).
func InferConfig(sd stateDict) (Config, error) {
	shape := func(name string, rank int) ([]int, error) {
		e, ok := sd[name]
		if !ok {
			return nil, fmt.Errorf("clip: not a CLIP checkpoint: missing tensor %q", name)
		}
		if len(e.shape) != rank {
			return nil, fmt.Errorf("clip: tensor %q has shape %v, want rank %d", name, e.shape, rank)
		}
		return e.shape, nil
	}
	var c Config
	var err error
	get := func(name string, rank, dim int) int {
		if err != nil {
			return 0
		}
		var s []int
		s, err = shape(name, rank)
		if err != nil {
			return 0
		}
		return s[dim]
	}
	if _, vit := sd["visual.proj"]; vit {
		c.VisionWidth = get("visual.conv1.weight", 4, 0)
		c.VisionPatchSize = get("visual.conv1.weight", 4, 3)
		c.VisionLayers = []int{countBlocks(sd, "visual.transformer.resblocks.")}
		c.ImageResolution = c.VisionPatchSize * gridSide(get("visual.positional_embedding", 2, 0)-1)
		c.VisionMLPWidth = get("visual.transformer.resblocks.0.mlp.c_fc.weight", 2, 0)
	} else {
		c.VisionLayers = make([]int, 4)
		for i := range c.VisionLayers {
			c.VisionLayers[i] = countBlocks(sd, fmt.Sprintf("visual.layer%d.", i+1))
		}
		c.VisionWidth = get("visual.layer1.0.conv1.weight", 4, 0)
		c.ImageResolution = 32 * gridSide(get("visual.attnpool.positional_embedding", 2, 0)-1)
	}
	c.EmbedDim = get("text_projection", 2, 1)
	c.ContextLength = get("positional_embedding", 2, 0)
	c.VocabSize = get("token_embedding.weight", 2, 0)
	c.TextWidth = get("ln_final.weight", 1, 0)
	c.TextLayers = countBlocks(sd, "transformer.resblocks.")
	c.TextMLPWidth = get("transformer.resblocks.0.mlp.c_fc.weight", 2, 0)
	if err != nil {
		return Config{}, err
	}
	c.Activation = kernels.QuickGELU
	c.Normalize()
	return c, c.Validate()
}

// loader reads tensors by name, checking shapes, and keeps the first error
// so that model assembly reads as a straight list of layers.
type loader struct {
	sd  stateDict
	err error
}

func (l *loader) tensor(name string, shape ...int) []float32 {
	if l.err != nil {
		return nil
	}
	e, ok := l.sd[name]
	if !ok {
		l.err = fmt.Errorf("clip: missing tensor %q", name)
		return nil
	}
	if numel(e.shape) != numel(shape) || (len(e.shape) == len(shape) && !slices.Equal(e.shape, shape)) {
		l.err = fmt.Errorf("clip: tensor %q has shape %v, want %v", name, e.shape, shape)
		return nil
	}
	data, err := e.load()
	if err != nil {
		l.err = fmt.Errorf("clip: reading %q: %w", name, err)
		return nil
	}
	if len(data) != numel(shape) {
		l.err = fmt.Errorf("clip: tensor %q has %d values, want %d", name, len(data), numel(shape))
		return nil
	}
	return data
}

func (l *loader) matrix(name string, rows, cols int) *kernels.Matrix {
	d := l.tensor(name, rows, cols)
	if d == nil {
		return nil
	}
	return kernels.NewMatrix(rows, cols, d)
}

// projection reads a [in, out] matrix used as x·P (visual.proj,
// text_projection) and stores it transposed, as a Linear weight [out, in].
func (l *loader) projection(name string, in, out int) *kernels.Matrix {
	d := l.tensor(name, in, out)
	if d == nil {
		return nil
	}
	t := make([]float32, len(d))
	for i := 0; i < in; i++ {
		for j := 0; j < out; j++ {
			t[j*in+i] = d[i*out+j]
		}
	}
	return kernels.NewMatrix(out, in, t)
}

func (l *loader) linear(prefix string, out, in int) linear {
	return linear{w: l.matrix(prefix+".weight", out, in), b: l.tensor(prefix+".bias", out)}
}

func (l *loader) layerNorm(prefix string, w int) layerNorm {
	return layerNorm{g: l.tensor(prefix+".weight", w), b: l.tensor(prefix+".bias", w)}
}

func (l *loader) transformer(prefix string, width, heads, mlp, layers int) transformer {
	t := transformer{width: width, heads: heads, mlpWidth: mlp, blocks: make([]block, layers)}
	for i := range t.blocks {
		p := prefix + strconv.Itoa(i) + "."
		t.blocks[i] = block{
			ln1:     l.layerNorm(p+"ln_1", width),
			inProj:  linear{w: l.matrix(p+"attn.in_proj_weight", 3*width, width), b: l.tensor(p+"attn.in_proj_bias", 3*width)},
			outProj: l.linear(p+"attn.out_proj", width, width),
			ln2:     l.layerNorm(p+"ln_2", width),
			fc:      l.linear(p+"mlp.c_fc", mlp, width),
			proj:    l.linear(p+"mlp.c_proj", width, mlp),
		}
	}
	return t
}

// bnEps is BatchNorm2d's default epsilon, which CLIP uses.
const bnEps = 1e-5

// convBN reads a bias-free convolution [out,in,k,k] and the BatchNorm that
// follows it, and folds the BatchNorm in: with s = γ/√(var+eps), the weight
// becomes W·s and the bias β − s·μ (computed in float64). The weight is laid
// out [out, (kh, kw, c)] for the channels-last Conv2D op.
func (l *loader) convBN(convName, bn string, in, out, k, stride int) conv {
	w := l.tensor(convName, out, in, k, k)
	gamma, beta := l.tensor(bn+".weight", out), l.tensor(bn+".bias", out)
	mean, variance := l.tensor(bn+".running_mean", out), l.tensor(bn+".running_var", out)
	if l.err != nil {
		return conv{}
	}
	folded := make([]float32, len(w))
	bias := make([]float32, out)
	for o := 0; o < out; o++ {
		s := float64(gamma[o]) / math.Sqrt(float64(variance[o])+bnEps)
		bias[o] = float32(float64(beta[o]) - s*float64(mean[o]))
		for c := 0; c < in; c++ {
			for i := 0; i < k*k; i++ {
				folded[o*in*k*k+i*in+c] = float32(float64(w[(o*in+c)*k*k+i]) * s)
			}
		}
	}
	return conv{w: kernels.NewMatrix(out, k*k*in, folded), b: bias, in: in, out: out, k: k, stride: stride}
}

// build assembles a model from a state dict in OpenAI's naming and a config.
func build(sd stateDict, cfg Config, b kernels.Backend) (*Model, error) {
	cfg.Normalize()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &loader{sd: sd}
	m := &Model{Config: cfg, backend: b}
	if ls := l.tensor("logit_scale"); ls != nil {
		m.LogitScale = ls[0]
	}
	if cfg.IsViT() {
		m.image = l.vit(&cfg)
	} else {
		m.image = l.resnet(&cfg)
	}
	w := cfg.TextWidth
	m.text = &textTransformer{
		vocab: cfg.VocabSize, context: cfg.ContextLength, width: w, eosTokenID: cfg.EOSTokenID,
		tokenEmbedding: l.tensor("token_embedding.weight", cfg.VocabSize, w),
		positional:     l.tensor("positional_embedding", cfg.ContextLength, w),
		transformer:    l.transformer("transformer.resblocks.", w, cfg.TextHeads, cfg.TextMLPWidth, cfg.TextLayers),
		lnFinal:        l.layerNorm("ln_final", w),
		proj:           l.projection("text_projection", w, cfg.EmbedDim),
	}
	if l.err != nil {
		return nil, l.err
	}
	return m, nil
}

func (l *loader) vit(c *Config) *visionTransformer {
	w, p := c.VisionWidth, c.VisionPatchSize
	g := c.ImageResolution / p
	v := &visionTransformer{
		res: c.ImageResolution, patch: p, width: w,
		classEmbedding: l.tensor("visual.class_embedding", w),
		positional:     l.tensor("visual.positional_embedding", g*g+1, w),
		lnPre:          l.layerNorm("visual.ln_pre", w),
		transformer:    l.transformer("visual.transformer.resblocks.", w, c.VisionHeads, c.VisionMLPWidth, c.VisionLayers[0]),
		lnPost:         l.layerNorm("visual.ln_post", w),
		proj:           l.projection("visual.proj", w, c.EmbedDim),
	}
	// The patch embedding is a conv [W,3,P,P]; lay it out [W, (kh, kw, c)].
	if k := l.tensor("visual.conv1.weight", w, 3, p, p); k != nil {
		m := make([]float32, len(k))
		for o := 0; o < w; o++ {
			for ch := 0; ch < 3; ch++ {
				for i := 0; i < p*p; i++ {
					m[o*3*p*p+i*3+ch] = k[(o*3+ch)*p*p+i]
				}
			}
		}
		v.conv1 = kernels.NewMatrix(w, 3*p*p, m)
	}
	return v
}

func (l *loader) resnet(c *Config) *modifiedResNet {
	w := c.VisionWidth
	r := &modifiedResNet{res: c.ImageResolution}
	r.stem = [3]conv{
		l.convBN("visual.conv1.weight", "visual.bn1", 3, w/2, 3, 2),
		l.convBN("visual.conv2.weight", "visual.bn2", w/2, w/2, 3, 1),
		l.convBN("visual.conv3.weight", "visual.bn3", w/2, w, 3, 1),
	}
	in := w
	for i, depth := range c.VisionLayers {
		planes, stride := w<<i, 1
		if i > 0 {
			stride = 2
		}
		for j := 0; j < depth; j++ {
			p := fmt.Sprintf("visual.layer%d.%d.", i+1, j)
			blk := bottleneck{
				conv1:  l.convBN(p+"conv1.weight", p+"bn1", in, planes, 1, 1),
				conv2:  l.convBN(p+"conv2.weight", p+"bn2", planes, planes, 3, 1),
				conv3:  l.convBN(p+"conv3.weight", p+"bn3", planes, 4*planes, 1, 1),
				stride: stride,
			}
			if stride > 1 || in != 4*planes {
				ds := l.convBN(p+"downsample.0.weight", p+"downsample.1", in, 4*planes, 1, 1)
				blk.downsample = &ds
			}
			r.layers[i] = append(r.layers[i], blk)
			in, stride = 4*planes, 1
		}
	}
	e, g := 32*w, c.ImageResolution/32
	r.pool = attentionPool{
		positional: l.tensor("visual.attnpool.positional_embedding", g*g+1, e),
		q:          l.linear("visual.attnpool.q_proj", e, e),
		k:          l.linear("visual.attnpool.k_proj", e, e),
		v:          l.linear("visual.attnpool.v_proj", e, e),
		c:          l.linear("visual.attnpool.c_proj", c.EmbedDim, e),
		heads:      c.VisionHeads,
	}
	return r
}

// Tensor is an in-memory float32 tensor, row-major.
type Tensor struct {
	Shape []int
	Data  []float32
}

// FromTensors builds a model from float32 tensors in OpenAI's state_dict
// naming, inferring the architecture as build_model does; activation
// overrides the MLP activation (OpenAI's weights use QuickGELU).
func FromTensors(tensors map[string]Tensor, activation kernels.Activation, b kernels.Backend) (*Model, error) {
	sd := stateDict{}
	for name, t := range tensors {
		sd[name] = entry{t.Shape, func() ([]float32, error) { return t.Data, nil }}
	}
	cfg, err := InferConfig(sd)
	if err != nil {
		return nil, err
	}
	cfg.Activation = activation
	return build(sd, cfg, b)
}
