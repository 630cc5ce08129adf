package main

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/clipwasm/clipwasm/checkpoint"
	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/convert"
	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/internal/randweights"
	"github.com/clipwasm/clipwasm/shards"
)

// writeSynthCheckpoint writes a safetensors checkpoint of cfg's OpenAI
// state dict with random F16 values of magnitude 2^-7 to 2^-4 (shapes are
// what matter here) and returns its size in bytes.
func writeSynthCheckpoint(t *testing.T, cfg clip.Config, path string) int64 {
	t.Helper()
	specs, err := randweights.Specs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	tensors := make([]*checkpoint.Tensor, len(specs))
	for i, s := range specs {
		data := make([]byte, 2*s.Len())
		for j := 0; j < len(data); j += 2 {
			r := rng.Uint32()
			// sign, exponent 8..11 (2^-7..2^-4), random mantissa
			h := uint16(r>>31)<<15 | uint16(8+(r>>10)%4)<<10 | uint16(r&0x3ff)
			binary.LittleEndian.PutUint16(data[j:], h)
		}
		if tensors[i], err = checkpoint.NewTensor(s.Name, checkpoint.F16, s.Shape, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := checkpoint.WriteSafetensors(path, tensors, nil); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// peakHeap runs f while sampling the Go heap in use (runtime/metrics'
// equivalent of MemStats.HeapInuse, read without stopping the world) every
// millisecond, and returns the largest sample.
func peakHeap(f func() error) (uint64, error) {
	runtime.GC()
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	read := func() uint64 {
		metrics.Read(samples)
		return samples[0].Value.Uint64() + samples[1].Value.Uint64()
	}
	stop, peak := make(chan struct{}), make(chan uint64)
	go func() {
		p := read()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				peak <- max(p, read())
				return
			case <-tick.C:
				p = max(p, read())
			}
		}
	}()
	err := f()
	close(stop)
	return <-peak, err
}

// convertFile is the conversion the command does with --calibrate=false
// --no-verify: it streams the checkpoint.
func convertFile(in, out string, quant shards.Scheme) (*shards.Result, error) {
	m, err := convert.Open(in)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	tok, _, err := loadTokenizer(fixtures.VocabPath(), in)
	if err != nil {
		return nil, err
	}
	return shards.Write(out, m.Config, tok, sources(m), shards.Options{Quant: quant})
}

// TestConvertMemory converts a synthetic ~250 MB F16 checkpoint to int8
// and checks that the Go heap stays under twice the file size. The shapes
// are ViT-B/16's with a 1000-token vocabulary, so that no single tensor
// dominates: the heap must then also stay well under the bundle's size,
// which only holds if each tensor's bytes are freed once its shard is
// written.
func TestConvertMemory(t *testing.T) {
	cfg, err := clip.Named("ViT-B/16")
	if err != nil {
		t.Fatal(err)
	}
	cfg.VocabSize = 1000
	dir := t.TempDir()
	in := filepath.Join(dir, "synth.safetensors")
	size := writeSynthCheckpoint(t, cfg, in)
	var res *shards.Result
	peak, err := peakHeap(func() (err error) {
		res, err = convertFile(in, filepath.Join(dir, "bundle"), shards.Int8)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	bundle := res.Manifest.TotalSize()
	t.Logf("checkpoint %.1f MB, bundle %.1f MB in %d shards, peak Go heap in use %.1f MB (%.2f× the file)",
		float64(size)/1e6, float64(bundle)/1e6, len(res.Manifest.Shards), float64(peak)/1e6, float64(peak)/float64(size))
	if peak >= 2*uint64(size) {
		t.Errorf("peak heap %d bytes ≥ 2× the %d-byte checkpoint", peak, size)
	}
	if peak >= uint64(bundle) {
		t.Errorf("peak heap %d bytes ≥ the %d-byte bundle: tensors are not released as they are written", peak, bundle)
	}
}

// TestBundleSizes converts a full-size ViT-B/32 (random F16 weights) to
// int8 and q4 without calibration and checks the bundle sizes against the
// budget for the browser: int8 ≤ 160 MB, q4 ≤ 95 MB (TestFullSize checks
// the calibrated bundles, which spend part of the difference).
func TestBundleSizes(t *testing.T) {
	if testing.Short() {
		t.Skip("converts a full-size ViT-B/32 twice")
	}
	cfg, err := clip.Named("ViT-B/32")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "vit-b-32.safetensors")
	size := writeSynthCheckpoint(t, cfg, in)
	for _, tc := range []struct {
		quant shards.Scheme
		limit int64
	}{{shards.Int8, 160e6}, {shards.Q4, 95e6}} {
		var res *shards.Result
		peak, err := peakHeap(func() (err error) {
			res, err = convertFile(in, filepath.Join(dir, string(tc.quant)), tc.quant)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		total := res.Manifest.TotalSize()
		manifest, err := os.Stat(filepath.Join(dir, string(tc.quant), shards.ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("ViT-B/32 %s: %.1f MB of shards (%d) + %.2f MB manifest; from a %.1f MB F16 checkpoint, peak Go heap %.1f MB",
			tc.quant, float64(total)/1e6, len(res.Manifest.Shards), float64(manifest.Size())/1e6, float64(size)/1e6, float64(peak)/1e6)
		if total+manifest.Size() > tc.limit {
			t.Errorf("%s bundle is %d bytes, over %d", tc.quant, total+manifest.Size(), tc.limit)
		}
	}
}
