package avx2

import (
	"math"
	"sync"

	"github.com/clipwasm/clipwasm/kernels"
)

// The integer path: y = x·Wᵀ for int8 and q4 weights, computed as int16
// activations × int8 weights with int32 sums.
//
// Activations are quantized per row (token) at each call, symmetrically to
// ±actMax. AVX2 has no VNNI, and its u8×s8 VPMADDUBSW adds pairs into
// saturating int16, so the kernel widens weights to int16 (VPMOVSXBW) and
// uses VPMADDWD, whose pair sums are exact int32. That instruction takes
// int16 activations at no extra cost over int8 ones, so activations get 16
// bits instead of 8: their quantization error is then far below the
// weights', and no zero point (and no weight-sum correction) is needed.
//
// Measured on the ViT-B/32 shapes (one Zen 3 core, CPU time) the integer
// kernel runs at about 130 "GFLOP/s" against the float32 kernel's 85, and
// the int16 activations keep the output within cosine 0.99997 of float32
// where int8 activations, with CLIP's outlier channels, fall to 0.9987.
//
// With AVX512_VNNI the same products run on VPDPWSSD over ZMM registers
// (qgemm512), about twice the AVX2 kernel's rate (measured on a Xeon with
// AMX and AVX512_FP16, so Sapphire Rapids or later). VPDPBUSD (u8 × s8,
// four products per lane) would do twice as many products per instruction
// again, but only with 8-bit activations: on full-size ViT-B/32 with
// random weights (TestFullSizeInt8) they double the embedding error (text
// cosine 0.99937 against 0.99966), and on layers with outlier channels
// they fall below the 0.999 bar, as above.
//
// q4 weights are unpacked once to int8 (values −8..7) in the same panel
// layout; their per-32 block scales are applied by the kernel every 16
// k-pairs (about 120 GFLOP/s). Dequantizing to float32 per panel instead
// could at best reach the float32 kernel's speed. The cached form costs 1
// byte per weight, twice the q4 storage but a quarter of float32. For int8
// weights the packed copy doubles the int8 memory while the Matrix keeps
// Q8 too.

// actMax is the largest quantized activation magnitude.
const actMax = 32767

// intPanels is an int8 or q4 matrix packed for qgemm: ceil(rows/16)
// panels of kp = ceil(cols/2) k-pairs × 16 columns × 2 bytes, the pair
// (2t, 2t+1) of panel column j at byte t·32 + 2j, zero past the last row and
// column. scales holds, per panel, the per-column scales: one group of 16
// for int8, cols/32 groups (one per q4 block) for q4.
type intPanels struct {
	scheme     kernels.Scheme
	rows, cols int
	kp         int
	q          []int8
	scales     []float32
}

func (p *intPanels) fits(w *kernels.Matrix) bool {
	return p.rows == w.Rows && p.cols == w.Cols && p.scheme == w.Scheme
}

// groups returns the number of scale groups per panel.
func (p *intPanels) groups() int {
	if p.scheme == kernels.SchemeQ4 {
		return p.cols / kernels.Q4Block
	}
	return 1
}

func packInt(w *kernels.Matrix) *intPanels {
	n, k := w.Rows, w.Cols
	np := (n + nr - 1) / nr
	p := &intPanels{scheme: w.Scheme, rows: n, cols: k, kp: (k + 1) / 2}
	p.q = make([]int8, np*p.kp*2*nr)
	ng := p.groups()
	p.scales = make([]float32, np*ng*nr)
	for r := range n {
		panel := p.q[(r/nr)*p.kp*2*nr:]
		at := func(kk int) *int8 { return &panel[(kk/2)*2*nr+(r%nr)*2+kk%2] }
		scales := p.scales[(r/nr)*ng*nr+r%nr:]
		switch w.Scheme {
		case kernels.SchemeInt8:
			for kk, v := range w.Q8[r*k : r*k+k] {
				*at(kk) = v
			}
			scales[0] = w.Scales[r]
		case kernels.SchemeQ4:
			for g := range ng {
				blk := r*ng + g
				for j, v := range w.Q4[blk*kernels.Q4Block/2 : (blk+1)*kernels.Q4Block/2] {
					*at(g*kernels.Q4Block + j) = int8(v&15) - 8
					*at(g*kernels.Q4Block + j + kernels.Q4Block/2) = int8(v>>4) - 8
				}
				scales[g*nr] = w.Scales[blk]
			}
		}
	}
	return p
}

