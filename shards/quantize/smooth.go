package quantize

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/clipwasm/clipwasm/clip"
	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/actquant"
	"github.com/clipwasm/clipwasm/shards"
)

// Activation quantization, as the browser does it (package
// kernels/actquant): the int8 GEMM quantizes the inputs of each int8 or q4
// Linear per token, to 7 bits with a zero point on the relaxed set (8 bits
// symmetric on the SIMD128 set; see browserActivations). Trained CLIP
// transformers carry a few residual channels far larger than the rest; a
// LayerNorm passes them on, so in the rows that feed its Linear the other
// channels get a few of the codes. Two remedies, both decided by
// measurement on the calibration inputs:
//
//   - Smoothing (SmoothQuant, Xiao et al. 2022) for each Linear a LayerNorm
//     feeds (ln_1 → attn.in_proj, ln_2 → mlp.c_fc, ln_post → visual.proj,
//     ln_final → text_projection): input channel j is divided by s_j in the
//     LayerNorm's weight and bias and multiplied by s_j in the matrix's
//     column j, with s_j = max|X_j|^α / max|W_:,j|^(1−α) rounded to a power
//     of two, so that both changes are exact in float32 and the float32
//     model computes the same numbers. α (or no smoothing) is chosen per
//     pair by the output error of the Linear on recorded inputs, with its
//     weights rounded in the requested scheme and its inputs quantized per
//     token plus that with float32 inputs. The ResNet's attention pool has no LayerNorm before it and is
//     not smoothed.
//   - Float32 activations (kernels.Matrix.Activations, the manifest's
//     "activations") for matrices no LayerNorm precedes, where the
//     embeddings with every activation quantized stay too far from the
//     float32 model's: ranked by the output error that quantizing their
//     inputs causes, they are marked until both towers' error on the
//     evaluation inputs is within actTarget.

// Parameters of the activation choices.
const (
	// sampleRows bounds the input rows kept per matrix for measuring.
	sampleRows = 256
	// actTarget is the relative squared error of a tower's embeddings with
	// every activation quantized that the float32 choice aims at: 1e-3 is a
	// cosine of about 0.9995, halfway from 1 to the int8 bar of 0.999,
	// leaving the other half for inputs unlike the evaluation ones.
	actTarget = 1e-3
	// smoothGain is how far smoothing must lower a pair's measured error
	// to be applied. Smaller gains, found on models without outlier
	// channels, are not worth the change: GPTQ then rounds the smoothed
	// weights on other statistics, and on the fixture and full-size
	// random models such smoothing moved the embeddings' error either way
	// (hf_tiny_quickgelu q4 text 0.012 → 0.014; ViT-B/32 int8 with 8-bit
	// activations, cosine 0.99976 → 0.99973). With 4 channels ×50 it
	// lowers the error of every pair by far more than half.
	smoothGain = 0.5
	// statsBatch bounds the images run at once while recording.
	statsBatch = 4
)

// smoothAlphas are the migration strengths tried for each pair; a pair
// where none brings the error below smoothGain times the unsmoothed
// matrix's stays as it is.
var smoothAlphas = []float64{0.3, 0.4, 0.5, 0.6, 0.7, 0.8}

// smoothPair is a LayerNorm ("…ln_1", without ".weight") and the matrix
// [rows, cols] it feeds.
type smoothPair struct {
	norm, matrix string
	rows, cols   int
}

// smoothPairs lists the LayerNorm → Linear pairs of a config's
// transformers.
func smoothPairs(cfg clip.Config) []smoothPair {
	var out []smoothPair
	blocks := func(prefix string, n, width, mlp int) {
		for i := range n {
			p := prefix + strconv.Itoa(i) + "."
			out = append(out, smoothPair{p + "ln_1", p + "attn.in_proj_weight", 3 * width, width},
				smoothPair{p + "ln_2", p + "mlp.c_fc.weight", mlp, width})
		}
	}
	if cfg.IsViT() {
		blocks("visual.transformer.resblocks.", cfg.VisionLayers[0], cfg.VisionWidth, cfg.VisionMLPWidth)
		out = append(out, smoothPair{"visual.ln_post", "visual.proj.weight", cfg.EmbedDim, cfg.VisionWidth})
	}
	blocks("transformer.resblocks.", cfg.TextLayers, cfg.TextWidth, cfg.TextMLPWidth)
	return append(out, smoothPair{"ln_final", "text_projection.weight", cfg.EmbedDim, cfg.TextWidth})
}

