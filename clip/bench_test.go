package clip_test

import (
	"runtime"
	"testing"
)

// Full-size benchmarks on the kit's seed-0 random weights (see
// fullsize_test.go): the kit's tasks with its inputs, on the purego backend
// with GOMAXPROCS threads, so `go test -bench . -cpu 1,2 ./clip` compares
// one and two threads. Each (architecture, threads) model is built once per
// process, outside the timing; ms/op is the time of one encode call.

// benchTask times one kit task on arch.
func benchTask(b *testing.B, arch string, task peerTask) {
	m := randModel(b, arch, runtime.GOMAXPROCS(0))
	in := peersNpy(b, "inputs", task.input)
	if _, err := encodeTask(m, task, in); err != nil { // warm-up: the backend prepares its weights
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := encodeTask(m, task, in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/op")
}

// BenchmarkViTB32Image encodes 1 and 8 images with ViT-B/32.
func BenchmarkViTB32Image(b *testing.B) {
	b.Run("b1", func(b *testing.B) { benchTask(b, "ViT-B/32", imageB1) })
	b.Run("b8", func(b *testing.B) { benchTask(b, "ViT-B/32", imageB8) })
}

// BenchmarkRN50Image encodes 1 image with RN50.
func BenchmarkRN50Image(b *testing.B) { benchTask(b, "RN50", imageB1) }

// BenchmarkViTB32Text80 encodes the kit's 80 prompts with ViT-B/32's text
// tower.
func BenchmarkViTB32Text80(b *testing.B) { benchTask(b, "ViT-B/32", text80) }
