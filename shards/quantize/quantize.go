// Package quantize stores a model's matrices for shards.Write with less
// damage to its embeddings than rounding each weight on its own.
//
// Calibrate runs the float32 model on random calibration inputs and
// records, for every matrix, the Gram matrix of the inputs it multiplies.
// It quantizes each matrix with GPTQ (Frantar et al., 2022) on those
// statistics, which moves each column's rounding error onto the columns not
// yet rounded where the inputs make it cancel; a matrix without recorded
// inputs (the token-embedding table, which is looked up, not multiplied)
// is rounded with the least-squares q4 scales. Then it measures, one
// matrix at a time (in very deep towers, one role in a few neighbouring
// blocks at a time), how much storing it a step more precisely (int8
// under q4, f32 under int8) brings the embeddings of a separate set of
// random inputs closer to the float32 model's, and keeps the matrices that
// gain the most per byte a step more precise, within a byte budget. The
// resulting Plan is a shards.Quantizer; each kept matrix's manifest entry
// says why its scheme differs from the requested one.
//
// The inputs come from fixed seeds and the result does not depend on the
// number of threads; it may differ between backends, whose float32
// arithmetic differs in the last bits.
//
// The calibration inputs are random (noise images, pictures of random
// shapes, random token rows), so the statistics are those of the model's
// response to them. On the random-weight models of the tests that is close
// to what the model sees; on a trained model, whose real inputs are far
// from random, the dampening (see gptq) keeps GPTQ from trusting the
// inputs' statistics too far, and the sensitivity ranking mostly reflects
// each matrix's place in the network.
package quantize

import (
	"cmp"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"math"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"unsafe"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/shards"
)

// Options control Calibrate.
type Options struct {
	// Budget is how many bytes, as a fraction of the bytes of the matrices
	// stored in the requested scheme, the matrices kept a step more precise
	// may add. Zero keeps every matrix in the requested scheme (GPTQ
	// still applies); a negative value means DefaultBudget.
	Budget float64
	// Images and Texts are the numbers of calibration inputs; zero means
	// DefaultImages(cfg) and DefaultTexts.
	Images, Texts int
}

// DefaultTexts is the default number of calibration texts.
const DefaultTexts = 16

// DefaultImages returns the default number of calibration images for a
// model: enough for about calibrationRows rows of input to every matrix
// of the image tower (one per image token), from 16 to 64. On a full-size
// random ViT-B/32, 8 images (400 rows) gave a lowest image cosine of
// 0.98999 at q4, 16 0.99129, 24 0.99237, 32 0.99230; on ViT-L/14, 5
// images (1285 rows) 0.98803, 16 0.99178: the tokens of one image are
// alike, so rows from few images count for less.
func DefaultImages(cfg clip.Config) int {
	return max(16, min(64, (calibrationRows+imageTokens(cfg)-1)/imageTokens(cfg)))
}

// imageTokens is the number of tokens of one image in the image tower's
// transformer or attention pool.
func imageTokens(cfg clip.Config) int {
	g := cfg.ImageResolution / 32
	if cfg.IsViT() {
		g = cfg.ImageResolution / cfg.VisionPatchSize
	}
	return g*g + 1
}

// DefaultBudget returns the budget for a requested scheme: about what a
// full-size ViT-B/32 can spend and stay within the browser's bounds on its
// bundle, manifest included: q4 ≤ 95 MB (87.4 MB rounded, 94.6 MB
// calibrated), int8 ≤ 160 MB (154.2 MB rounded, 157.4 MB calibrated).
func DefaultBudget(quant shards.Scheme) float64 {
	if quant == shards.Q4 {
		return 0.085
	}
	return 0.025
}

