package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
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

// converterChild is the environment variable that makes the test binary
// run the command (its arguments as a JSON array) instead of the tests, so
// that memory is measured on a process that does nothing else.
const converterChild = "CLIPWASM_CONVERTER_CHILD"

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(converterChild); ok {
		os.Exit(runMeasured(args))
	}
	os.Exit(m.Run())
}

// runMeasured runs the command with the JSON-encoded args, then prints the
// peak Go heap in use (sampled) and the peak resident set from
// /proc/self/status: VmHWM, and the largest RssAnon and RssFile (pages of
// memory-mapped files: the checkpoint and the bundle) seen every 10 ms.
func runMeasured(args string) int {
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil {
		fmt.Fprintln(os.Stderr, "bad", converterChild, err)
		return 2
	}
	var anon, file uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			st := procStatus()
			anon, file = max(anon, st["RssAnon"]), max(file, st["RssFile"])
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	limitMemory = true // as main does
	peak, err := peakHeap(func() error { return run(argv, os.Stdout, os.Stderr) })
	close(stop)
	<-done
	fmt.Printf("peak heap in use: %d\nVmHWM: %d\npeak RssAnon: %d\npeak RssFile: %d\n", peak, procStatus()["VmHWM"], anon, file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "weights-converter:", err)
		return 1
	}
	return 0
}

// procStatus returns the kB fields of /proc/self/status, in bytes.
func procStatus() map[string]uint64 {
	out := map[string]uint64{}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if f := strings.Fields(v); ok && len(f) == 2 && f[1] == "kB" {
			n, _ := strconv.ParseUint(f[0], 10, 64)
			out[k] = n << 10
		}
	}
	return out
}

// measureLine reads one of runMeasured's figures from its output.
var measureLine = regexp.MustCompile(`(?m)^(peak heap in use|VmHWM|peak RssAnon|peak RssFile): (\d+)$`)

// TestConvertMemory converts a ViT-L/14-sized checkpoint (random F16
// weights, 855 MB, as OpenAI ships them) with the command's defaults —
// calibration and the self-check on — in a child process, and checks that
// both the peak Go heap in use and the peak resident set (VmHWM, which
// counts the pages of the memory-mapped checkpoint and bundle the process
// touched) stay under twice the file size. Without calibration and the
// self-check, the converter streams tensors to shards and must hold far
// less: under the bundle's size.
func TestConvertMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("converts a ViT-L/14 with calibration and the self-check (about 12 CPU minutes)")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Fatalf("the resident set is read from /proc/self/status (Linux): %v", err)
	}
	cfg, err := clip.Named("ViT-L/14")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "vit-l-14.safetensors")
	size := writeSynthCheckpoint(t, cfg, in)
	for _, tc := range []struct {
		name  string
		flags []string
		limit float64 // × the checkpoint's size
	}{
		{"int8", []string{"--quant", "int8"}, 2},
		{"int8 streamed", []string{"--quant", "int8", "--calibrate=false", "--no-verify"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "bundle")
			args, err := json.Marshal(append([]string{"--in", in, "--out", out, "--vocab", fixtures.VocabPath()}, tc.flags...))
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), converterChild+"="+string(args))
			start := time.Now()
			stdout, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, stdout)
			}
			got := map[string]uint64{}
			for _, m := range measureLine.FindAllStringSubmatch(string(stdout), -1) {
				got[m[1]], _ = strconv.ParseUint(m[2], 10, 64)
			}
			b, err := shards.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			bundle := b.Manifest.TotalSize()
			b.Close()
			ratio := func(k string) float64 { return float64(got[k]) / float64(size) }
			cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			t.Logf("%s in %v (%v of CPU): checkpoint %.1f MB, bundle %.1f MB; peak Go heap in use %.1f MB (%.2f×), VmHWM %.1f MB (%.2f×; largest RssAnon %.1f MB, RssFile %.1f MB)",
				tc.flags, time.Since(start).Round(time.Second), cpu.Round(time.Second), float64(size)/1e6, float64(bundle)/1e6,
				float64(got["peak heap in use"])/1e6, ratio("peak heap in use"), float64(got["VmHWM"])/1e6, ratio("VmHWM"),
				float64(got["peak RssAnon"])/1e6, float64(got["peak RssFile"])/1e6)
			for _, k := range []string{"peak heap in use", "VmHWM"} {
				if got[k] == 0 {
					t.Fatalf("no %q in the output:\n%s", k, stdout)
				}
			}
			if tc.limit > 0 {
				for _, k := range []string{"peak heap in use", "VmHWM"} {
					if ratio(k) >= tc.limit {
						t.Errorf("%s %d bytes ≥ %g× the %d-byte checkpoint", k, got[k], tc.limit, size)
					}
				}
			} else if got["peak heap in use"] >= uint64(bundle) {
				t.Errorf("peak heap %d bytes ≥ the %d-byte bundle: tensors are not released as they are written", got["peak heap in use"], bundle)
			}
		})
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