// Smoothed is what Calibrate chose for one LayerNorm → Linear pair.
type Smoothed struct {
	Norm, Matrix string
	// Alpha is the migration strength chosen, 0 for none.
	Alpha float64
	// Before and After are the errors of the Linear's output on the
	// recorded inputs (see smoothError), without and with smoothing.
	Before, After float64
}

// ActivationReport is what Calibrate measured and chose for the browser's
// quantized activations.
type ActivationReport struct {
	Smoothed []Smoothed
	// Quantized is each tower's (image, text) relative squared error with
	// every activation quantized per token, before any matrix was given
	// float32 activations, and Chosen after.
	Quantized, Chosen [2]float64
	// F32 lists the matrices given float32 activations.
	F32 []string
}

// smoothing holds the chosen scales (nil: none) by LayerNorm and by matrix.
type smoothing struct {
	byNorm, byMatrix map[string][]float32
	// sources is set once Plan.Sources has given the LayerNorms their
	// scales: a smoothed matrix without them would be a different model.
	sources bool
}

// inputStats are a matrix's recorded inputs: each column's largest |x|
// and up to sampleRows rows.
type inputStats struct {
	absMax []float32
	rows   []float32
	n      int
}

// statsRecorder is a backend that records the inputs of every named
// matrix it multiplies.
type statsRecorder struct {
	kernels.Backend
	mu    sync.Mutex
	names map[*kernels.Matrix]string
	stats map[string]*inputStats
}

// namedMatrices registers the name of every matrix a model's weights hand
// out with a statsRecorder.
type namedMatrices struct {
	clip.Weights
	r *statsRecorder
}

func (n namedMatrices) Matrix(name string, rows, cols int) (*kernels.Matrix, error) {
	m, err := n.Weights.Matrix(name, rows, cols)
	if err == nil {
		n.r.mu.Lock()
		n.r.names[m] = name
		n.r.mu.Unlock()
	}
	return m, err
}

// perCallRows bounds the rows one Linear call adds to a sample, so that
// every calibration batch is represented.
const perCallRows = 64

func (r *statsRecorder) Linear(dst, x []float32, m int, w *kernels.Matrix, bias []float32) {
	r.mu.Lock()
	name, ok := r.names[w]
	r.mu.Unlock()
	if ok {
		k := w.Cols
		st := r.stats[name]
		if st == nil {
			st = &inputStats{absMax: make([]float32, k)}
			r.stats[name] = st
		}
		for i := range m {
			for j, v := range x[i*k : (i+1)*k] {
				st.absMax[j] = max(st.absMax[j], float32(math.Abs(float64(v))))
			}
		}
		stride := max(1, (m+perCallRows-1)/perCallRows)
		for i := 0; i < m && st.n < sampleRows; i += stride {
			st.rows = append(st.rows, x[i*k:(i+1)*k]...)
			st.n++
		}
	}
	r.Backend.Linear(dst, x, m, w, bias)
}

