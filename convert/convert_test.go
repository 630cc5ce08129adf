package convert_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/convert"

	"github.com/clipwasm/clipwasm/checkpoint"
	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/purego"
)

// fixtureTensors reads a fixture checkpoint's tensors in stored order.
func fixtureTensors(t *testing.T, model string) []*checkpoint.Tensor {
	t.Helper()
	ck, err := checkpoint.Open(fixtures.Path("openai", model, model+".state_dict.pt"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	var out []*checkpoint.Tensor
	for _, n := range ck.Names() {
		out = append(out, ck.Tensors[n])
	}
	return out
}

// TestOpenCLIPFolder writes vit_tiny as an OpenCLIP folder (module.
// prefixes, open_clip_config.json) and checks the config's quick_gelu flag
// decides the activation: true reproduces the OpenAI goldens, false (exact
// GELU, OpenCLIP's default) moves them.
func TestOpenCLIPFolder(t *testing.T) {
	fixtures.Require(t)
	var renamed []*checkpoint.Tensor
	for _, ten := range fixtureTensors(t, "vit_tiny") {
		c, err := checkpoint.NewTensor("module."+ten.Name, ten.DType, ten.Shape, ten.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		renamed = append(renamed, c)
	}
	images := fixtures.LoadNpy(t, "openai", "vit_tiny", "images.npy")
	want := fixtures.LoadNpy(t, "openai", "vit_tiny", "image_features.npy").F32
	for _, quick := range []bool{true, false} {
		dir := t.TempDir()
		if err := checkpoint.WriteSafetensors(filepath.Join(dir, "open_clip_model.safetensors"), renamed, nil); err != nil {
			t.Fatal(err)
		}
		cfg := `{"model_cfg": {"embed_dim": 64, "quick_gelu": ` + map[bool]string{true: "true", false: "false"}[quick] +
			`, "vision_cfg": {"image_size": 32, "layers": 2, "width": 128, "patch_size": 8, "head_width": 64},
			"text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 2}},
			"preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}}`
		if err := os.WriteFile(filepath.Join(dir, "open_clip_config.json"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := convert.Load(dir, purego.New(0))
		if err != nil {
			t.Fatal(err)
		}
		wantAct := map[bool]kernels.Activation{true: kernels.QuickGELU, false: kernels.GELU}[quick]
		if m.Config.Activation != wantAct {
			t.Errorf("quick_gelu=%v: activation %v, want %v", quick, m.Config.Activation, wantAct)
		}
		got, err := m.EncodeImage(images.F32, images.Shape[0])
		if err != nil {
			t.Fatal(err)
		}
		d, _ := fixtures.MaxAbsDiff(got, want)
		if close := d <= 1e-4*fixtures.MaxAbs(want); close != quick {
			t.Errorf("quick_gelu=%v: max |Δ| vs QuickGELU goldens %.3g; want close=%v", quick, d, quick)
		}
	}
}

// TestBadCheckpoints checks that structurally wrong weights fail at load
// time with an error naming the problem.
func TestBadCheckpoints(t *testing.T) {
	fixtures.Require(t)
	base := fixtureTensors(t, "vit_tiny")
	cases := []struct {
		name   string
		mutate func([]*checkpoint.Tensor) []*checkpoint.Tensor
		want   string
	}{
		{"missing ln_post", func(ts []*checkpoint.Tensor) []*checkpoint.Tensor {
			return drop(ts, "visual.ln_post.bias")
		}, `missing tensor "visual.ln_post.bias"`},
		{"missing projection", func(ts []*checkpoint.Tensor) []*checkpoint.Tensor {
			return drop(ts, "text_projection")
		}, `"text_projection"`},
		{"wrong shape", func(ts []*checkpoint.Tensor) []*checkpoint.Tensor {
			return replace(t, ts, "visual.transformer.resblocks.1.mlp.c_fc.bias", []int{100})
		}, "has shape [100], want [512]"},
		{"not CLIP", func(ts []*checkpoint.Tensor) []*checkpoint.Tensor {
			return ts[:3]
		}, "not a CLIP checkpoint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "w.safetensors")
			if err := checkpoint.WriteSafetensors(path, c.mutate(append([]*checkpoint.Tensor(nil), base...)), nil); err != nil {
				t.Fatal(err)
			}
			_, err := convert.Load(path, purego.New(1))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := convert.Load(filepath.Join(t.TempDir(), "absent.pt"), purego.New(1)); err == nil {
		t.Error("missing file: no error")
	}
}

func drop(ts []*checkpoint.Tensor, name string) []*checkpoint.Tensor {
	var out []*checkpoint.Tensor
	for _, x := range ts {
		if x.Name != name {
			out = append(out, x)
		}
	}
	return out
}

func replace(t *testing.T, ts []*checkpoint.Tensor, name string, shape []int) []*checkpoint.Tensor {
	out := drop(ts, name)
	n := 1
	for _, d := range shape {
		n *= d
	}
	r, err := checkpoint.NewTensor(name, checkpoint.DType("F32"), shape, make([]byte, 4*n))
	if err != nil {
		t.Fatal(err)
	}
	return append(out, r)
}

// TestShardedHuggingFace splits the F16 Hugging Face fixture over two
// safetensors files with an index, as the Hub stores large models, and
// checks the embeddings still match the goldens.
func TestShardedHuggingFace(t *testing.T) {
	fixtures.Require(t)
	src := fixtures.Path("hf", "hf_tiny_gelu_fp16")
	ck, err := checkpoint.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	dir := t.TempDir()
	names := ck.Names()
	index := map[string]any{"metadata": map[string]any{}, "weight_map": map[string]string{}}
	for part, span := range [][]string{names[:len(names)/2], names[len(names)/2:]} {
		file := fmt.Sprintf("model-%05d-of-00002.safetensors", part+1)
		var ts []*checkpoint.Tensor
		for _, n := range span {
			ts = append(ts, ck.Tensors[n])
			index["weight_map"].(map[string]string)[n] = file
		}
		if err := checkpoint.WriteSafetensors(filepath.Join(dir, file), ts, nil); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := json.Marshal(index)
	os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), raw, 0o644)
	os.WriteFile(filepath.Join(dir, "config.json"), ck.Config, 0o644)

	m, err := convert.Load(dir, purego.New(0))
	if err != nil {
		t.Fatal(err)
	}
	px := fixtures.LoadNpy(t, "hf", "hf_tiny_gelu_fp16", "pixel_values.npy")
	img, err := m.EncodeImage(px.F32, px.Shape[0])
	if err != nil {
		t.Fatal(err)
	}
	clip.Normalize(img, m.Config.EmbedDim)
	fixtures.AssertClose(t, "image_embeds", img, fixtures.LoadNpy(t, "hf", "hf_tiny_gelu_fp16", "image_embeds.npy").F32, 1e-4)
}

// TestRowScaled checks that every BatchNorm-folded convolution of the tiny
// ResNet offers its factors, that their float32 product is the folded
// tensor bit for bit, and that no other tensor offers any.
func TestRowScaled(t *testing.T) {
	fixtures.Require(t)
	m, err := convert.Open(fixtures.Path("openai", "rn_tiny", "rn_tiny.state_dict.pt"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	folded := 0
	for _, tn := range m.Tensors {
		f := tn.RowScaled()
		isConv := strings.HasPrefix(tn.Name, "visual.") && strings.HasSuffix(tn.Name, ".weight") && !strings.Contains(tn.Name, "attnpool")
		if (f != nil) != isConv {
			t.Errorf("%s: row-scaled factors %v, want %v", tn.Name, f != nil, isConv)
		}
		if f == nil {
			continue
		}
		folded++
		vals, err := tn.Float32()
		if err != nil {
			t.Fatal(err)
		}
		base, scale, err := f()
		if err != nil {
			t.Fatal(err)
		}
		if len(base) != len(vals) || len(scale) != tn.Shape[0] {
			t.Fatalf("%s: %d base values and %d scales for shape %v", tn.Name, len(base), len(scale), tn.Shape)
		}
		cols := len(vals) / len(scale)
		for i, v := range vals {
			if base[i]*scale[i/cols] != v {
				t.Fatalf("%s: value %d is %g, base·scale %g", tn.Name, i, v, base[i]*scale[i/cols])
			}
		}
	}
	if folded != 22 {
		t.Errorf("%d folded convolutions, want 22", folded)
	}
}
