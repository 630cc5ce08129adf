package clip

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"regexp"
	"sort"
	"strings"
)

// DefaultTemplate is the single prompt of the CLIP paper's simplest setup.
const DefaultTemplate = "a photo of a {}."

// Ensembles are template sets built into the product, by name. "imagenet"
// was written for this project in the spirit of the paper's 80 ImageNet
// prompts: the same label seen through varied photographic conditions and
// renditions, which averages out the wording of any one sentence.
var Ensembles = map[string][]string{
	"imagenet": {
		"a photo of a {}.",
		"a close-up photo of a {}.",
		"a blurry photo of a {}.",
		"a bright photo of a {}.",
		"a dark photo of a {}.",
		"a cropped photo of a {}.",
		"a low resolution photo of a {}.",
		"a photo of a small {}.",
		"a photo of a large {}.",
		"a photo of many {}.",
		"a black and white photo of a {}.",
		"a drawing of a {}.",
		"a painting of a {}.",
		"a sketch of a {}.",
		"a cartoon of a {}.",
		"a 3d rendering of a {}.",
		"a toy {}.",
		"an embroidered {}.",
	},
}

// Prediction is one label's score for one image.
type Prediction struct {
	Label string  `json:"label"`
	Prob  float32 `json:"prob"`
	Logit float32 `json:"logit"`
}

// Normalize scales each row of x [n, d] to unit L2 norm in place.
func Normalize(x []float32, d int) {
	for i := 0; i+d <= len(x); i += d {
		var s float64
		for _, v := range x[i : i+d] {
			s += float64(v) * float64(v)
		}
		inv := float32(1 / math.Sqrt(s))
		for j := i; j < i+d; j++ {
			x[j] *= inv
		}
	}
}

// Softmax returns the softmax of logits, computed stably.
func Softmax(logits []float32) []float32 {
	m := float32(math.Inf(-1))
	for _, v := range logits {
		m = max(m, v)
	}
	out := make([]float32, len(logits))
	var s float64
	for i, v := range logits {
		e := math.Exp(float64(v - m))
		out[i] = float32(e)
		s += e
	}
	for i := range out {
		out[i] = float32(float64(out[i]) / s)
	}
	return out
}

// Logits returns exp(logitScale)·cos(image_i, text_j) as [n, m], like the
// model's forward: both sides are L2-normalised copies.
func Logits(images, texts []float32, dim int, logitScale float32) []float32 {
	a := append([]float32(nil), images...)
	b := append([]float32(nil), texts...)
	Normalize(a, dim)
	Normalize(b, dim)
	scale := float32(math.Exp(float64(logitScale)))
	n, m := len(a)/dim, len(b)/dim
	out := make([]float32, n*m)
	for i := 0; i < n; i++ {
		for j := 0; j < m; j++ {
			var s float32
			for k := 0; k < dim; k++ {
				s += a[i*dim+k] * b[j*dim+k]
			}
			out[i*m+j] = scale * s
		}
	}
	return out
}

// Rank turns one image's logits over labels into predictions sorted by
// probability, keeping the top k (all if k <= 0).
func Rank(labels []string, logits []float32, k int) []Prediction {
	probs := Softmax(logits)
	preds := make([]Prediction, len(labels))
	for i, l := range labels {
		preds[i] = Prediction{Label: l, Prob: probs[i], Logit: logits[i]}
	}
	sort.SliceStable(preds, func(i, j int) bool { return preds[i].Prob > preds[j].Prob })
	if k > 0 && k < len(preds) {
		preds = preds[:k]
	}
	return preds
}

// Prompts fills each template's "{}" with label, as Python's str.format
// does for CLIP's templates.
func Prompts(label string, templates []string) []string {
	out := make([]string, len(templates))
	for i, t := range templates {
		out[i] = strings.ReplaceAll(t, "{}", label)
	}
	return out
}

// quotedPattern matches one single- or double-quoted Python string
// literal. It is compiled where it is used, not at package init, so that
// builds which never read template files (the wasm engine) link no regexp
// engine (about 90 KB of its gzipped size).
const quotedPattern = `'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"`

// LoadTemplates reads a template file. Two forms are accepted:
//   - plain text, one template per line (blank lines and lines starting
//     with '#' are skipped);
//   - CLIP's prompts.md, whose datasets each have a Python list
//     `templates = [...]`. "prompts.md#CIFAR10" selects one dataset's list;
//     without a selector every distinct template of the file is returned.
//
// Every template must contain "{}".
func LoadTemplates(spec string) ([]string, error) {
	path, section, _ := strings.Cut(spec, "#")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("clip: template file: %w", err)
	}
	var out []string
	if bytes.Contains(data, []byte("templates = [")) {
		out, err = pythonTemplateLists(data, section)
	} else {
		if section != "" {
			return nil, fmt.Errorf("clip: template file %s has no sections to select %q from", path, section)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line != "" && !strings.HasPrefix(line, "#") {
				out = append(out, line)
			}
		}
		err = sc.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("clip: template file %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("clip: template file %s holds no templates", spec)
	}
	for _, t := range out {
		if !strings.Contains(t, "{}") {
			return nil, fmt.Errorf("clip: template %q in %s has no {} for the label", t, path)
		}
	}
	return out, nil
}

// pythonTemplateLists extracts the `templates = [...]` lists of a
// prompts.md-style file, from the "## section" heading if one is named.
func pythonTemplateLists(data []byte, section string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	current, found := "", section == ""
	quoted := regexp.MustCompile(quotedPattern)
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if h, ok := strings.CutPrefix(line, "## "); ok {
			current = strings.TrimSpace(h)
			continue
		}
		if !strings.HasPrefix(line, "templates = [") || (section != "" && current != section) {
			continue
		}
		found = true
		for ; i < len(lines); i++ {
			for _, m := range quoted.FindAllStringSubmatch(lines[i], -1) {
				t := m[1] + m[2]
				t = strings.NewReplacer(`\'`, `'`, `\"`, `"`, `\\`, `\`).Replace(t)
				if !seen[t] {
					seen[t] = true
					out = append(out, t)
				}
			}
			if strings.Contains(lines[i], "]") {
				break
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("no section %q with a templates list", section)
	}
	return out, nil
}
