package quantize

import (
	"slices"
	"strings"
	"testing"

	"github.com/clipwasm/clipwasm/convert"
	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/kernels/purego"
)

// TestPlanF16 plans f16 bundles of two fixtures: vit_tiny, whose matrices
// are binary16 in its checkpoint but for the float32 token table, and
// hf_tiny_quickgelu, all float32. Every inexact matrix is either rounded
// or kept f32 with a reason, the towers stay within F16Target, and a
// matrix the plan never saw is kept.
func TestPlanF16(t *testing.T) {
	fixtures.Require(t)
	for _, tc := range []struct {
		path       []string
		candidates int    // matrices binary16 does not hold
		kept       string // a matrix that must be kept f32
	}{
		{[]string{"openai", "vit_tiny", "vit_tiny.state_dict.pt"}, 1, "token_embedding.weight"},
		{[]string{"hf", "hf_tiny_quickgelu"}, 20, "text_projection.weight"},
	} {
		t.Run(tc.path[1], func(t *testing.T) {
			m, err := convert.Open(fixtures.Path(tc.path...))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			const sot, eot = 49406, 49407
			p, err := PlanF16(m.Config, m, purego.New(0), sot, eot, func(string) bool { return false }, Options{Images: 4, Texts: 8})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("rounded %d, kept %d; towers %.3g", len(p.Rounded), len(p.Kept), p.Towers)
			if n := len(p.Rounded) + len(p.Kept); n != tc.candidates {
				t.Errorf("%d matrices planned, want %d", n, tc.candidates)
			}
			for _, e := range p.Towers {
				if e > F16Target {
					t.Errorf("tower error %g over %g", e, F16Target)
				}
			}
			for _, name := range p.Rounded {
				if why := p.KeepF32(name); why != "" {
					t.Errorf("%s rounded, yet kept: %q", name, why)
				}
			}
			for _, name := range p.Kept {
				if why := p.KeepF32(name); !strings.HasPrefix(why, "kept f32: ") {
					t.Errorf("%s kept: why %q", name, why)
				}
			}
			if !slices.Contains(p.Kept, tc.kept) {
				t.Errorf("%s not kept f32", tc.kept)
			}
			if why := p.KeepF32("no.such.weight"); why == "" {
				t.Error("a matrix the plan did not measure is rounded")
			}
		})
	}
}
