package shards

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"unsafe"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/internal/half"
	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/tokenizer"
)

// testTokenizer is CLIP's tokenizer, loaded once.
var testTokenizer = sync.OnceValues(func() (*tokenizer.Tokenizer, error) {
	return tokenizer.Load(fixtures.VocabPath())
})

func tok(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	fixtures.Require(t)
	tk, err := testTokenizer()
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// testConfig is a valid tiny config; the synthetic tensors need not match
// it, since these tests read tensors back by name.
func testConfig() clip.Config {
	c := clip.Config{EmbedDim: 32, ImageResolution: 32, VisionLayers: []int{1}, VisionWidth: 64, VisionPatchSize: 16,
		TextWidth: 64, TextLayers: 1, Activation: kernels.QuickGELU}
	c.Normalize()
	return c
}

// synthTensor is a tensor of known values for Write.
type synthTensor struct {
	name  string
	shape []int
	kind  Kind
	vals  []float32
}

func synth(rng *rand.Rand, name string, kind Kind, shape ...int) synthTensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * 0.05)
	}
	return synthTensor{name, shape, kind, v}
}

// synthModel covers every storage case: a table larger than small shard
// bounds, a matrix whose columns are no multiple of 32 (q4 falls back to
// int8), a 4-d matrix, vectors, a scalar and an all-zero matrix.
func synthModel() []synthTensor {
	rng := rand.New(rand.NewPCG(7, 8))
	zero := synth(rng, "zero.weight", KindMatrix, 8, 64)
	clear(zero.vals)
	return []synthTensor{
		synth(rng, "token_embedding.weight", KindMatrix, 1000, 64),
		synth(rng, "a.weight", KindMatrix, 96, 64),
		synth(rng, "a.bias", KindVector, 96),
		synth(rng, "stem.weight", KindMatrix, 16, 27),
		synth(rng, "conv.weight", KindMatrix, 8, 4, 4, 4),
		synth(rng, "positional_embedding", KindVector, 77, 64),
		synth(rng, "logit_scale", KindVector, 1),
		synth(rng, "scalar", KindVector),
		zero,
	}
}

func sources(ts []synthTensor) []Source {
	out := make([]Source, len(ts))
	for i, t := range ts {
		out[i] = Source{Name: t.name, Shape: t.shape, Kind: t.kind, Float32: func() ([]float32, error) { return slices.Clone(t.vals), nil }}
	}
	return out
}

