package randweights

import (
	"fmt"
	"math"
	"regexp"
	"strings"
)

// rule is how one tensor's values are drawn, from its name and shape
// (initRule in the kit's gen_weights.mjs).
type rule struct {
	kind      ruleKind
	mean, std float64 // normal: mean + std·z
	sigma     float64 // lognormal: exp(sigma·z)
	value     float64 // constant
}

type ruleKind int

const (
	normal ruleKind = iota
	lognormal
	constant
)

var (
	lnWeight     = regexp.MustCompile(`(^|\.)ln_\w+\.weight$`)
	lnBias       = regexp.MustCompile(`(^|\.)ln_\w+\.bias$`)
	linearWeight = regexp.MustCompile(`\.(attn\.in_proj_weight|attn\.out_proj\.weight|mlp\.c_fc\.weight|mlp\.c_proj\.weight)$`)
	linearBias   = regexp.MustCompile(`\.(attn\.in_proj_bias|attn\.out_proj\.bias|mlp\.c_fc\.bias|mlp\.c_proj\.bias)$`)
	poolWeight   = regexp.MustCompile(`^visual\.attnpool\.[qkvc]_proj\.weight$`)
	poolBias     = regexp.MustCompile(`^visual\.attnpool\.[qkvc]_proj\.bias$`)
	batchNorm    = regexp.MustCompile(`\.(bn\d|downsample\.1)\.(weight|bias|running_mean|running_var)$`)
	stageBlock   = regexp.MustCompile(`^visual\.layer\d`)
)

// invSqrt is the kit's x ** -0.5. Go's Pow and V8's differ by an ulp of
// float64 for some x, which has not changed a float32 weight (see the
// package documentation).
func invSqrt(x int) float64 { return math.Pow(float64(x), -0.5) }

// ruleFor returns the rule for the OpenAI key name of the given shape in a
// model whose image tower is a ViT (vit) of width visionWidth, or a
// ModifiedResNet. The cases and their order are the kit's.
func ruleFor(name string, shape []int, vit bool, visionWidth int) (rule, error) {
	n := func(mean, std float64) (rule, error) { return rule{kind: normal, mean: mean, std: std}, nil }
	switch {
	case name == "logit_scale":
		return rule{kind: constant, value: math.Log(100)}, nil
	case lnWeight.MatchString(name):
		return n(1, 0.1)
	case lnBias.MatchString(name):
		return n(0, 0.05)
	case linearWeight.MatchString(name): // [out, in]: N(0, 1/fan_in)
		return n(0, invSqrt(shape[1]))
	case linearBias.MatchString(name):
		return n(0, 0.02)
	case name == "token_embedding.weight":
		return n(0, 0.02)
	case name == "positional_embedding":
		return n(0, 0.01)
	case name == "text_projection", name == "visual.proj": // [width, embed]
		return n(0, invSqrt(shape[0]))
	case name == "visual.class_embedding", name == "visual.positional_embedding":
		return n(0, invSqrt(visionWidth))
	case name == "visual.attnpool.positional_embedding", poolWeight.MatchString(name):
		return n(0, invSqrt(shape[1]))
	case poolBias.MatchString(name):
		return n(0, 0.02)
	case len(shape) == 4 && strings.HasSuffix(name, ".weight"):
		// The ViT patch embedding is linear (no ReLU follows): fan_in^−½;
		// ResNet convolutions: He, (2/fan_in)^½.
		gain := 1.0
		if !vit {
			gain = math.Pow(2, 0.5)
		}
		return n(0, gain*invSqrt(shape[1]*shape[2]*shape[3]))
	}
	if m := batchNorm.FindStringSubmatch(name); m != nil {
		// A bottleneck's last BatchNorm (before the residual add) starts small.
		last := m[1] == "bn3" && stageBlock.MatchString(name)
		switch m[2] {
		case "weight":
			if last {
				return n(0.25, 0.025)
			}
			return n(1, 0.1)
		case "bias":
			return n(0, 0.05)
		case "running_mean":
			return n(0, 0.1)
		default: // running_var > 0
			return rule{kind: lognormal, sigma: 0.25}, nil
		}
	}
	return rule{}, fmt.Errorf("randweights: no init rule for %s %v", name, shape)
}

// apply turns standard normals z into the tensor's values in dst. Each step
// is rounded as in JavaScript: float64 products and sums (no fused
// multiply-add), then one rounding to float32.
func (r rule) apply(dst []float32, z []float64) {
	switch r.kind {
	case constant:
		for i := range dst {
			dst[i] = float32(r.value)
		}
	case lognormal:
		for i := range dst {
			dst[i] = float32(math.Exp(float64(r.sigma * z[i])))
		}
	default:
		for i := range dst {
			dst[i] = float32(r.mean + float64(r.std*z[i]))
		}
	}
}
