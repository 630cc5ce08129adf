package clip

import (
	"fmt"
	"strconv"

	"github.com/clipwasm/clipwasm/kernels"
)

// Weights supplies a model's tensors in the engine layout. Package convert
// implements it over checkpoints (OpenAI, Hugging Face, OpenCLIP) and
// package shards over quantized bundles.
//
// The engine layout keeps OpenAI's state_dict names with these changes,
// made once at conversion time so that loading does no layout work:
//   - every GEMM weight is a Matrix [out, in] (y = x·Wᵀ): the attention
//     in_proj_weight [3W, W] (q, k, v rows), out_proj, mlp.c_fc, mlp.c_proj,
//     the attention pool's q/k/v/c_proj;
//   - the projections become Matrices: "visual.proj.weight" and
//     "text_projection.weight" [E, W] (OpenAI stores [W, E] used as x·P);
//   - the ViT patch embedding is "visual.patch_embed.weight" [W, P·P·3]
//     with columns in (kh, kw, c) order;
//   - every ResNet convolution has its BatchNorm folded in: "<conv>.weight"
//     [out, K·K·in] in (kh, kw, c) order and "<conv>.bias" [out]; the stem is
//     visual.conv{1,2,3}, a block's are visual.layerL.B.conv{1,2,3} and
//     visual.layerL.B.downsample;
//   - "token_embedding.weight" [vocab, W] is a Matrix (so it can be
//     quantized) read one row per token;
//   - "logit_scale" has shape [1].
type Weights interface {
	// Tensor returns a float32 tensor that must have exactly this shape.
	Tensor(name string, shape ...int) ([]float32, error)
	// Matrix returns a [rows, cols] weight matrix in any kernels.Scheme.
	Matrix(name string, rows, cols int) (*kernels.Matrix, error)
}

// RowBlocks is implemented by Weights that can hand out a matrix as
// consecutive blocks of rows without joining them (a bundle whose shards
// split it). The token table, read one row per token, is loaded through it
// where available: joining ViT-B/32's int8 table would copy 25 MB.
type RowBlocks interface {
	// MatrixBlocks returns the [rows, cols] matrix as blocks of whole
	// rows, in order, in any kernels.Scheme.
	MatrixBlocks(name string, rows, cols int) ([]*kernels.Matrix, error)
}

// loader reads weights by name and keeps the first error, so that model
// assembly reads as a straight list of layers.
type loader struct {
	w   Weights
	err error
}

func (l *loader) tensor(name string, shape ...int) []float32 {
	if l.err != nil {
		return nil
	}
	t, err := l.w.Tensor(name, shape...)
	if err != nil {
		l.err = fmt.Errorf("clip: %w", err)
	}
	return t
}

func (l *loader) matrix(name string, rows, cols int) *kernels.Matrix {
	if l.err != nil {
		return nil
	}
	m, err := l.w.Matrix(name, rows, cols)
	if err == nil && (m.Rows != rows || m.Cols != cols) {
		err = fmt.Errorf("matrix %q is [%d, %d], want [%d, %d]", name, m.Rows, m.Cols, rows, cols)
	}
	if err == nil {
		err = m.Validate()
	}
	if err != nil {
		l.err = fmt.Errorf("clip: %w", err)
	}
	return m
}

// rowTable reads a matrix only looked up by row: through RowBlocks where
// w has it, else as one Matrix.
func (l *loader) rowTable(name string, rows, cols int) rowTable {
	rb, ok := l.w.(RowBlocks)
	if !ok || l.err != nil {
		return rowTable{l.matrix(name, rows, cols)}
	}
	blocks, err := rb.MatrixBlocks(name, rows, cols)
	total := 0
	for _, b := range blocks {
		if err != nil {
			break
		}
		if b.Cols != cols {
			err = fmt.Errorf("matrix %q has a block of %d columns, want %d", name, b.Cols, cols)
		} else {
			err = b.Validate()
		}
		total += b.Rows
	}
	if err == nil && total != rows {
		err = fmt.Errorf("matrix %q has blocks of %d rows in all, want %d", name, total, rows)
	}
	if err != nil {
		l.err = fmt.Errorf("clip: %w", err)
	}
	return blocks
}

