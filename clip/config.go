// Package clip is the CLIP model (Radford et al. 2021): the image towers
// (Vision Transformer and ModifiedResNet), the text transformer, their
// projections into the joint embedding space, and the zero-shot head. It is
// independent of checkpoint formats (see Load) and of the compute backend
// (see package kernels).
package clip

import (
	"fmt"
	"math"
	"sort"

	"github.com/clipwasm/clipwasm/kernels"
)

// Config is the shape of a CLIP model. Zero values of optional fields take
// OpenAI's defaults (see Normalize).
type Config struct {
	EmbedDim int `json:"embed_dim"`

	// Image tower. A ViT has one entry in VisionLayers (its depth) and a
	// non-zero VisionPatchSize; a ModifiedResNet has four stage depths.
	ImageResolution int   `json:"image_resolution"`
	VisionLayers    []int `json:"vision_layers"`
	VisionWidth     int   `json:"vision_width"`
	VisionPatchSize int   `json:"vision_patch_size,omitempty"`
	VisionHeads     int   `json:"vision_heads"`
	VisionMLPWidth  int   `json:"vision_mlp_width,omitempty"` // ViT MLP hidden size; 4·width if 0

	// Text tower.
	ContextLength int `json:"context_length"`
	VocabSize     int `json:"vocab_size"`
	TextWidth     int `json:"transformer_width"`
	TextHeads     int `json:"transformer_heads"`
	TextLayers    int `json:"transformer_layers"`
	TextMLPWidth  int `json:"transformer_mlp_width,omitempty"` // 4·width if 0

	// Activation of the transformer MLPs: QuickGELU for OpenAI weights,
	// GELU for OpenCLIP's LAION models.
	Activation   kernels.Activation `json:"activation"`
	LayerNormEps float32            `json:"layer_norm_eps"`

	// EOSTokenID selects the pooled text position: 0 pools at the argmax of
	// the ids (OpenAI's encode_text); otherwise the first position holding
	// this id (Hugging Face's CLIPTextTransformer). For CLIP's vocabulary,
	// where <|endoftext|> is the largest id, both pick the same row.
	EOSTokenID int `json:"eos_token_id,omitempty"`

	// Preprocessing: normalisation of the image tensor.
	Mean [3]float32 `json:"mean"`
	Std  [3]float32 `json:"std"`
}

// OpenAI's image normalisation, used by every model of the CLIP paper and by
// OpenCLIP's LAION models.
var (
	OpenAIMean = [3]float32{0.48145466, 0.4578275, 0.40821073}
	OpenAIStd  = [3]float32{0.26862954, 0.26130258, 0.27577711}
)

// IsViT reports whether the image tower is a Vision Transformer.
func (c *Config) IsViT() bool { return c.VisionPatchSize > 0 }

// Normalize fills defaults the way OpenAI's build_model derives them: head
// counts from widths (head_dim 64; ResNet attention pool width·32/64), MLP
// widths 4× the model width, LayerNorm eps 1e-5, CLIP's mean and std.
func (c *Config) Normalize() {
	if c.VisionHeads == 0 {
		if c.IsViT() {
			c.VisionHeads = c.VisionWidth / 64
		} else {
			c.VisionHeads = c.VisionWidth * 32 / 64
		}
	}
	if c.TextHeads == 0 {
		c.TextHeads = c.TextWidth / 64
	}
	if c.IsViT() && c.VisionMLPWidth == 0 {
		c.VisionMLPWidth = 4 * c.VisionWidth
	}
	if c.TextMLPWidth == 0 {
		c.TextMLPWidth = 4 * c.TextWidth
	}
	if c.LayerNormEps == 0 {
		c.LayerNormEps = 1e-5
	}
	if c.ContextLength == 0 {
		c.ContextLength = 77
	}
	if c.VocabSize == 0 {
		c.VocabSize = 49408
	}
	if c.Mean == ([3]float32{}) {
		c.Mean = OpenAIMean
	}
	if c.Std == ([3]float32{}) {
		c.Std = OpenAIStd
	}
}

// Validate checks that the dimensions are consistent, so that a bad config
// fails at load time with a message rather than inside a kernel.
func (c *Config) Validate() error {
	pos := func(name string, v int) error {
		if v <= 0 {
			return fmt.Errorf("clip: config %s = %d, must be positive", name, v)
		}
		return nil
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"embed_dim", c.EmbedDim}, {"image_resolution", c.ImageResolution},
		{"vision_width", c.VisionWidth}, {"vision_heads", c.VisionHeads},
		{"context_length", c.ContextLength}, {"vocab_size", c.VocabSize},
		{"transformer_width", c.TextWidth}, {"transformer_heads", c.TextHeads},
		{"transformer_layers", c.TextLayers}, {"transformer_mlp_width", c.TextMLPWidth},
	} {
		if err := pos(f.name, f.v); err != nil {
			return err
		}
	}
	if c.TextWidth%c.TextHeads != 0 {
		return fmt.Errorf("clip: text width %d not divisible by %d heads", c.TextWidth, c.TextHeads)
	}
	if c.IsViT() {
		if len(c.VisionLayers) != 1 || c.VisionLayers[0] <= 0 {
			return fmt.Errorf("clip: a ViT needs one positive layer count, got %v", c.VisionLayers)
		}
		if c.ImageResolution%c.VisionPatchSize != 0 {
			return fmt.Errorf("clip: image resolution %d not divisible by patch size %d", c.ImageResolution, c.VisionPatchSize)
		}
		if c.VisionWidth%c.VisionHeads != 0 {
			return fmt.Errorf("clip: vision width %d not divisible by %d heads", c.VisionWidth, c.VisionHeads)
		}
		return pos("vision_mlp_width", c.VisionMLPWidth)
	}
	if len(c.VisionLayers) != 4 {
		return fmt.Errorf("clip: a ModifiedResNet needs 4 stage depths, got %v", c.VisionLayers)
	}
	for _, n := range c.VisionLayers {
		if n <= 0 {
			return fmt.Errorf("clip: ResNet stage depths must be positive, got %v", c.VisionLayers)
		}
	}
	if c.ImageResolution%32 != 0 {
		return fmt.Errorf("clip: ResNet image resolution %d not divisible by 32", c.ImageResolution)
	}
	if (c.VisionWidth*32)%c.VisionHeads != 0 {
		return fmt.Errorf("clip: attention-pool width %d not divisible by %d heads", c.VisionWidth*32, c.VisionHeads)
	}
	return nil
}

