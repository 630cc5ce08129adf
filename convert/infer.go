package convert

import (
	"fmt"
	"math"
	"strings"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/kernels"
)

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

// gridSide returns round(sqrt(n)), the grid side of n positional rows.
func gridSide(n int) int { return int(math.Round(math.Sqrt(float64(n)))) }

// InferConfig derives the architecture from OpenAI-named tensor shapes
// exactly as OpenAI's build_model does (heads from widths, head_dim 64).
func InferConfig(sd stateDict) (clip.Config, error) {
	var c clip.Config
	var err error
	dim := func(name string, rank, axis int) int {
		if err != nil {
			return 0
		}
		src, ok := sd[name]
		switch {
		case !ok:
			err = fmt.Errorf("not a CLIP checkpoint: missing tensor %q", name)
		case len(src.shape) != rank:
			err = fmt.Errorf("tensor %q has shape %v, want rank %d", name, src.shape, rank)
		default:
			return src.shape[axis]
		}
		return 0
	}
	if _, vit := sd["visual.proj"]; vit {
		c.VisionWidth = dim("visual.conv1.weight", 4, 0)
		c.VisionPatchSize = dim("visual.conv1.weight", 4, 3)
		c.VisionLayers = []int{countBlocks(sd, "visual.transformer.resblocks.")}
		c.ImageResolution = c.VisionPatchSize * gridSide(dim("visual.positional_embedding", 2, 0)-1)
		c.VisionMLPWidth = dim("visual.transformer.resblocks.0.mlp.c_fc.weight", 2, 0)
	} else {
		c.VisionLayers = make([]int, 4)
		for i := range c.VisionLayers {
			c.VisionLayers[i] = countBlocks(sd, fmt.Sprintf("visual.layer%d.", i+1))
		}
		c.VisionWidth = dim("visual.layer1.0.conv1.weight", 4, 0)
		c.ImageResolution = 32 * gridSide(dim("visual.attnpool.positional_embedding", 2, 0)-1)
	}
	c.EmbedDim = dim("text_projection", 2, 1)
	c.ContextLength = dim("positional_embedding", 2, 0)
	c.VocabSize = dim("token_embedding.weight", 2, 0)
	c.TextWidth = dim("ln_final.weight", 1, 0)
	c.TextLayers = countBlocks(sd, "transformer.resblocks.")
	c.TextMLPWidth = dim("transformer.resblocks.0.mlp.c_fc.weight", 2, 0)
	if err != nil {
		return clip.Config{}, err
	}
	c.Activation = kernels.QuickGELU
	c.Normalize()
	return c, c.Validate()
}