// Parameters of the method, chosen by measuring on the fixture models and
// on full-size random-weight models.
const (
	// gramBlock is the column block of the Hessian GPTQ uses (see gram).
	gramBlock = 128
	// damp is GPTQ's dampening as a fraction of the mean diagonal. The
	// usual 0.01 assumes hundreds of thousands of calibration rows; with a
	// few hundred, 0.3 did best on held-out inputs (ViT-B/32 cut to 4
	// layers, mean image and text cosine at q4: 0.9942, 0.9779; 0.03:
	// 0.9937, 0.9762; 1: 0.9937, 0.9776; rounding: 0.9836, 0.9653).
	damp = 0.3
	// calibrationRows is the number of image tokens DefaultImages aims at.
	calibrationRows = 1200
	// The sensitivity of each matrix is measured on images with about
	// evalRows tokens in all (at least two: a noise image and a picture)
	// and evalTexts texts of at most evalTokens tokens, drawn apart from the
	// calibration inputs. Both towers run once per matrix, so these are
	// small: a ViT-B/32 or a ViT-L/14 gets 2 images, the fixture ViT 6;
	// the texts are short, as captions are.
	evalRows   = 100
	evalTexts  = 8
	evalTokens = 24
)

// The seeds of the calibration and evaluation inputs.
var (
	calibrationSeed = [2]uint64{0x636c6970, 1}
	evaluationSeed  = [2]uint64{0x636c6970, 2}
)

// Plan is the stored form Calibrate chose for every matrix of a model. It
// implements shards.Quantizer for the options it was made with.
type Plan struct {
	opt      shards.Options
	matrices map[string]*planned
	// smooth is the smoothing its matrices were planned with (see
	// Sources), and Activations what was chosen for quantized activations.
	smooth      *smoothing
	Activations ActivationReport
	// Report lists what Calibrate measured, per matrix in model order.
	Report []Entry
	// Towers is the relative squared error of each tower's embeddings
	// (image, text) on the evaluation inputs with every matrix in the
	// requested scheme, and as planned.
	Towers [2]TowerError
}

// TowerError is Σ‖got − want‖² / Σ‖want‖² over one tower's evaluation
// embeddings, with every matrix in the requested scheme (Base) and as
// planned (Planned).
type TowerError struct {
	Name          string
	Base, Planned float64
}

// Entry is what Calibrate found for one matrix.
type Entry struct {
	Name   string
	Scheme shards.Scheme // as stored
	GPTQ   bool          // rounded with GPTQ (else to the nearest code)
	// Gain is how much storing the matrix a step more precisely lowers
	// its tower's error (see TowerError), and Bytes what it costs; for a
	// matrix measured with its neighbours (see Calibrate), the group's.
	Gain  float64
	Bytes int64
	// Kept says it was kept a step more precise; Why gives the reason for
	// a scheme other than the requested one.
	Kept bool
	Why  string
}

// planned is one matrix's stored form and the hash of the values it was
// made from. A matrix planned float32 is a stand-in (see stream): the
// bundle gets the values it is written from.
type planned struct {
	m    *kernels.Matrix
	why  string
	hash uint64
	gptq bool // quantized with GPTQ (else rounded)
}

// Quantize implements shards.Quantizer: it returns the stored form planned
// for the matrix, after checking that it was planned for these values.
func (p *Plan) Quantize(req shards.MatrixRequest) (*kernels.Matrix, string, error) {
	req, err := p.smoothRequest(req)
	if err != nil {
		return nil, "", err
	}
	e, ok := p.matrices[req.Name]
	if !ok {
		return nil, "", fmt.Errorf("quantize: no plan for matrix %q", req.Name)
	}
	if req.Scheme != p.opt.Quant {
		return nil, "", fmt.Errorf("quantize: matrix %q requested as %s, planned for %s", req.Name, req.Scheme, p.opt.Quant)
	}
	if hashValues(req.Values) != e.hash {
		return nil, "", fmt.Errorf("quantize: matrix %q has other values than it was planned for", req.Name)
	}
	if e.m.Scheme == kernels.SchemeF32 {
		return kernels.NewMatrix(req.Rows, req.Cols, req.Values), e.why, nil
	}
	return e.m, e.why, nil
}

// hashSeed keys hashValues; the hashes are only compared within a process.
var hashSeed = maphash.MakeSeed()

// hashValues hashes the bits of vals.
func hashValues(vals []float32) uint64 {
	return maphash.Bytes(hashSeed, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(vals))), 4*len(vals)))
}

