package quantize

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/clipwasm/clipwasm/convert"
	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/purego"
	"github.com/clipwasm/clipwasm/shards"
)

func normals(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// TestInverseFactor checks UᵀU·H = I for a dampened random Gram matrix,
// and that U is upper triangular.
func TestInverseFactor(t *testing.T) {
	const n, m = 40, 25 // fewer rows than columns: singular before dampening
	rng := rand.New(rand.NewPCG(1, 2))
	x := normals(rng, m*n)
	g := newGram(n, n)
	g.add(purego.New(1), x, m)
	const damp = 0.1
	u := inverseFactor(g.h, n, damp)
	var mean float64
	for i := 0; i < n; i++ {
		mean += g.h[i*n+i] / n
	}
	for i := 0; i < n; i++ {
		for j := 0; j < i; j++ {
			if u[i*n+j] != 0 {
				t.Fatalf("U[%d][%d] = %g below the diagonal", i, j, u[i*n+j])
			}
		}
		for j := 0; j < n; j++ {
			var s float64 // (UᵀU·H)[i][j]
			for k := 0; k < n; k++ {
				var uu float64
				for l := 0; l < n; l++ {
					uu += u[l*n+i] * u[l*n+k]
				}
				h := g.h[k*n+j]
				if k == j {
					h += damp * mean
				}
				s += uu * h
			}
			if want := float64(btoi(i == j)); math.Abs(s-want) > 1e-3 {
				t.Fatalf("(UᵀU·H)[%d][%d] = %g, want %g", i, j, s, want)
			}
		}
	}
	if z := inverseFactor(make([]float64, 9), 3, damp); !slices.Equal(z, []float64{1, 0, 0, 0, 1, 0, 0, 0, 1}) {
		t.Errorf("no inputs: %v, want the identity", z)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestGram checks the Gram blocks against a direct sum, with a last block
// shorter than the others.
func TestGram(t *testing.T) {
	const cols, block = 80, 32
	rng := rand.New(rand.NewPCG(3, 4))
	g := newGram(cols, block)
	var xs []float32
	for _, m := range []int{7, 13} {
		x := normals(rng, m*cols)
		g.add(purego.New(2), x, m)
		xs = append(xs, x...)
	}
	rows := len(xs) / cols
	if g.rows != rows {
		t.Errorf("rows %d, want %d", g.rows, rows)
	}
	for c := 0; c < cols; c += block {
		h, n := g.blockAt(c)
		if n != min(block, cols-c) {
			t.Fatalf("block at %d has %d columns", c, n)
		}
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				var want float64
				for r := 0; r < rows; r++ {
					want += float64(xs[r*cols+c+i]) * float64(xs[r*cols+c+j])
				}
				if math.Abs(h[i*n+j]-want) > 1e-4*(1+math.Abs(want)) {
					t.Fatalf("block %d [%d][%d] = %g, want %g", c, i, j, h[i*n+j], want)
				}
			}
		}
	}
}

// TestIm2col checks that the rows im2col takes are those a convolution
// multiplies: im2col·Wᵀ equals Conv2D's output at the sampled positions.
func TestIm2col(t *testing.T) {
	s := kernels.ConvShape{N: 2, H: 7, W: 6, InC: 3, OutC: 4, K: 3, Stride: 2, Pad: 1}
	rng := rand.New(rand.NewPCG(5, 6))
	src := normals(rng, s.N*s.H*s.W*s.InC)
	k := s.K * s.K * s.InC
	w := kernels.NewMatrix(s.OutC, k, normals(rng, s.OutC*k))
	oh, ow := s.OutSize()
	out := make([]float32, s.N*oh*ow*s.OutC)
	b := purego.New(1)
	b.Conv2D(out, src, s, w, nil)
	const stride = 3
	for i := 0; i < s.N; i++ {
		x, n := im2col(src, s, i, stride)
		if n != (oh*ow+stride-1)/stride {
			t.Fatalf("%d rows", n)
		}
		got := make([]float32, n*s.OutC)
		b.Linear(got, x, n, w, nil)
		for r := 0; r < n; r++ {
			p := r * stride
			want := out[(i*oh*ow+p)*s.OutC : (i*oh*ow+p+1)*s.OutC]
			for c, v := range got[r*s.OutC : (r+1)*s.OutC] {
				if math.Abs(float64(v-want[c])) > 1e-4 {
					t.Fatalf("image %d position %d channel %d: %g, want %g", i, p, c, v, want[c])
				}
			}
		}
	}
}

// outputError is ‖(W − Ŵ)·Xᵀ‖² / ‖W·Xᵀ‖² for x [m, cols].
func outputError(w []float32, q *kernels.Matrix, x []float32, m int) float64 {
	b := purego.New(1)
	rows, cols := q.Rows, q.Cols
	want, got := make([]float32, m*rows), make([]float32, m*rows)
	b.Linear(want, x, m, kernels.NewMatrix(rows, cols, w), nil)
	b.Linear(got, x, m, q, nil)
	return relSquaredError(want, got)
}

// TestGPTQ checks that GPTQ stores a matrix with less output error than
// rounding on inputs drawn like the calibration ones, in both schemes:
// the inputs share a few strong directions (as activations with a common
// mean do), which GPTQ steers the rounding error away from.
func TestGPTQ(t *testing.T) {
	const rows, cols, m = 48, 256, 400
	rng := rand.New(rand.NewPCG(7, 8))
	w := normals(rng, rows*cols)
	basis := normals(rng, 4*cols)
	draw := func(n int) []float32 {
		x := normals(rng, n*cols)
		for r := 0; r < n; r++ {
			for k := 0; k < 4; k++ {
				a := 3 * float32(rng.NormFloat64())
				for c := 0; c < cols; c++ {
					x[r*cols+c] += a * basis[k*cols+c]
				}
			}
		}
		return x
	}
	g := newGram(cols, gramBlock)
	g.add(purego.New(2), draw(m), m)
	held := draw(m) // inputs GPTQ did not see
	for _, q4 := range []bool{false, true} {
		q, err := gptq(purego.New(2), w, rows, cols, g, q4, damp, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Validate(); err != nil {
			t.Fatal(err)
		}
		var plain *kernels.Matrix
		if q4 {
			plain, _ = kernels.QuantizeQ4Search(rows, cols, w, nil)
		} else {
			plain = kernels.QuantizeInt8(rows, cols, w)
		}
		e, p := outputError(w, q, held, m), outputError(w, plain, held, m)
		t.Logf("q4 %v: output error GPTQ %.3g, rounding %.3g", q4, e, p)
		if e > 0.7*p {
			t.Errorf("q4 %v: GPTQ's output error %.3g is not well below rounding's %.3g", q4, e, p)
		}
	}
}

// TestCalibrate plans a fixture model's bundle: within the budget, with a
// reason on every matrix kept more precise, lowering both towers' error,
// deterministically; the plan refuses matrices it was not made for.
func TestCalibrate(t *testing.T) {
	fixtures.Require(t)
	m, err := convert.Open(fixtures.Path("hf", "hf_tiny_quickgelu"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const sot, eot = 49406, 49407
	wopt := shards.Options{Quant: shards.Q4}
	opt := Options{Budget: -1, Images: 4, Texts: 8}
	p, err := Calibrate(m.Config, m, purego.New(0), sot, eot, wopt, opt)
	if err != nil {
		t.Fatal(err)
	}
	var base, extra int64
	kept := 0
	for _, e := range p.Report {
		pl := p.matrices[e.Name]
		if e.Scheme != schemeOf(pl.m) {
			t.Errorf("%s: reported %s, planned %s", e.Name, e.Scheme, schemeOf(pl.m))
		}
		if e.Why != pl.why {
			t.Errorf("%s: reported why %q, planned %q", e.Name, e.Why, pl.why)
		}
		if e.Kept {
			kept++
			extra += e.Bytes
			base += p.bytes(pl.m, e.Scheme) - e.Bytes
			if !strings.HasPrefix(e.Why, "kept "+string(e.Scheme)) {
				t.Errorf("%s kept: why %q", e.Name, e.Why)
			}
		} else {
			base += p.bytes(pl.m, e.Scheme)
		}
		if !e.GPTQ && e.Name != "token_embedding.weight" {
			t.Errorf("%s: not rounded with GPTQ", e.Name)
		}
	}
	t.Logf("kept %d matrices, %d bytes over %d; towers %+v", kept, extra, base, p.Towers)
	if kept == 0 || float64(extra) > DefaultBudget(shards.Q4)*float64(base) {
		t.Errorf("kept %d matrices for %d bytes, budget %g of %d", kept, extra, DefaultBudget(shards.Q4), base)
	}
	for _, tw := range p.Towers {
		if !(tw.Planned < tw.Base) {
			t.Errorf("%s tower: planned error %g, not below %g", tw.Name, tw.Planned, tw.Base)
		}
	}

	again, err := Calibrate(m.Config, m, purego.New(1), sot, eot, wopt, opt)
	if err != nil {
		t.Fatal(err)
	}
	for name, pl := range p.matrices {
		a, b := pl.m, again.matrices[name].m
		if !slices.Equal(a.Q4, b.Q4) || !slices.Equal(a.Q8, b.Q8) || !slices.Equal(a.Scales, b.Scales) {
			t.Fatalf("%s differs between runs with 0 and 1 threads", name)
		}
	}

	name := p.Report[0].Name
	vals := slices.Clone(p.matrices[name].m.Dequantize())
	req := shards.MatrixRequest{Name: name, Rows: 1, Cols: len(vals), Values: vals, Scheme: shards.Q4}
	if _, _, err := p.Quantize(req); err == nil || !strings.Contains(err.Error(), "other values") {
		t.Errorf("other values: err = %v", err)
	}
	req.Name = "nonesuch.weight"
	if _, _, err := p.Quantize(req); err == nil {
		t.Error("unknown matrix: no error")
	}
	if _, err := Calibrate(m.Config, m, purego.New(0), sot, eot, shards.Options{Quant: shards.F16}, opt); err == nil {
		t.Error("f16: no error")
	}
}

// TestUnits checks the grouping of matrices for measurement: one per unit
// in stacks of up to maxDepthGroups blocks, a role in two neighbouring
// blocks in a stack of 24.
func TestUnits(t *testing.T) {
	p := &Plan{}
	for i := 0; i < 24; i++ {
		for _, role := range []string{"attn.in_proj_weight", "mlp.c_fc.weight"} {
			p.Report = append(p.Report, Entry{Name: fmt.Sprintf("visual.transformer.resblocks.%d.%s", i, role)})
		}
	}
	for i := 0; i < 12; i++ {
		p.Report = append(p.Report, Entry{Name: fmt.Sprintf("transformer.resblocks.%d.mlp.c_fc.weight", i)})
	}
	for _, n := range []string{"visual.proj.weight", "visual.layer1.0.downsample.weight", "visual.conv1.weight", "token_embedding.weight"} {
		p.Report = append(p.Report, Entry{Name: n})
	}
	var got []string
	for _, u := range p.units() {
		var names []string
		for _, i := range u.members {
			names = append(names, strings.TrimPrefix(p.Report[i].Name, "visual.transformer.resblocks."))
		}
		got = append(got, fmt.Sprintf("%d:%s", u.tower, strings.Join(names, "+")))
	}
	want := []string{"0:0.attn.in_proj_weight+1.attn.in_proj_weight", "0:0.mlp.c_fc.weight+1.mlp.c_fc.weight"}
	if !slices.Equal(got[:2], want) || len(got) != 24+12+4 {
		t.Errorf("units %q", got)
	}
	if last := got[len(got)-5:]; !slices.Equal(last, []string{"1:transformer.resblocks.11.mlp.c_fc.weight", "0:visual.proj.weight",
		"0:visual.layer1.0.downsample.weight", "0:visual.conv1.weight", "1:token_embedding.weight"}) {
		t.Errorf("last units %q", last)
	}
}
