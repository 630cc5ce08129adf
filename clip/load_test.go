package clip_test

import (
	"slices"
	"sort"
	"testing"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/convert"
	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/purego"
)

// TestBadInputsToEncoders checks the encoders refuse malformed batches.
func TestBadInputsToEncoders(t *testing.T) {
	fixtures.Require(t)
	m, err := convert.Load(fixtures.Path("openai", "vit_tiny", "vit_tiny.state_dict.pt"), purego.New(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.EncodeImage(make([]float32, 3*32*32+1), 1); err == nil {
		t.Error("wrong image size: no error")
	}
	if _, err := m.EncodeImage(nil, 0); err == nil {
		t.Error("no images: no error")
	}
	for name, rows := range map[string][][]int{
		"empty batch": nil,
		"empty row":   {{}},
		"too long":    {make([]int, 78)},
		"negative id": {{49406, -1, 49407}},
		"id too big":  {{49406, 49408, 49407}},
	} {
		if _, err := m.EncodeText(rows); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestTextPadding checks that zero padding is optional: a row cut after its
// EOT encodes the same as the padded row.
func TestTextPadding(t *testing.T) {
	fixtures.Require(t)
	m, err := convert.Load(fixtures.Path("openai", "rn_tiny", "rn_tiny.jit.pt"), purego.New(0))
	if err != nil {
		t.Fatal(err)
	}
	rows := rowsOf(fixtures.LoadNpy(t, "openai", "rn_tiny", "tokens.npy"))
	var cut [][]int
	for _, r := range rows {
		cut = append(cut, r[:slices.Index(r, slices.Max(r))+1])
	}
	got, err := m.EncodeText(cut)
	if err != nil {
		t.Fatal(err)
	}
	fixtures.AssertClose(t, "unpadded text features", got, fixtures.LoadNpy(t, "openai", "rn_tiny", "text_features.npy").F32, rel)
}

func TestNamedModelsListed(t *testing.T) {
	names := clip.NamedModels()
	if !sort.StringsAreSorted(names) {
		t.Error("NamedModels not sorted")
	}
	for _, n := range []string{"RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-L/14@336px"} {
		if _, err := clip.Named(n); err != nil {
			t.Error(err)
		}
	}
	if _, err := clip.Named("ViT-Z/99"); err == nil {
		t.Error("unknown name: no error")
	}
}

// TestTextGroupsMatchOneBatch: EncodeText runs rows in length groups; a
// Trace forces one batch. Mixed lengths (fixture rows cut short at every
// length, in a shuffled order) must give the same embeddings both ways.
func TestTextGroupsMatchOneBatch(t *testing.T) {
	fixtures.Require(t)
	m, err := convert.Load(fixtures.Path("openai", "vit_tiny", "vit_tiny.state_dict.pt"), purego.New(0))
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]int
	for _, row := range rowsOf(fixtures.LoadNpy(t, "openai", "vit_tiny", "tokens.npy")) {
		eot := slices.Index(row, slices.Max(row))
		for cut := 1; cut <= eot; cut += 3 {
			rows = append(rows, append(slices.Clone(row[:cut]), row[eot]))
		}
		rows = append(rows, row)
	}
	for i := range rows { // a fixed shuffle: long and short rows interleaved
		j := (i * 7) % len(rows)
		rows[i], rows[j] = rows[j], rows[i]
	}
	grouped, err := m.EncodeText(rows)
	if err != nil {
		t.Fatal(err)
	}
	m.Trace = func(string, []float32, []int) {}
	batch, err := m.EncodeText(rows)
	if err != nil {
		t.Fatal(err)
	}
	// Not bit for bit: the backend's GEMM blocking depends on the row
	// count, so sums round differently (measured 2e-6 of max on purego).
	fixtures.AssertClose(t, "grouped vs one batch", grouped, batch, 1e-5)
}

// blockWeights hands out the token table in blocks of the given row counts
// (clip.RowBlocks), the rest as its inner weights do.
type blockWeights struct {
	*convert.Model
	rows []int
}

func (w blockWeights) MatrixBlocks(name string, rows, cols int) ([]*kernels.Matrix, error) {
	m, err := w.Matrix(name, rows, cols)
	if err != nil {
		return nil, err
	}
	var blocks []*kernels.Matrix
	at := 0
	for _, n := range w.rows {
		blocks = append(blocks, kernels.NewMatrix(n, cols, m.F32[at*cols:(at+n)*cols]))
		at += n
	}
	return blocks, nil
}

// TestTokenTableInBlocks checks that a token table handed out in blocks of
// rows (as a bundle's shards split it) encodes the same as the whole
// table, and that blocks that do not add up are refused.
func TestTokenTableInBlocks(t *testing.T) {
	fixtures.Require(t)
	w, err := convert.Open(fixtures.Path("openai", "vit_tiny", "vit_tiny.state_dict.pt"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rows := rowsOf(fixtures.LoadNpy(t, "openai", "vit_tiny", "tokens.npy"))
	whole, err := clip.Build(w.Config, w, purego.New(1))
	if err != nil {
		t.Fatal(err)
	}
	want, err := whole.EncodeText(rows)
	if err != nil {
		t.Fatal(err)
	}
	vocab := w.Config.VocabSize
	// 49406 and 49407 (SOT, EOT) fall in the last block.
	split, err := clip.Build(w.Config, blockWeights{w, []int{1000, vocab - 1003, 3}}, purego.New(1))
	if err != nil {
		t.Fatal(err)
	}
	got, err := split.EncodeText(rows)
	if err != nil {
		t.Fatal(err)
	}
	if d, at := fixtures.MaxAbsDiff(got, want); d != 0 {
		t.Errorf("token table in blocks: differs by %g at %d", d, at)
	}
	if _, err := clip.Build(w.Config, blockWeights{w, []int{1000, vocab - 1001}}, purego.New(1)); err == nil {
		t.Error("blocks one row short: no error")
	}
}