// Calibrate plans how to store the matrices of the float32 model w (config
// cfg) in a bundle written with wopt, running the model on backend b. sot
// and eot are the tokenizer's start and end of text ids.
//
// It streams w (see Stream): the model runs with each float32 matrix read
// from w when it is used, and each matrix is quantized as soon as its
// inputs are known, so that what Calibrate holds is the plan (the
// quantized matrices), the token table, one float32 matrix and its Gram
// matrix at a time, and the activations of one tower on the calibration
// inputs, run as one batch. Each matrix is quantized on the inputs the
// float32 model gives it. (GPTQ's own order, each matrix on the inputs
// that the matrices before it give once quantized, did as well on the
// fixtures but for the tiny ResNet at q4, whose image tower's error rose
// from 0.031 to 0.047, leaving the budget no bytes for the text tower.)
func Calibrate(cfg clip.Config, w clip.Weights, b kernels.Backend, sot, eot int, wopt shards.Options, opt Options) (*Plan, error) {
	if wopt.Quant != shards.Int8 && wopt.Quant != shards.Q4 {
		return nil, fmt.Errorf("quantize: nothing to calibrate for %q (want int8 or q4)", wopt.Quant)
	}
	if opt.Budget < 0 {
		opt.Budget = DefaultBudget(wopt.Quant)
	}
	cfg.Normalize()
	opt.Images = cmp.Or(opt.Images, DefaultImages(cfg))
	opt.Texts = cmp.Or(opt.Texts, DefaultTexts)
	// The browser quantizes activations: smooth the LayerNorms' outliers
	// into the matrices they feed before anything is recorded.
	ap, err := prepareActivations(cfg, w, b, sot, eot, opt.Images, opt.Texts, wopt)
	if err != nil {
		return nil, err
	}
	w = ap.weights(w)
	s := newStream(b, w)
	// The vectors, read once and kept for the models built below.
	cache := &cachedWeights{Weights: s.weights(), tensors: map[string][]float32{}, matrices: map[string]*kernels.Matrix{}}
	ref, err := clip.Build(cfg, cache, s)
	if err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	ref.OneTextBatch = true // the recorder below quantizes each matrix at its one use
	evalImages := max(2, min(32, (evalRows+imageTokens(cfg)-1)/imageTokens(cfg)))
	eval := newInputs(evaluationSeed, cfg, sot, eot, evalImages, evalTexts, evalTokens)
	want, err := eval.embed(ref)
	if err = cmp.Or(err, s.Err()); err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}

	p := &Plan{opt: wopt, matrices: map[string]*planned{}}
	s.record = func(name string, m *kernels.Matrix, fill func(*gram)) (*kernels.Matrix, error) {
		if p.matrices[name] != nil {
			return nil, errors.New("multiplied twice in one calibration pass")
		}
		g := newGram(m.Cols, gramBlock)
		fill(g)
		q, why, err := p.quantize(b, m, g)
		if err != nil {
			return nil, err
		}
		p.matrices[name] = &planned{m: q, why: why, hash: hashValues(m.F32), gptq: true}
		return m, nil // the pass stays the float32 model's
	}
	calib := newInputs(calibrationSeed, cfg, sot, eot, opt.Images, opt.Texts, 0)
	if _, err := ref.EncodeImage(calib.images, calib.n); err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	if _, err := ref.EncodeText(calib.tokens); err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	s.record = nil
	if err := s.Err(); err != nil {
		return nil, err
	}
	base := map[string]*kernels.Matrix{}
	for _, name := range cache.order {
		pl := p.matrices[name]
		if pl == nil {
			// Only the token table is looked up rather than multiplied:
			// without inputs to weigh its errors, it is rounded.
			if name != tokenTable {
				return nil, fmt.Errorf("quantize: %s: the calibration passes did not use it", name)
			}
			m := cache.matrices[name]
			q, why, err := p.quantize(b, m, nil)
			if err != nil {
				return nil, fmt.Errorf("quantize: %s: %w", name, err)
			}
			pl = &planned{m: q, why: why, hash: hashValues(m.F32)}
			p.matrices[name] = pl
		}
		base[name] = pl.m
		p.Report = append(p.Report, Entry{Name: name, Scheme: schemeOf(pl.m), GPTQ: pl.gptq, Why: pl.why})
	}
	// The float32 token table is not needed again unless it is measured a
	// step more precise: it is read anew then.
	delete(cache.matrices, tokenTable)
	ev := &evaluator{cfg: cfg, cache: cache, b: s, in: eval, want: want}
	us := p.units()
	if err := p.measure(ev, s, base, us); err != nil {
		return nil, err
	}
	if err := p.choose(ev, s, us, opt.Budget); err != nil {
		return nil, err
	}
	for t := range p.Towers {
		if p.Towers[t].Planned, err = ev.towerError(p.stored(), t); err != nil {
			return nil, err
		}
	}
	if err := p.chooseActivations(ev, ap); err != nil {
		return nil, err
	}
	return p, nil
}