// recordInputs runs the float32 model on the calibration inputs and
// returns the recorded inputs of every matrix it multiplies. The model is
// streamed (see Stream): each matrix is read from w when it is used.
func recordInputs(cfg clip.Config, w clip.Weights, b kernels.Backend, calib *inputs) (map[string]*inputStats, error) {
	s := newStream(b, w)
	r := &statsRecorder{Backend: s, names: map[*kernels.Matrix]string{}, stats: map[string]*inputStats{}}
	model, err := clip.Build(cfg, namedMatrices{s.weights(), r}, r)
	if err != nil {
		return nil, err
	}
	for i := 0; i < calib.n; i += statsBatch {
		n := min(statsBatch, calib.n-i)
		if _, err := model.EncodeImage(calib.images[i*calib.size:(i+n)*calib.size], n); err != nil {
			return nil, err
		}
	}
	if _, err := model.EncodeText(calib.tokens); err != nil {
		return nil, err
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	return r.stats, nil
}

// chooseSmoothing picks, per pair, the α whose smoothing gives the lowest
// output error on the recorded inputs (or none), with weights rounded as
// wopt asks (see smoothError).
func chooseSmoothing(cfg clip.Config, w clip.Weights, b kernels.Backend, stats map[string]*inputStats, wopt shards.Options) (*smoothing, []Smoothed, error) {
	sm := &smoothing{byNorm: map[string][]float32{}, byMatrix: map[string][]float32{}}
	var report []Smoothed
	for _, pair := range smoothPairs(cfg) {
		st := stats[pair.matrix]
		if st == nil || st.n == 0 {
			return nil, nil, fmt.Errorf("%s: no inputs recorded", pair.matrix)
		}
		m, err := w.Matrix(pair.matrix, pair.rows, pair.cols)
		if err != nil {
			return nil, nil, err
		}
		if m.Scheme != kernels.SchemeF32 {
			return nil, nil, fmt.Errorf("matrix %q is %s: calibration needs the float32 model", pair.matrix, m.Scheme)
		}
		want := make([]float32, st.n*pair.rows)
		b.Linear(want, st.rows, st.n, m, nil)
		r := Smoothed{Norm: pair.norm, Matrix: pair.matrix}
		r.Before = smoothError(b, st, m, nil, want, wopt)
		r.After = r.Before
		var best []float32
		wmax := columnAbsMax(m)
		for _, a := range smoothAlphas {
			s := smoothScales(st.absMax, wmax, a)
			if e := smoothError(b, st, m, s, want, wopt); e < r.After {
				r.Alpha, r.After, best = a, e, s
			}
		}
		if r.After < smoothGain*r.Before {
			sm.byNorm[pair.norm], sm.byMatrix[pair.matrix] = best, best
		} else {
			r.Alpha, r.After = 0, r.Before
		}
		report = append(report, r)
	}
	return sm, report, nil
}

// columnAbsMax returns max_i |m[i, j]| for each column j.
func columnAbsMax(m *kernels.Matrix) []float32 {
	out := make([]float32, m.Cols)
	for i := range m.Rows {
		for j, v := range m.F32[i*m.Cols : (i+1)*m.Cols] {
			out[j] = max(out[j], float32(math.Abs(float64(v))))
		}
	}
	return out
}

// smoothScales returns s_j = xmax_j^α / wmax_j^(1−α), rounded to the
// nearest power of two (so dividing and multiplying by it is exact), 1
// where a column is all zeros.
func smoothScales(xmax, wmax []float32, alpha float64) []float32 {
	s := make([]float32, len(xmax))
	for j := range s {
		s[j] = 1
		if xmax[j] > 0 && wmax[j] > 0 {
			v := math.Pow(float64(xmax[j]), alpha) / math.Pow(float64(wmax[j]), 1-alpha)
			s[j] = float32(math.Exp2(math.Round(math.Log2(v))))
		}
	}
	return s
}

// smoothError measures the Linear m on the recorded rows with input
// channels divided by s (nil: 1) and the matrix's columns multiplied by
// it, its weights rounded as wopt asks: the relative squared error of its
// output against want with the inputs quantized per token (the browser),
// plus that with float32 inputs (the native backends, which quantize
// activations far more finely). Smoothing moves rounding error from the
// inputs to the weights; the sum keeps it from buying the browser's
// fidelity with the native backends'.
func smoothError(b kernels.Backend, st *inputStats, m *kernels.Matrix, s []float32, want []float32, wopt shards.Options) float64 {
	rows, cols := m.Rows, m.Cols
	x := slices.Clone(st.rows)
	w := slices.Clone(m.F32)
	if s != nil {
		scaleColumns(x, s)
		scaleColumnsBy(w, s)
	}
	var q *kernels.Matrix
	if wopt.Quant == shards.Q4 && cols%kernels.Q4Block == 0 {
		var err error
		if q, err = kernels.QuantizeQ4(rows, cols, w); err != nil {
			panic(err) // cols divides into blocks
		}
	} else {
		q = shards.QuantizeInt8(rows, cols, w, wopt.RoundScale)
	}
	got := make([]float32, st.n*rows)
	b.Linear(got, x, st.n, q, nil)
	native := relSquaredError(want, got)
	quantizeRows(x, st.n, cols)
	b.Linear(got, x, st.n, q, nil)
	return relSquaredError(want, got) + native
}

// browserActivations is the activation quantization the choices are
// measured with: the relaxed set's 7 bits with a zero point, which the
// browser uses wherever relaxed SIMD works. Its step is at most twice
// that of the SIMD128 set's symmetric 8 bits (equal on rows that are
// nearly all positive, like GELU outputs), so what holds for it holds
// for the fallback.
const browserActivations = actquant.U7

// quantizeRows replaces each row of x [n, k] by its per-token quantization
// (browserActivations), dequantized: what the browser's int8 GEMM
// multiplies, up to the order of its float sums, which lets the fast
// native backend stand in for it when measuring.
func quantizeRows(x []float32, n, k int) {
	q, sx, zx := make([]uint8, n*k), make([]float32, n), make([]int32, n)
	actquant.QuantRowsU7(q, k, sx, zx, x, k, n, k)
	for i, v := range q {
		x[i] = float32(int32(v)-zx[i/k]) * sx[i/k]
	}
}

// scaleColumns divides each row's column j by s[j].
func scaleColumns(x, s []float32) {
	for i := range x {
		x[i] /= s[i%len(s)]
	}
}

// scaleColumnsBy multiplies each row's column j by s[j].
func scaleColumnsBy(x, s []float32) {
	for i := range x {
		x[i] *= s[i%len(s)]
	}
}

// smoothedWeights serves w with the smoothing applied: the paired
// LayerNorms' weights and biases divided by their scales, the matrices'
// columns multiplied by them.
type smoothedWeights struct {
	clip.Weights
	sm *smoothing
}

func (s smoothedWeights) Tensor(name string, shape ...int) ([]float32, error) {
	t, err := s.Weights.Tensor(name, shape...)
	if err != nil {
		return nil, err
	}
	return s.sm.vector(name, t), nil
}

func (s smoothedWeights) Matrix(name string, rows, cols int) (*kernels.Matrix, error) {
	m, err := s.Weights.Matrix(name, rows, cols)
	if err != nil || s.sm.byMatrix[name] == nil {
		return m, err
	}
	if m.Scheme != kernels.SchemeF32 {
		return nil, fmt.Errorf("matrix %q is %s: calibration needs the float32 model", name, m.Scheme)
	}
	return kernels.NewMatrix(rows, cols, s.sm.matrix(name, m.F32)), nil
}

// normOf returns the LayerNorm whose weight or bias a tensor name is.
func normOf(name string) (string, bool) {
	for _, suffix := range []string{".weight", ".bias"} {
		if n, ok := strings.CutSuffix(name, suffix); ok {
			return n, true
		}
	}
	return "", false
}

// vector returns the tensor name's values as smoothing changes them: a
// copy divided by the scales for a paired LayerNorm's weight or bias, t
// itself otherwise.
func (sm *smoothing) vector(name string, t []float32) []float32 {
	norm, ok := normOf(name)
	s := sm.byNorm[norm]
	if !ok || s == nil || len(t) != len(s) {
		return t
	}
	out := slices.Clone(t)
	scaleColumns(out, s)
	return out
}

// matrix returns a smoothed matrix's values, a copy with its columns
// multiplied by the scales, or vals itself for any other matrix.
func (sm *smoothing) matrix(name string, vals []float32) []float32 {
	s := sm.byMatrix[name]
	if s == nil {
		return vals
	}
	out := slices.Clone(vals)
	scaleColumnsBy(out, s)
	return out
}

// Sources returns the tensors to write with the plan: src with the
// LayerNorms that feed smoothed matrices divided by their scales. A plan
// with smoothing quantizes nothing until its Sources were taken, since its
// matrices would not match the LayerNorms in src.
func (p *Plan) Sources(src []shards.Source) []shards.Source {
	out := slices.Clone(src)
	if p.smooth == nil {
		return out
	}
	for i, s := range out {
		if s.Kind != shards.KindVector || s.Float32 == nil {
			continue
		}
		if norm, ok := normOf(s.Name); !ok || p.smooth.byNorm[norm] == nil {
			continue
		}
		read, name := s.Float32, s.Name
		out[i].Float32 = func() ([]float32, error) {
			t, err := read()
			if err != nil {
				return nil, err
			}
			return p.smooth.vector(name, t), nil
		}
	}
	p.smooth.sources = true
	return out
}

// smoothRequest returns the request with a smoothed matrix's values
// smoothed, as the plan was made from them.
func (p *Plan) smoothRequest(req shards.MatrixRequest) (shards.MatrixRequest, error) {
	if p.smooth == nil || p.smooth.byMatrix[req.Name] == nil {
		return req, nil
	}
	if !p.smooth.sources {
		return req, fmt.Errorf("quantize: matrix %q is smoothed, but the bundle's LayerNorms are not: write the plan's Sources", req.Name)
	}
	req.Values = p.smooth.matrix(req.Name, req.Values)
	return req, nil
}

// activationPrep is what Calibrate learns before quantizing anything: the
// recorded inputs of every matrix and the smoothing chosen from them.
type activationPrep struct {
	stats    map[string]*inputStats
	smooth   *smoothing
	smoothed []Smoothed
}

// prepareActivations records the float32 model's inputs on the
// calibration inputs and chooses the smoothing.
func prepareActivations(cfg clip.Config, w clip.Weights, b kernels.Backend, sot, eot, images, texts int, wopt shards.Options) (*activationPrep, error) {
	calib := newInputs(calibrationSeed, cfg, sot, eot, images, texts, 0)
	stats, err := recordInputs(cfg, w, b, calib)
	if err != nil {
		return nil, fmt.Errorf("quantize: recording activations: %w", err)
	}
	sm, report, err := chooseSmoothing(cfg, w, b, stats, wopt)
	if err != nil {
		return nil, fmt.Errorf("quantize: smoothing: %w", err)
	}
	return &activationPrep{stats: stats, smooth: sm, smoothed: report}, nil
}

// weights serves w smoothed.
func (ap *activationPrep) weights(w clip.Weights) clip.Weights { return smoothedWeights{w, ap.smooth} }

// chooseActivations gives the plan its smoothing and marks the matrices
// whose inputs stay float32: per tower, while the embeddings with every
// other activation quantized per token are further than actTarget from
// the float32 model's, the matrices whose quantized inputs cost their
// output the most (on the recorded inputs) get float32 inputs, one, then
// two, four… at a time.
func (p *Plan) chooseActivations(ev *evaluator, ap *activationPrep) error {
	p.smooth = ap.smooth
	p.Activations.Smoothed = ap.smoothed
	type candidate struct {
		name string
		cost float64
	}
	var cands [2][]candidate
	for name, pl := range p.matrices {
		st := ap.stats[name]
		if st == nil || pl.m.Scheme == kernels.SchemeF32 {
			continue // not multiplied by Linear, or stored float32
		}
		x := slices.Clone(st.rows)
		if s := ap.smooth.byMatrix[name]; s != nil {
			scaleColumns(x, s)
		}
		want := make([]float32, st.n*pl.m.Rows)
		ev.b.Linear(want, x, st.n, pl.m, nil)
		quantizeRows(x, st.n, pl.m.Cols)
		got := make([]float32, st.n*pl.m.Rows)
		ev.b.Linear(got, x, st.n, pl.m, nil)
		t := towerOf(name)
		cands[t] = append(cands[t], candidate{name, relSquaredError(want, got)})
	}
	aq := *ev
	aq.b = actquant.New(ev.b, browserActivations)
	for t := range cands {
		c := cands[t]
		slices.SortFunc(c, func(a, b candidate) int {
			return cmp.Or(cmp.Compare(b.cost, a.cost), strings.Compare(a.name, b.name))
		})
		cur, err := aq.towerError(p.stored(), t)
		if err != nil {
			return err
		}
		p.Activations.Quantized[t] = cur
		for i, step := 0, 1; cur > actTarget && i < len(c); step *= 2 {
			for _, cd := range c[i:min(len(c), i+step)] {
				p.matrices[cd.name].m.Activations = kernels.ActivationsF32
				p.Activations.F32 = append(p.Activations.F32, cd.name)
			}
			i += step
			if cur, err = aq.towerError(p.stored(), t); err != nil {
				return err
			}
		}
		p.Activations.Chosen[t] = cur
	}
	return nil
}