func (l *loader) linear(prefix string, out, in int) linear {
	return linear{w: l.matrix(prefix+".weight", out, in), b: l.tensor(prefix+".bias", out)}
}

func (l *loader) layerNorm(prefix string, w int) layerNorm {
	return layerNorm{g: l.tensor(prefix+".weight", w), b: l.tensor(prefix+".bias", w)}
}

func (l *loader) conv(prefix string, in, out, k, stride int) conv {
	return conv{w: l.matrix(prefix+".weight", out, k*k*in), b: l.tensor(prefix+".bias", out), in: in, out: out, k: k, stride: stride}
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

// Build assembles a model of shape cfg from weights in the engine layout,
// to run on backend b.
func Build(cfg Config, w Weights, b kernels.Backend) (*Model, error) {
	cfg.VisionLayers = append([]int(nil), cfg.VisionLayers...)
	cfg.Normalize()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &loader{w: w}
	m := &Model{Config: cfg, backend: b}
	if ls := l.tensor("logit_scale", 1); ls != nil {
		m.LogitScale = ls[0]
	}
	if cfg.IsViT() {
		m.image = l.vit(&cfg)
	} else {
		m.image = l.resnet(&cfg)
	}
	tw := cfg.TextWidth
	m.text = &textTransformer{
		vocab: cfg.VocabSize, context: cfg.ContextLength, width: tw, eosTokenID: cfg.EOSTokenID,
		tokenEmbedding: l.rowTable("token_embedding.weight", cfg.VocabSize, tw),
		positional:     l.tensor("positional_embedding", cfg.ContextLength, tw),
		transformer:    l.transformer("transformer.resblocks.", tw, cfg.TextHeads, cfg.TextMLPWidth, cfg.TextLayers),
		lnFinal:        l.layerNorm("ln_final", tw),
		proj:           l.matrix("text_projection.weight", cfg.EmbedDim, tw),
	}
	if l.err != nil {
		return nil, l.err
	}
	return m, nil
}

func (l *loader) vit(c *Config) *visionTransformer {
	w, p := c.VisionWidth, c.VisionPatchSize
	g := c.ImageResolution / p
	return &visionTransformer{
		res: c.ImageResolution, patch: p, width: w,
		conv1:          l.matrix("visual.patch_embed.weight", w, p*p*3),
		classEmbedding: l.tensor("visual.class_embedding", w),
		positional:     l.tensor("visual.positional_embedding", g*g+1, w),
		lnPre:          l.layerNorm("visual.ln_pre", w),
		transformer:    l.transformer("visual.transformer.resblocks.", w, c.VisionHeads, c.VisionMLPWidth, c.VisionLayers[0]),
		lnPost:         l.layerNorm("visual.ln_post", w),
		proj:           l.matrix("visual.proj.weight", c.EmbedDim, w),
	}
}

func (l *loader) resnet(c *Config) *modifiedResNet {
	w := c.VisionWidth
	r := &modifiedResNet{res: c.ImageResolution}
	r.stem = [3]conv{
		l.conv("visual.conv1", 3, w/2, 3, 2),
		l.conv("visual.conv2", w/2, w/2, 3, 1),
		l.conv("visual.conv3", w/2, w, 3, 1),
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
				conv1:  l.conv(p+"conv1", in, planes, 1, 1),
				conv2:  l.conv(p+"conv2", planes, planes, 3, 1),
				conv3:  l.conv(p+"conv3", planes, 4*planes, 1, 1),
				stride: stride,
			}
			if stride > 1 || in != 4*planes {
				ds := l.conv(p+"downsample", in, 4*planes, 1, 1)
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

// Tensor is an in-memory float32 tensor, row-major, as generators and
// converters hand them around.
type Tensor struct {
	Shape []int
	Data  []float32
}