// quantize stores the float32 matrix m in the requested scheme: with GPTQ
// (on backend b) where g holds its inputs' statistics, else by rounding; a
// q4 matrix whose columns do not divide into blocks is stored int8.
func (p *Plan) quantize(b kernels.Backend, m *kernels.Matrix, g *gram) (*kernels.Matrix, string, error) {
	q4 := p.opt.Quant == shards.Q4 && m.Cols%kernels.Q4Block == 0
	why := ""
	if p.opt.Quant == shards.Q4 && !q4 {
		why = shards.Q4Fallback(m.Cols)
	}
	if g == nil {
		q, _, err := shards.Rounding{}.Quantize(shards.MatrixRequest{Rows: m.Rows, Cols: m.Cols, Values: m.F32, Scheme: p.opt.Quant, RoundScale: p.opt.RoundScale})
		return q, why, err
	}
	q, err := gptq(b, m.F32, m.Rows, m.Cols, g, q4, damp, p.opt.RoundScale)
	return q, why, err
}

// upgrade returns the matrix name, stored as q, a step more precise: int8
// (rounded from its float32 values, read from s) for q4, the float32
// values (as the streamed model holds them) for int8.
func (p *Plan) upgrade(s *stream, name string, q *kernels.Matrix) (*kernels.Matrix, error) {
	if schemeOf(q) == shards.Q4 {
		m, err := s.src.Matrix(name, q.Rows, q.Cols)
		if err != nil {
			return nil, fmt.Errorf("quantize: %w", err)
		}
		return shards.QuantizeInt8(m.Rows, m.Cols, m.F32, p.opt.RoundScale), nil
	}
	return s.matrix(name, q.Rows, q.Cols)
}

// unit is a set of matrices measured and kept together (see units).
type unit struct {
	members []int // indices into Plan.Report
	tower   int
	gain    float64
	bytes   int64
}

// blockName splits the name of a matrix inside a numbered block of a stack
// ("visual.transformer.resblocks.7.mlp.c_fc.weight",
// "visual.layer3.4.conv2.weight") into the stack, the block's index and
// the matrix's role in the block.
var blockName = regexp.MustCompile(`^(.*\.)(\d+)\.([a-z_].*)$`)

// units groups the plan's matrices for measurement: each matrix is its
// own unit, except in a stack of more than maxDepthGroups blocks, where
// the matrices of one role in a run of consecutive blocks form a unit, so
// that each tower runs at most about 4·maxDepthGroups times. A role's
// sensitivity changes slowly from block to block (on a full-size random
// ViT-B/32, the text tower's in_proj gains 0.0027, 0.0021, 0.0012, 0.0007
// in its first four blocks), and a ViT-L/14's measurements would otherwise
// take most of its conversion.
func (p *Plan) units() []*unit {
	depth := map[string]int{}
	for _, e := range p.Report {
		if m := blockName.FindStringSubmatch(e.Name); m != nil {
			i, _ := strconv.Atoi(m[2])
			depth[m[1]] = max(depth[m[1]], i+1)
		}
	}
	var us []*unit
	byKey := map[string]*unit{}
	for i, e := range p.Report {
		key := e.Name
		if m := blockName.FindStringSubmatch(e.Name); m != nil {
			b, _ := strconv.Atoi(m[2])
			run := (depth[m[1]] + maxDepthGroups - 1) / maxDepthGroups
			key = fmt.Sprintf("%s%d/%s", m[1], b/run, m[3])
		}
		u := byKey[key]
		if u == nil {
			u = &unit{tower: towerOf(e.Name)}
			byKey[key] = u
			us = append(us, u)
		}
		u.members = append(u.members, i)
	}
	return us
}