func write(t testing.TB, dir string, opt Options) *Result {
	t.Helper()
	res, err := Write(dir, testConfig(), tok(t), sources(synthModel()), opt)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// expected returns what a reader must get back for v stored in scheme s
// by the Rounding quantizer: the stored form computed without the writer.
func expected(v synthTensor, s Scheme, scale DType) []float32 {
	var round func(float32) float32
	if scale == DTypeF16 {
		round = func(f float32) float32 { return widenF16(half.ToF16(f)) }
	}
	rows, cols, _ := rowsCols(v.shape)
	switch s {
	case F16:
		out := make([]float32, len(v.vals))
		for i, f := range v.vals {
			out[i] = widenF16(half.ToF16(f))
		}
		return out
	case Int8:
		return QuantizeInt8(rows, cols, v.vals, round).Dequantize()
	case Q4:
		m, _ := kernels.QuantizeQ4Search(rows, cols, v.vals, round)
		return m.Dequantize()
	}
	return v.vals
}

// widenF16 is an independent binary16 decoder for the tests.
func widenF16(h uint16) float32 {
	sign := float32(1)
	if h&0x8000 != 0 {
		sign = -1
	}
	e, m := int(h>>10)&0x1f, float64(h&0x3ff)
	switch e {
	case 0:
		return sign * float32(math.Ldexp(m, -24))
	case 0x1f:
		if m != 0 {
			return float32(math.NaN())
		}
		return sign * float32(math.Inf(1))
	}
	return sign * float32(math.Ldexp(1+m/1024, e-15))
}

// TestRoundTrip writes the synthetic model in every scheme and shard size
// and reads every tensor back, exactly as each scheme stores it.
func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		quant     Scheme
		scale     DType
		shardSize int64
	}{
		{F32, "", 0},
		{F32, "", 64 << 10},
		{F16, "", 0},
		{F16, "", 16 << 10},
		{Int8, "", 0},
		{Int8, DTypeF16, 8 << 10},
		{Q4, "", 0},
		{Q4, DTypeF32, 4 << 10},
	} {
		t.Run(fmt.Sprintf("%s-%s-%d", tc.quant, tc.scale, tc.shardSize), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "bundle")
			opt := Options{Quant: tc.quant, ScaleDType: tc.scale, ShardSize: tc.shardSize}
			res := write(t, dir, opt)
			b, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if b.Tokenizer().VocabSize() != tok(t).VocabSize() || b.Manifest.Tokenizer.Vocab != nil {
				t.Errorf("tokenizer: %d tokens, stored vocab %v", b.Tokenizer().VocabSize(), b.Manifest.Tokenizer.Vocab != nil)
			}
			if !slices.Equal(b.Tokenizer().Encode("a photo of a cat."), tok(t).Encode("a photo of a cat.")) {
				t.Error("the bundle's tokenizer encodes differently")
			}
			split := 0
			for i, v := range synthModel() {
				entry := b.tensors[v.name]
				if len(entry.Parts) > 1 {
					split++
				}
				rows, cols, _ := rowsCols(v.shape)
				scheme := F32
				if v.kind == KindMatrix {
					scheme = tc.quant
				}
				if scheme == Q4 && cols%kernels.Q4Block != 0 {
					scheme = Int8
				}
				if entry.Scheme != scheme || res.Tensors[i].Scheme != scheme {
					t.Fatalf("%s stored as %s (stat %s), want %s", v.name, entry.Scheme, res.Tensors[i].Scheme, scheme)
				}
				if (entry.Fallback != "") != (scheme != tc.quant && v.kind == KindMatrix) {
					t.Errorf("%s: fallback %q", v.name, entry.Fallback)
				}
				scale := opt.StoredScaleDType()
				want := expected(v, scheme, scale)
				got, err := b.Tensor(v.name, v.shape...)
				if err != nil {
					t.Fatal(err)
				}
				if d, at := fixtures.MaxAbsDiff(got, want); d != 0 {
					t.Errorf("%s: differs by %g at %d", v.name, d, at)
				}
				rel := relErr(v.vals, want)
				if math.Abs(res.Tensors[i].RelError-rel) > 1e-9 {
					t.Errorf("%s: reported error %g, measured %g", v.name, res.Tensors[i].RelError, rel)
				}
				m, err := b.Matrix(v.name, rows, cols)
				if err != nil {
					t.Fatal(err)
				}
				if wantScheme := map[Scheme]kernels.Scheme{F32: kernels.SchemeF32, F16: kernels.SchemeF32, Int8: kernels.SchemeInt8, Q4: kernels.SchemeQ4}[scheme]; m.Scheme != wantScheme {
					t.Errorf("%s: matrix scheme %s, want %s", v.name, m.Scheme, wantScheme)
				}
				checkBlocks(t, b, entry, rows, cols, want)
			}
			if tc.shardSize != 0 && tc.shardSize < 64<<10 && split == 0 {
				t.Error("no tensor was split at a small shard size")
			}
		})
	}
}

// checkBlocks checks MatrixBlocks against the joined tensor want: one
// block per part, the same values in order, and int8 and q4 blocks
// aliasing their shard's bytes.
func checkBlocks(t *testing.T, b *Bundle, entry *TensorEntry, rows, cols int, want []float32) {
	t.Helper()
	blocks, err := b.MatrixBlocks(entry.Name, rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != len(entry.Parts) {
		t.Fatalf("%s: %d blocks for %d parts", entry.Name, len(blocks), len(entry.Parts))
	}
	var got []float32
	for i, blk := range blocks {
		got = append(got, blk.Dequantize()...)
		p := entry.Parts[i]
		stored := &b.shards[p.Shard][p.Data.Offsets[0]]
		switch {
		case blk.Q8 != nil && unsafe.Pointer(&blk.Q8[0]) != unsafe.Pointer(stored),
			blk.Q4 != nil && &blk.Q4[0] != stored:
			t.Errorf("%s: block %d is a copy, not the shard's bytes", entry.Name, i)
		}
	}
	if d, at := fixtures.MaxAbsDiff(got, want); d != 0 || len(got) != len(want) {
		t.Errorf("%s: blocks differ from the tensor by %g at %d (%d of %d values)", entry.Name, d, at, len(got), len(want))
	}
	if _, err := b.MatrixBlocks(entry.Name, rows+1, cols); err == nil {
		t.Errorf("%s: MatrixBlocks accepted a wrong shape", entry.Name)
	}
}

func relErr(orig, got []float32) float64 {
	var d, n float64
	for i := range orig {
		d += (float64(got[i]) - float64(orig[i])) * (float64(got[i]) - float64(orig[i]))
		n += float64(orig[i]) * float64(orig[i])
	}
	if n == 0 {
		return 0
	}
	return math.Sqrt(d / n)
}
