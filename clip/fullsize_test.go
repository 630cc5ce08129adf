package clip_test

import (
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/convert"
	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/internal/npy"
	"github.com/clipwasm/clipwasm/internal/randweights"
	"github.com/clipwasm/clipwasm/kernels/purego"
)

// The full-size tests and the benchmarks run the peers kit's architectures
// on the kit's seed-0 random weights (randweights reproduces the kit's
// weights.safetensors bit for bit), so the kit's shipped PyTorch outputs
// are their references.

// modelKey names a cached model: an architecture on a backend with a
// number of threads.
type modelKey struct {
	arch    string
	threads int
}

var (
	cacheMu sync.Mutex
	// weights holds randweights' seed-0 tensors per architecture, drawn
	// once and mapped onto the engine layout for each model.
	weights = map[string]map[string]clip.Tensor{}
	models  = map[modelKey]*clip.Model{}
)

// randModel returns arch with the kit's seed-0 weights on the purego
// backend with the given threads, generated once per process.
func randModel(tb testing.TB, arch string, threads int) *clip.Model {
	tb.Helper()
	cacheMu.Lock()
	defer cacheMu.Unlock()
	key := modelKey{arch, threads}
	if m, ok := models[key]; ok {
		return m
	}
	c, err := clip.Named(arch)
	if err != nil {
		tb.Fatal(err)
	}
	w, ok := weights[arch]
	if !ok {
		if w, err = randweights.Generate(c, 0); err != nil {
			tb.Fatal(err)
		}
		weights[arch] = w
	}
	cw, err := convert.FromTensors(w, c.Activation)
	if err != nil {
		tb.Fatalf("%s: %v", arch, err)
	}
	m, err := clip.Build(cw.Config, cw, purego.New(threads))
	if err != nil {
		tb.Fatalf("%s: %v", arch, err)
	}
	models[key] = m
	return m
}

// peersPath joins elem onto the peers kit in the shared directory.
func peersPath(elem ...string) string {
	return filepath.Join(append([]string{fixtures.SharedDir(), "peers"}, elem...)...)
}

// peersNpy reads a .npy file of the peers kit or fails the test.
func peersNpy(tb testing.TB, elem ...string) *npy.Array {
	tb.Helper()
	a, err := npy.ReadFile(peersPath(elem...))
	if err != nil {
		tb.Fatalf("the peers kit is part of the shared data: %v", err)
	}
	return a
}

// peerTask is one of the kit's three tasks.
type peerTask struct {
	name  string // image_b1, image_b8, text_80
	input string // file in the kit's inputs/
}

var (
	imageB1 = peerTask{"image_b1", "images_b1.npy"}
	imageB8 = peerTask{"image_b8", "images.npy"}
	text80  = peerTask{"text_80", "tokens.npy"}

	peerTasks = []peerTask{imageB1, imageB8, text80}
)

// encodeTask runs task's input through m: float32 NCHW images or int64
// token rows.
func encodeTask(m *clip.Model, task peerTask, in *npy.Array) ([]float32, error) {
	if strings.HasPrefix(task.name, "image") {
		return m.EncodeImage(in.F32, in.Shape[0])
	}
	rows, err := in.TokenRows()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", task.input, err)
	}
	return m.EncodeText(rows)
}

// minCosine returns the smallest cosine similarity between corresponding
// rows of a and b (rows of width d).
func minCosine(a, b []float32, d int) float64 {
	worst := 1.0
	for r := 0; r+d <= len(a) && r+d <= len(b); r += d {
		var ab, aa, bb float64
		for i := r; i < r+d; i++ {
			ab += float64(a[i]) * float64(b[i])
			aa += float64(a[i]) * float64(a[i])
			bb += float64(b[i]) * float64(b[i])
		}
		worst = min(worst, ab/math.Sqrt(aa*bb))
	}
	return worst
}

// TestFullSizeMatchesPyTorch runs ViT-B/32 and RN50 at full size on the
// kit's seed-0 weights and compares each task's embeddings with PyTorch's
// (openai/CLIP clip.model.CLIP, float32, shipped in the kit's
// models/<arch>/expected-seed0/): max |Δ| ≤ 1e-4·max|ref|. In -short mode
// only image_b1 of each architecture and ViT-B/32's text_80 run.
func TestFullSizeMatchesPyTorch(t *testing.T) {
	for _, arch := range []string{"ViT-B/32", "RN50"} {
		for _, task := range peerTasks {
			t.Run(strings.ReplaceAll(arch, "/", "-")+"/"+task.name, func(t *testing.T) {
				if testing.Short() && (task.name == "image_b8" || (arch == "RN50" && task.name == "text_80")) {
					t.Skip("full-size batch of 8 images and RN50's text tower (which only adds a projection to ViT-B/32's) skipped in -short")
				}
				m := randModel(t, arch, runtime.GOMAXPROCS(0))
				got, err := encodeTask(m, task, peersNpy(t, "inputs", task.input))
				if err != nil {
					t.Fatal(err)
				}
				want := peersNpy(t, "models", strings.ReplaceAll(arch, "/", "-"), "expected-seed0", "torch_"+task.name+".npy")
				d := fixtures.AssertClose(t, task.name, got, want.F32, 1e-4)
				t.Logf("%s %s: max |Δ| %.3g (max |ref| %.3g, relative %.3g), min cosine 1 − %.2g",
					arch, task.name, d, fixtures.MaxAbs(want.F32), d/fixtures.MaxAbs(want.F32),
					1-minCosine(got, want.F32, m.Config.EmbedDim))
			})
		}
	}
}