// maxDepthGroups bounds the groups of consecutive blocks a stack's
// matrices are measured in.
const maxDepthGroups = 12

// measure sets the towers' Base error and each unit's gain and bytes, and
// its members' Gain and Bytes: every matrix in its base form but the
// unit's, made a step more precise (read from s).
func (p *Plan) measure(ev *evaluator, s *stream, base map[string]*kernels.Matrix, us []*unit) error {
	p.Towers[0].Name, p.Towers[1].Name = "image", "text"
	for t := range p.Towers {
		var err error
		if p.Towers[t].Base, err = ev.towerError(base, t); err != nil {
			return err
		}
	}
	mix := maps.Clone(base)
	for _, u := range us {
		for _, i := range u.members {
			e := &p.Report[i]
			up, err := p.upgrade(s, e.Name, base[e.Name])
			if err != nil {
				return err
			}
			u.bytes += p.bytes(up, schemeOf(up)) - p.bytes(base[e.Name], e.Scheme)
			mix[e.Name] = up
		}
		got, err := ev.towerError(mix, u.tower)
		if err != nil {
			return err
		}
		u.gain = p.Towers[u.tower].Base - got
		for _, i := range u.members {
			e := &p.Report[i]
			mix[e.Name] = base[e.Name]
			e.Gain, e.Bytes = u.gain, u.bytes
		}
	}
	return nil
}

