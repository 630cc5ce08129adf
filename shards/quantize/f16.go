package quantize

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/shards"
)

// F16Target is how far, at most, an f16 bundle's rounded matrices may move
// either tower's embeddings of the calibration inputs: max |Δ| as a
// fraction of the embeddings' largest magnitude. It is a quarter of the
// fixtures' tolerance (1e-4·max|golden|), leaving room for inputs the
// calibration did not see.
const F16Target = 0.25e-4

// F16Plan is an shards.F16Policy: it keeps f32 the matrices whose rounding
// to binary16 PlanF16 measured as moving the embeddings past F16Target.
type F16Plan struct {
	keep map[string]string // name → why it is kept f32
	// Rounded lists the matrices the plan lets f16 round, and Kept those
	// it keeps f32, in model order.
	Rounded, Kept []string
	// Towers is the measured error (see F16Target) of each tower's
	// embeddings, image then text, with the rounded matrices rounded.
	Towers [2]float64
}

// KeepF32 implements shards.F16Policy. A matrix the plan has not measured
// (one exact says binary16 holds, but that it does not) is kept f32.
func (p *F16Plan) KeepF32(name string) string {
	if why, ok := p.keep[name]; ok {
		return why
	}
	if !slices.Contains(p.Rounded, name) {
		return "kept f32: binary16 does not hold its values and calibration did not measure it"
	}
	return ""
}

// PlanF16 measures, for an f16 bundle of the float32 model w (config cfg,
// run on backend b; sot and eot are the tokenizer's special ids), which
// matrices binary16 cannot hold exactly may be rounded. exact names the
// matrices the writer stores exactly although their float32 values are
// not binary16 (row-scaled ones, see shards.Source.RowScaled). It rounds
// matrices in order of least measured error per byte saved (one role of a
// few neighbouring blocks at a time in deep stacks, see Plan.units), each
// only if the tower's embeddings, measured again with it rounded, stay
// within F16Target of the float32 model's.
func PlanF16(cfg clip.Config, w clip.Weights, b kernels.Backend, sot, eot int, exact func(name string) bool, opt Options) (*F16Plan, error) {
	cfg.Normalize()
	opt.Images = cmp.Or(opt.Images, max(8, min(32, (evalRows+imageTokens(cfg)-1)/imageTokens(cfg))))
	opt.Texts = cmp.Or(opt.Texts, DefaultTexts)
	cache := &cachedWeights{Weights: w, tensors: map[string][]float32{}, matrices: map[string]*kernels.Matrix{}}
	ref, err := clip.Build(cfg, cache, b)
	if err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	// The calibration inputs (texts at full length), at least 8 images or
	// about evalRows image tokens by default: f16 needs no statistics, so
	// they serve to measure, and each measurement runs one tower on them.
	in := newInputs(calibrationSeed, cfg, sot, eot, opt.Images, opt.Texts, 0)
	want, err := in.embed(ref)
	if err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	ev := &evaluator{cfg: cfg, cache: cache, b: b, in: in, want: want}
	p := &F16Plan{keep: map[string]string{}}
	// The candidates, grouped as for int8 and q4.
	plan := &Plan{}
	rounded := map[string]*kernels.Matrix{}
	for _, name := range cache.order {
		m := cache.matrices[name]
		if shards.F16Exact(m.F32) || exact(name) {
			continue
		}
		plan.Report = append(plan.Report, Entry{Name: name})
		rounded[name] = roundF16(m)
	}
	us := plan.units()
	alone := make(map[*unit]float64, len(us))
	for _, u := range us {
		mix := map[string]*kernels.Matrix{}
		for _, i := range u.members {
			name := plan.Report[i].Name
			mix[name] = rounded[name]
			u.bytes += 2 * int64(len(rounded[name].F32)) // saved: 4 → 2 bytes a value
		}
		e, err := ev.maxRelError(mix, u.tower)
		if err != nil {
			return nil, err
		}
		alone[u] = e
	}
	perByte := func(u *unit) float64 { return alone[u] / float64(u.bytes) }
	slices.SortStableFunc(us, func(a, b *unit) int { return cmp.Compare(perByte(a), perByte(b)) })
	chosen := map[string]*kernels.Matrix{}
	for _, u := range us {
		// A unit past the target on its own is kept without measuring it
		// again with the others rounded.
		e := alone[u]
		if e <= F16Target {
			mix := maps.Clone(chosen)
			for _, i := range u.members {
				name := plan.Report[i].Name
				mix[name] = rounded[name]
			}
			var err error
			if e, err = ev.maxRelError(mix, u.tower); err != nil {
				return nil, err
			}
			if e <= F16Target {
				chosen, p.Towers[u.tower] = mix, e
				continue
			}
		}
		for _, i := range u.members {
			name := plan.Report[i].Name
			p.keep[name] = fmt.Sprintf("kept f32: rounded to f16 it would move the %s embeddings by %.2g of their largest value on the calibration inputs (at most %.2g)",
				[]string{"image", "text"}[u.tower], e, F16Target)
		}
	}
	for _, e := range plan.Report {
		if _, ok := p.keep[e.Name]; ok {
			p.Kept = append(p.Kept, e.Name)
		} else {
			p.Rounded = append(p.Rounded, e.Name)
		}
	}
	return p, nil
}

// roundF16 returns m with its values rounded to binary16, as an f16
// bundle's reader gets them back.
func roundF16(m *kernels.Matrix) *kernels.Matrix {
	vals := make([]float32, len(m.F32))
	for i, v := range m.F32 {
		vals[i] = shards.RoundF16(v)
	}
	return kernels.NewMatrix(m.Rows, m.Cols, vals)
}

// maxRelError returns max |got − want| / max |want| over one tower's
// embeddings (0 image, 1 text) with the matrices m in place: the form of
// the fixtures' tolerance.
func (ev *evaluator) maxRelError(m map[string]*kernels.Matrix, tower int) (float64, error) {
	got, err := ev.in.embedTower(mustBuild(ev.cfg, ev.cache, m, ev.b), tower)
	if err != nil {
		return 0, fmt.Errorf("quantize: %w", err)
	}
	var d, top float64
	for i, w := range ev.want[tower] {
		d = max(d, abs(float64(got[i])-float64(w)))
		top = max(top, abs(float64(w)))
	}
	if top == 0 {
		return d, nil
	}
	return d / top, nil
}

func abs(x float64) float64 { return max(x, -x) }

var _ shards.F16Policy = (*F16Plan)(nil)
