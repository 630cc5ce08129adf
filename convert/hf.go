package convert

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/clipwasm/clipwasm/checkpoint"
	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/kernels"
)

// hfConfig is the part of a Hugging Face CLIPConfig (config.json) the model
// needs.
type hfConfig struct {
	ProjectionDim int           `json:"projection_dim"`
	Text          hfTowerConfig `json:"text_config"`
	Vision        hfTowerConfig `json:"vision_config"`
	ModelType     string        `json:"model_type"`
}

type hfTowerConfig struct {
	HiddenAct             string  `json:"hidden_act"`
	HiddenSize            int     `json:"hidden_size"`
	IntermediateSize      int     `json:"intermediate_size"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	LayerNormEps          float32 `json:"layer_norm_eps"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	VocabSize             int     `json:"vocab_size"`
	EOSTokenID            int     `json:"eos_token_id"`
	ImageSize             int     `json:"image_size"`
	PatchSize             int     `json:"patch_size"`
}

func hfActivation(name string) (kernels.Activation, error) {
	switch name {
	case "quick_gelu":
		return kernels.QuickGELU, nil
	case "gelu":
		return kernels.GELU, nil
	}
	return 0, fmt.Errorf("unsupported hidden_act %q (want quick_gelu or gelu)", name)
}

// hfTowers pairs the transformers prefixes of the two towers' blocks with
// OpenAI's.
var hfTowers = []struct{ from, to string }{
	{"text_model.encoder.layers.", "transformer.resblocks."},
	{"vision_model.encoder.layers.", "visual.transformer.resblocks."},
}

// fromHuggingFace maps a transformers CLIPModel checkpoint onto OpenAI's
// naming: separate q/k/v projections are stacked into in_proj, and the
// projection Linears become the [width, embed] matrices OpenAI stores.
func fromHuggingFace(ck *checkpoint.Checkpoint) (stateDict, clip.Config, error) {
	var hc hfConfig
	if err := json.Unmarshal(ck.Config, &hc); err != nil {
		return nil, clip.Config{}, fmt.Errorf("config.json: %w", err)
	}
	if hc.ModelType != "" && hc.ModelType != "clip" {
		return nil, clip.Config{}, fmt.Errorf("config.json model_type %q is not a CLIP model", hc.ModelType)
	}
	act, err := hfActivation(hc.Text.HiddenAct)
	if err != nil {
		return nil, clip.Config{}, err
	}
	if vact, err := hfActivation(hc.Vision.HiddenAct); err != nil {
		return nil, clip.Config{}, err
	} else if vact != act {
		return nil, clip.Config{}, fmt.Errorf("text and vision activations differ (%s, %s)", hc.Text.HiddenAct, hc.Vision.HiddenAct)
	}
	cfg := clip.Config{
		EmbedDim:        hc.ProjectionDim,
		ImageResolution: hc.Vision.ImageSize,
		VisionLayers:    []int{hc.Vision.NumHiddenLayers},
		VisionWidth:     hc.Vision.HiddenSize,
		VisionPatchSize: hc.Vision.PatchSize,
		VisionHeads:     hc.Vision.NumAttentionHeads,
		VisionMLPWidth:  hc.Vision.IntermediateSize,
		ContextLength:   hc.Text.MaxPositionEmbeddings,
		VocabSize:       hc.Text.VocabSize,
		TextWidth:       hc.Text.HiddenSize,
		TextHeads:       hc.Text.NumAttentionHeads,
		TextLayers:      hc.Text.NumHiddenLayers,
		TextMLPWidth:    hc.Text.IntermediateSize,
		Activation:      act,
		LayerNormEps:    hc.Text.LayerNormEps,
	}
	// transformers pools at argmax(ids) when eos_token_id is the legacy 2,
	// else at the first eos_token_id.
	if hc.Text.EOSTokenID != 2 {
		cfg.EOSTokenID = hc.Text.EOSTokenID
	}
	cfg.Normalize()
	if err := cfg.Validate(); err != nil {
		return nil, clip.Config{}, err
	}

	sd := stateDict{}
	rename := map[string]string{
		"logit_scale": "logit_scale",
		"text_model.embeddings.token_embedding.weight":      "token_embedding.weight",
		"text_model.embeddings.position_embedding.weight":   "positional_embedding",
		"text_model.final_layer_norm.weight":                "ln_final.weight",
		"text_model.final_layer_norm.bias":                  "ln_final.bias",
		"vision_model.embeddings.class_embedding":           "visual.class_embedding",
		"vision_model.embeddings.patch_embedding.weight":    "visual.conv1.weight",
		"vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
		"vision_model.pre_layrnorm.weight":                  "visual.ln_pre.weight",
		"vision_model.pre_layrnorm.bias":                    "visual.ln_pre.bias",
		"vision_model.post_layernorm.weight":                "visual.ln_post.weight",
		"vision_model.post_layernorm.bias":                  "visual.ln_post.bias",
	}
	blockRename := strings.NewReplacer(
		"layer_norm1.", "ln_1.", "layer_norm2.", "ln_2.",
		"self_attn.out_proj.", "attn.out_proj.",
		"mlp.fc1.", "mlp.c_fc.", "mlp.fc2.", "mlp.c_proj.",
	)
	t := ck.Tensors
	for name, tensor := range t {
		if to, ok := rename[name]; ok {
			sd[to] = source{tensor.Shape, tensor.Float32}
			continue
		}
		for _, tw := range hfTowers {
			rest, ok := strings.CutPrefix(name, tw.from)
			if !ok || strings.Contains(rest, "self_attn.q_proj") || strings.Contains(rest, "self_attn.k_proj") || strings.Contains(rest, "self_attn.v_proj") {
				continue
			}
			sd[tw.to+blockRename.Replace(rest)] = source{tensor.Shape, tensor.Float32}
		}
	}
	// Stack q, k, v into in_proj, as nn.MultiheadAttention stores them.
	for _, tw := range hfTowers {
		for i := 0; ; i++ {
			p := fmt.Sprintf("%s%d.self_attn.", tw.from, i)
			if _, ok := t[p+"q_proj.weight"]; !ok {
				break
			}
			for _, kind := range []string{"weight", "bias"} {
				var parts []source
				for _, qkv := range []string{"q_proj.", "k_proj.", "v_proj."} {
					x, ok := t[p+qkv+kind]
					if !ok {
						return nil, clip.Config{}, fmt.Errorf("missing tensor %q", p+qkv+kind)
					}
					parts = append(parts, source{x.Shape, x.Float32})
				}
				shape := append([]int{3 * parts[0].shape[0]}, parts[0].shape[1:]...)
				sd[fmt.Sprintf("%s%d.attn.in_proj_%s", tw.to, i, kind)] = source{shape, stack(parts...)}
			}
		}
	}
	for from, to := range map[string]string{"text_projection.weight": "text_projection", "visual_projection.weight": "visual.proj"} {
		tensor, ok := t[from]
		if !ok || len(tensor.Shape) != 2 {
			return nil, clip.Config{}, fmt.Errorf("missing or malformed tensor %q", from)
		}
		sd[to] = source{[]int{tensor.Shape[1], tensor.Shape[0]}, transposed(tensor)}
	}
	return sd, cfg, nil
}