// choose keeps units a step more precise within the budget. While bytes
// remain, it serves the tower with the larger error. It takes that tower's
// unit with the best measured gain per byte that still fits, and measures
// the tower again: a unit that did not lower the error, with the others
// already kept, is put back (gains measured one at a time do not simply
// add up). When the tower has no such unit left, it takes, without
// measuring, the units put back or measured as gaining nothing, largest
// gain first: a step more precise cannot hurt in expectation, and such
// measurements on a few random inputs are noise, up to about the largest
// gain measured in the tower. (The Hugging Face fixture measures a 7.7 KB
// text matrix as raising its text error by 0.00094, a quarter of the
// tower's largest gain; kept int8, it lifts the text cosine on the
// fixture's captions from 0.9870 to 0.9962.) A loss larger than any gain
// is no noise: the tiny ResNet's image tower, whose attention pool turns
// small changes into large ones, measures losses up to six times its
// largest gain, and taking those starves the text tower. A tower with
// nothing left that fits drops out. The matrices a step more precise are
// read from s.
func (p *Plan) choose(ev *evaluator, s *stream, us []*unit, budget float64) error {
	var total int64
	for _, e := range p.Report {
		total += p.bytes(p.matrices[e.Name].m, e.Scheme)
	}
	left := int64(budget * float64(total))
	cur := [2]float64{p.Towers[0].Base, p.Towers[1].Base}
	kept, tried := map[*unit]bool{}, map[*unit]bool{}
	// keep stores u's matrices a step more precise and returns how to
	// undo it.
	keep := func(u *unit, why string) (undo func(), err error) {
		var undos []func()
		undo = func() {
			for _, f := range undos {
				f()
			}
			kept[u] = false
			left += u.bytes
		}
		kept[u] = true
		left -= u.bytes
		for _, i := range u.members {
			e, pl := &p.Report[i], p.matrices[p.Report[i].Name]
			old, oldPl := *e, *pl
			undos = append(undos, func() { *e, *pl = old, oldPl })
			up, err := p.upgrade(s, e.Name, pl.m)
			if err != nil {
				undo()
				return nil, err
			}
			e.Scheme, e.Kept = schemeOf(up), true
			e.Why = fmt.Sprintf("kept %s %s: %s raised the %s embeddings' relative squared error by %.2g (of %.2g with every matrix %s)",
				e.Scheme, why, old.Scheme, p.Towers[u.tower].Name, u.gain, p.Towers[u.tower].Base, p.opt.Quant)
			if len(u.members) > 1 {
				e.Why += fmt.Sprintf(", measured with its %d neighbours of the same role", len(u.members)-1)
			}
			pl.m, pl.why = up, e.Why
		}
		return undo, nil
	}
	// best returns the unit of tower t that fits with the highest score
	// among those ok accepts, or nil.
	best := func(t int, ok func(*unit) bool, score func(*unit) float64) *unit {
		var b *unit
		for _, u := range us {
			if u.tower == t && !kept[u] && u.bytes <= left && ok(u) && (b == nil || score(u) > score(b)) {
				b = u
			}
		}
		return b
	}
	perByte := func(u *unit) float64 { return u.gain / float64(max(u.bytes, 1)) }
	gain := func(u *unit) float64 { return u.gain }
	// The largest gain measured in each tower: the scale of the
	// measurements' noise there.
	var top [2]float64
	for _, u := range us {
		top[u.tower] = max(top[u.tower], u.gain)
	}
	open := [2]bool{true, true}
	for open[0] || open[1] {
		t := 0
		if !open[0] || open[1] && cur[1] > cur[0] {
			t = 1
		}
		if u := best(t, func(u *unit) bool { return !tried[u] && u.gain > 0 }, perByte); u != nil {
			tried[u] = true
			undo, err := keep(u, "for its sensitivity")
			if err != nil {
				return err
			}
			now, err := ev.towerError(p.stored(), t)
			if err != nil {
				return err
			}
			if now >= cur[t] {
				undo()
			} else {
				cur[t] = now
			}
		} else if u := best(t, func(u *unit) bool { return u.gain >= -top[t] }, gain); u != nil {
			if _, err := keep(u, "as the budget allowed"); err != nil {
				return err
			}
		} else {
			open[t] = false
		}
	}
	// Both towers served, what is left goes to the units measured as
	// losing more than any gain, largest gain first: on a model that
	// responds so unevenly the measurement says little, and every matrix
	// a step more precise is the next scheme's model. (The tiny ResNet's
	// image tower reaches the q4 bar on the fixture's pictures only so.)
	for t := range p.Towers {
		for u := best(t, func(*unit) bool { return true }, gain); u != nil; u = best(t, func(*unit) bool { return true }, gain) {
			if _, err := keep(u, "as the budget allowed"); err != nil {
				return err
			}
		}
	}
	return nil
}

// stored returns the matrices as planned so far.
func (p *Plan) stored() map[string]*kernels.Matrix {
	m := make(map[string]*kernels.Matrix, len(p.matrices))
	for name, e := range p.matrices {
		m[name] = e.m
	}
	return m
}

// bytes is what m takes in a bundle stored in scheme s, scales included.
func (p *Plan) bytes(m *kernels.Matrix, s shards.Scheme) int64 {
	n := int64(m.Rows) * int64(m.Cols)
	scale := int64(4)
	if p.opt.StoredScaleDType() == shards.DTypeF16 {
		scale = 2
	}
	switch s {
	case shards.Q4:
		return n/2 + n/kernels.Q4Block*scale
	case shards.Int8:
		return n + int64(m.Rows)*scale
	}
	return 4 * n
}

// schemeOf is the bundle scheme of a stored matrix.
func schemeOf(m *kernels.Matrix) shards.Scheme {
	switch m.Scheme {
	case kernels.SchemeQ4:
		return shards.Q4
	case kernels.SchemeInt8:
		return shards.Int8
	}
	return shards.F32
}

// towerOf is 0 for the image tower's matrices, 1 for the text tower's.
func towerOf(name string) int {
	if strings.HasPrefix(name, "visual.") {
		return 0
	}
	return 1
}