// String summarises the architecture in one line.
func (c *Config) String() string {
	tower := fmt.Sprintf("ModifiedResNet%v width %d", c.VisionLayers, c.VisionWidth)
	if c.IsViT() {
		tower = fmt.Sprintf("ViT patch %d width %d layers %d heads %d", c.VisionPatchSize, c.VisionWidth, c.VisionLayers[0], c.VisionHeads)
	}
	return fmt.Sprintf("%s @%dpx; text width %d layers %d heads %d; embed %d; %s",
		tower, c.ImageResolution, c.TextWidth, c.TextLayers, c.TextHeads, c.EmbedDim, c.Activation)
}

func vit(embed, res, layers, width, patch, textWidth, textLayers int, act kernels.Activation) Config {
	return Config{EmbedDim: embed, ImageResolution: res, VisionLayers: []int{layers}, VisionWidth: width,
		VisionPatchSize: patch, TextWidth: textWidth, TextLayers: textLayers, Activation: act}
}

func resnet(embed, res int, layers [4]int, width, textWidth int) Config {
	return Config{EmbedDim: embed, ImageResolution: res, VisionLayers: layers[:], VisionWidth: width,
		TextWidth: textWidth, TextLayers: 12, Activation: kernels.QuickGELU}
}

// Named configurations: the nine models of the CLIP paper (OpenAI's
// released weights) and OpenCLIP's ViTs trained on LAION, which use exact
// GELU and, for the largest, head widths other than 64 and MLP ratios other
// than 4.
var named = map[string]Config{
	"RN50":           resnet(1024, 224, [4]int{3, 4, 6, 3}, 64, 512),
	"RN101":          resnet(512, 224, [4]int{3, 4, 23, 3}, 64, 512),
	"RN50x4":         resnet(640, 288, [4]int{4, 6, 10, 6}, 80, 640),
	"RN50x16":        resnet(768, 384, [4]int{6, 8, 18, 8}, 96, 768),
	"RN50x64":        resnet(1024, 448, [4]int{3, 15, 36, 10}, 128, 1024),
	"ViT-B/32":       vit(512, 224, 12, 768, 32, 512, 12, kernels.QuickGELU),
	"ViT-B/16":       vit(512, 224, 12, 768, 16, 512, 12, kernels.QuickGELU),
	"ViT-L/14":       vit(768, 224, 24, 1024, 14, 768, 12, kernels.QuickGELU),
	"ViT-L/14@336px": vit(768, 336, 24, 1024, 14, 768, 12, kernels.QuickGELU),

	"OpenCLIP ViT-B-32":    vit(512, 224, 12, 768, 32, 512, 12, kernels.GELU),
	"OpenCLIP ViT-B-16":    vit(512, 224, 12, 768, 16, 512, 12, kernels.GELU),
	"OpenCLIP ViT-L-14":    vit(768, 224, 24, 1024, 14, 768, 12, kernels.GELU),
	"OpenCLIP ViT-H-14":    withHeads(vit(1024, 224, 32, 1280, 14, 1024, 24, kernels.GELU), 16, 5120, 16),
	"OpenCLIP ViT-g-14":    withHeads(vit(1024, 224, 40, 1408, 14, 1024, 24, kernels.GELU), 16, 6144, 16),
	"OpenCLIP ViT-bigG-14": withHeads(vit(1280, 224, 48, 1664, 14, 1280, 32, kernels.GELU), 16, 8192, 20),
}

func withHeads(c Config, visionHeads, visionMLP, textHeads int) Config {
	c.VisionHeads, c.VisionMLPWidth, c.TextHeads = visionHeads, visionMLP, textHeads
	return c
}

// Named returns the configuration of a well-known model: "RN50", "RN101",
// "RN50x4", "RN50x16", "RN50x64", "ViT-B/32", "ViT-B/16", "ViT-L/14",
// "ViT-L/14@336px" and "OpenCLIP ViT-B-32" … "OpenCLIP ViT-bigG-14".
func Named(name string) (Config, error) {
	c, ok := named[name]
	if !ok {
		return Config{}, fmt.Errorf("clip: unknown model %q (known: %v)", name, NamedModels())
	}
	c.VisionLayers = append([]int(nil), c.VisionLayers...)
	c.Normalize()
	return c, nil
}

// NamedModels lists the names Named accepts.
func NamedModels() []string {
	names := make([]string, 0, len(named))
	for n := range named {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// gridSide returns round(sqrt(n)), the grid side of n positional rows.
func gridSide(n int) int { return int(math.Round(math.Sqrt(float64(n)))) }