// qActs holds x quantized for qgemm: rows padded to a multiple of mr
// with zero rows (enough for the last sliver's tile, see sliverRows), each row of ld = 2·kp int16 (zero past k), and one scale
// per row.
type qActs struct {
	ld     int
	q      []int16
	scales []float32
}

// actBufs recycles qActs buffers (*qActs): a text tower call quantizes tens
// of MiB of activations.
var actBufs sync.Pool

// quantizeActs quantizes each row of x [m, k] to int16 with its own scale
// max|row|/actMax, in parallel over rows.
func (b *backend) quantizeActs(x []float32, m, k int) *qActs {
	ld := (k + 1) &^ 1
	rows := (m + mr - 1) / mr * mr
	qa, _ := actBufs.Get().(*qActs)
	if qa == nil {
		qa = new(qActs)
	}
	qa.ld = ld
	if cap(qa.q) < rows*ld {
		qa.q = make([]int16, rows*ld)
	}
	if cap(qa.scales) < rows {
		qa.scales = make([]float32, rows)
	}
	qa.q, qa.scales = qa.q[:rows*ld], qa.scales[:rows]
	clear(qa.q[m*ld:])
	clear(qa.scales[m:])
	const rowsPerTask = 16
	b.pool.Run((m+rowsPerTask-1)/rowsPerTask, func(t int) {
		for r := t * rowsPerTask; r < min(m, (t+1)*rowsPerTask); r++ {
			qa.scales[r] = quantizeRowTo(qa.q[r*ld:(r+1)*ld], x[r*k:(r+1)*k])
		}
	})
	return qa
}

// quantizeRowTo writes x quantized to ±actMax into dst (zero past len(x))
// and returns the scale. The assembly handles the multiple of 16 elements;
// the rest is rounded the same way (float32 product, round half to even).
func quantizeRowTo(dst []int16, x []float32) float32 {
	n := len(x)
	n8, n16 := n&^7, n&^15
	var amax float32
	if n8 > 0 {
		amax = absMax(&x[0], n8)
	}
	for _, v := range x[n8:] {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	if amax == 0 {
		clear(dst)
		return 0
	}
	inv := actMax / amax
	if n16 > 0 {
		quantizeRow(&dst[0], &x[0], n16, inv)
	}
	for i := n16; i < n; i++ {
		dst[i] = int16(max(-actMax, min(actMax, math.RoundToEven(float64(x[i]*inv)))))
	}
	clear(dst[n:])
	return amax / actMax
}

// linearInt is Linear for int8 and q4 weights.
func (b *backend) linearInt(dst, x []float32, m int, w *kernels.Matrix, bias []float32) {
	n, k := w.Rows, w.Cols
	pw := prepared(w, packInt)
	qa := b.quantizeActs(x, m, k)
	defer actBufs.Put(qa)
	ng := pw.groups()
	b.gemm(dst, m, n, k, kcInt, tilePanels(b.intWide), bias, func(c *float32, ldc, i, rows, p, panels, k0, k1 int) {
		a := &qa.q[i*qa.ld+k0]
		bp := &pw.q[(p*pw.kp+k0/2)*2*nr]
		// q4: one scale group per block (k0 and k1 are multiples of 32);
		// int8: one group, one scale per column.
		groups, gkp, sw, swStride := 1, (k1-k0+1)/2, &pw.scales[p*nr], 0
		if pw.scheme == kernels.SchemeQ4 {
			groups, gkp = (k1-k0)/kernels.Q4Block, kernels.Q4Block/2
			sw, swStride = &pw.scales[(p*ng+k0/kernels.Q4Block)*nr], nr
		}
		if panels == 2 {
			qgemm512(rows, groups, gkp, a, qa.ld, bp, pw.kp*2*nr, c, ldc, &qa.scales[i], sw, swStride, ng*nr)
			return
		}
		qgemm(rows, groups, gkp, a, qa.ld, bp, c, ldc, &qa.scales[i], sw, swStride)
	})
}