// relSquaredError is Σ(got − want)² / Σwant².
func relSquaredError(want, got []float32) float64 {
	var d, n float64
	for i, w := range want {
		d += (float64(got[i]) - float64(w)) * (float64(got[i]) - float64(w))
		n += float64(w) * float64(w)
	}
	if n == 0 {
		return 0
	}
	return d / n
}

// cachedWeights reads each tensor of Weights once, remembering the order
// in which matrices were first asked for (the model's order), and hands
// out the same float32 data to every model built on it.
type cachedWeights struct {
	clip.Weights
	tensors  map[string][]float32
	matrices map[string]*kernels.Matrix
	order    []string
}

func (c *cachedWeights) Tensor(name string, shape ...int) ([]float32, error) {
	if t, ok := c.tensors[name]; ok {
		return t, nil
	}
	t, err := c.Weights.Tensor(name, shape...)
	if err == nil {
		c.tensors[name] = t
	}
	return t, err
}

func (c *cachedWeights) Matrix(name string, rows, cols int) (*kernels.Matrix, error) {
	if m, ok := c.matrices[name]; ok {
		return m, nil
	}
	m, err := c.Weights.Matrix(name, rows, cols)
	if err != nil {
		return nil, err
	}
	if m.Scheme != kernels.SchemeF32 {
		return nil, fmt.Errorf("matrix %q is %s: calibration needs the float32 model", name, m.Scheme)
	}
	c.matrices[name] = m
	c.order = append(c.order, name)
	return m, nil
}

// override serves the matrices in m instead of the cached ones.
type override struct {
	*cachedWeights
	m map[string]*kernels.Matrix
}

func (o override) Matrix(name string, rows, cols int) (*kernels.Matrix, error) {
	if m, ok := o.m[name]; ok {
		return m, nil
	}
	return o.cachedWeights.Matrix(name, rows, cols)
}

// mustBuild builds the model with the given matrices over the cached
// tensors. Building the same config from the same tensors succeeded
// already, so an error here is a bug.
func mustBuild(cfg clip.Config, c *cachedWeights, m map[string]*kernels.Matrix, b kernels.Backend) *clip.Model {
	model, err := clip.Build(cfg, override{c, m}, b)
	if err != nil {
		panic(fmt.Sprintf("quantize: rebuilding the model: %v", err))
	}
	return model
}

// evaluator measures models built from the cached float32 tensors with
// some matrices replaced against the float32 model, on its inputs.
type evaluator struct {
	cfg   clip.Config
	cache *cachedWeights
	b     kernels.Backend
	in    *inputs
	want  [2][]float32 // the float32 model's embeddings, per tower
}

// towerError returns the relative squared error of one tower's
// embeddings (0 image, 1 text) with the matrices m in place.
func (ev *evaluator) towerError(m map[string]*kernels.Matrix, tower int) (float64, error) {
	got, err := ev.in.embedTower(mustBuild(ev.cfg, ev.cache, m, ev.b), tower)
	if s, ok := ev.b.(*stream); ok && err == nil {
		err = s.Err()
	}
	if err != nil {
		return 0, fmt.Errorf("quantize: %w", err)
	}
	return relSquaredError(ev.want[tower], got), nil
}

// inputs are random model inputs: n normal images and rows of random
// tokens.
type inputs struct {
	images []float32
	n      int
	size   int // values per image
	tokens [][]int
}

func newInputs(seed [2]uint64, cfg clip.Config, sot, eot, images, texts, maxTokens int) *inputs {
	im, tok := RandomInputs(rand.New(rand.NewPCG(seed[0], seed[1])), cfg, sot, eot, images, texts, maxTokens)
	r := cfg.ImageResolution
	return &inputs{images: im, n: images, size: 3 * r * r, tokens: tok}
}

// embed returns the model's image and text embeddings of the inputs.
func (in *inputs) embed(m *clip.Model) ([2][]float32, error) {
	var out [2][]float32
	for t := range out {
		e, err := in.embedTower(m, t)
		if err != nil {
			return out, err
		}
		out[t] = e
	}
	return out, nil
}