// transposed reads a 2-D tensor [r, c] as [c, r].
func transposed(t *checkpoint.Tensor) func() ([]float32, error) {
	return func() ([]float32, error) {
		d, err := t.Float32()
		if err != nil {
			return nil, err
		}
		return transpose2D(d, t.Shape[0], t.Shape[1])
	}
}

// openCLIPConfig is the part of open_clip_config.json the model needs.
type openCLIPConfig struct {
	ModelCfg struct {
		EmbedDim  int  `json:"embed_dim"`
		QuickGELU bool `json:"quick_gelu"`
		VisionCfg struct {
			ImageSize int     `json:"image_size"`
			HeadWidth int     `json:"head_width"`
			MLPRatio  float64 `json:"mlp_ratio"`
		} `json:"vision_cfg"`
		TextCfg struct {
			Heads int `json:"heads"`
		} `json:"text_cfg"`
	} `json:"model_cfg"`
	PreprocessCfg struct {
		Mean []float32 `json:"mean"`
		Std  []float32 `json:"std"`
	} `json:"preprocess_cfg"`
}

// applyOpenCLIPConfig takes from an OpenCLIP config what tensor shapes cannot
// tell: the activation (GELU unless quick_gelu), head counts, and the
// preprocessing mean and std.
func applyOpenCLIPConfig(c *clip.Config, raw []byte) error {
	var oc openCLIPConfig
	if err := json.Unmarshal(raw, &oc); err != nil {
		return fmt.Errorf("open_clip_config.json: %w", err)
	}
	c.Activation = kernels.GELU
	if oc.ModelCfg.QuickGELU {
		c.Activation = kernels.QuickGELU
	}
	if hw := oc.ModelCfg.VisionCfg.HeadWidth; hw > 0 && c.IsViT() {
		c.VisionHeads = c.VisionWidth / hw
	}
	if h := oc.ModelCfg.TextCfg.Heads; h > 0 {
		c.TextHeads = h
	}
	if m, s := oc.PreprocessCfg.Mean, oc.PreprocessCfg.Std; len(m) == 3 && len(s) == 3 {
		c.Mean, c.Std = [3]float32(m), [3]float32(s)
	}
	return c.Validate()
}