// embedTower returns the embeddings of one tower (0 image, 1 text).
func (in *inputs) embedTower(m *clip.Model, tower int) ([]float32, error) {
	if tower == 0 {
		return m.EncodeImage(in.images, in.n)
	}
	return m.EncodeText(in.tokens)
}

// RandomInputs draws images, [images, 3, R, R] normalised with the
// config's mean and std, and texts token rows. Even-numbered images are
// standard normal noise; odd-numbered ones are scenes: a smooth gradient
// between two random colours, a few flat rectangles and disks in saturated
// colours, a little noise. The scenes matter: a ResNet's response to large
// flat areas and sharp edges is far more sensitive to its weights than its
// response to noise (the tiny ResNet fixture's int8 image cosine is
// 0.99999 on noise, 0.9989 on the fixture's synthetic pictures). A token
// row is sot, 1 to maxTokens random ordinary tokens (ids below both sot and
// eot), eot, then zero padding to the context length; maxTokens 0 (or
// past the context) allows up to the context length.
func RandomInputs(rng *rand.Rand, cfg clip.Config, sot, eot, images, texts, maxTokens int) ([]float32, [][]int) {
	r := cfg.ImageResolution
	im := make([]float32, images*3*r*r)
	for i := 0; i < images; i++ {
		img := im[i*3*r*r : (i+1)*3*r*r]
		if i%2 == 0 {
			for j := range img {
				img[j] = float32(rng.NormFloat64())
			}
			continue
		}
		scene(rng, r, img)
		for c := 0; c < 3; c++ {
			for j := c * r * r; j < (c+1)*r*r; j++ {
				img[j] = (img[j] - cfg.Mean[c]) / cfg.Std[c]
			}
		}
	}
	tokens := make([][]int, texts)
	for i := range tokens {
		row := make([]int, cfg.ContextLength)
		n := 1 + rng.IntN(cmp.Or(min(maxTokens, cfg.ContextLength-2), cfg.ContextLength-2))
		row[0] = sot
		for j := 1; j <= n; j++ {
			row[j] = rng.IntN(min(sot, eot))
		}
		row[n+1] = eot
		tokens[i] = row
	}
	return im, tokens
}

// scene draws a picture with values in [0, 1] into img [3, r, r]: a linear
// gradient between two random colours in a random direction, two to five
// rectangles and disks of random size and saturated colour, and normal
// noise of deviation 0.03.
func scene(rng *rand.Rand, r int, img []float32) {
	var c0, c1 [3]float64
	for c := range c0 {
		c0[c], c1[c] = rng.Float64(), rng.Float64()
	}
	sin, cos := math.Sincos(2 * math.Pi * rng.Float64())
	for y := 0; y < r; y++ {
		for x := 0; x < r; x++ {
			t := max(0, min(1, 0.5+(float64(x)/float64(r)-0.5)*cos+(float64(y)/float64(r)-0.5)*sin))
			for c := range c0 {
				img[(c*r+y)*r+x] = float32(c0[c] + (c1[c]-c0[c])*t)
			}
		}
	}
	for range 2 + rng.IntN(4) {
		var col [3]float32
		for c := range col {
			col[c] = float32(rng.IntN(2)) // saturated: each channel off or full
		}
		disk := rng.IntN(2) == 1
		cx, cy := rng.Float64()*float64(r), rng.Float64()*float64(r)
		h := float64(r) * (0.06 + 0.2*rng.Float64()) // half size
		for y := max(0, int(cy-h)); y < min(r, int(cy+h)+1); y++ {
			for x := max(0, int(cx-h)); x < min(r, int(cx+h)+1); x++ {
				if dx, dy := float64(x)-cx, float64(y)-cy; disk && dx*dx+dy*dy > h*h {
					continue
				}
				for c := range col {
					img[(c*r+y)*r+x] = col[c]
				}
			}
		}
	}
	for j, v := range img {
		img[j] = max(0, min(1, v+float32(0.03*rng.NormFloat64())))
	}
}

var _ shards.Quantizer = (*Plan)(nil)
