package imageproc

import "image"

// precisionBits is Pillow's fixed-point precision for 8-bit resampling
// (Resample.c PRECISION_BITS: 32 − 8 − 2).
const precisionBits = 22

// bicubic is Pillow's bicubic_filter (a = −0.5), in Pillow's Horner form.
// The explicit float64 conversions stop the compiler fusing multiply-adds
// (Go may, e.g. on arm64), which could change the last bit of a weight.
func bicubic(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	if x < 1 {
		t := float64((a+2)*x) - (a + 3)
		t = float64(t * x)
		t = float64(t * x)
		return t + 1
	}
	if x < 2 {
		t := float64((x-5)*x) + 8
		t = float64(t*x) - 4
		return t * a
	}
	return 0
}

// taps are the source window and fixed-point weights of one output sample.
type taps struct {
	first int
	k     []int32
}

// bicubicTaps ports Pillow's precompute_coeffs and normalize_coeffs_8bpc for
// outputs [from, to) of an in→out resize. Each output's weights depend only
// on its own index, so computing a window of outputs gives the same values
// as computing all of them.
func bicubicTaps(in, out, from, to int) []taps {
	const support = 2.0 // bicubic support before scaling
	scale := float64(in) / float64(out)
	filterscale := max(scale, 1)
	sup := support * filterscale
	ss := 1 / filterscale
	res := make([]taps, to-from)
	var w []float64
	for xx := from; xx < to; xx++ {
		center := (float64(xx) + 0.5) * scale
		xmin := max(int(center-sup+0.5), 0)
		xmax := min(int(center+sup+0.5), in)
		w = w[:0]
		ww := 0.0
		for x := xmin; x < xmax; x++ {
			v := bicubic((float64(x) - center + 0.5) * ss)
			w = append(w, v)
			ww += v
		}
		k := make([]int32, len(w))
		for i, v := range w {
			if ww != 0 {
				v /= ww
			}
			if v < 0 {
				k[i] = int32(-0.5 + float64(v*(1<<precisionBits)))
			} else {
				k[i] = int32(0.5 + float64(v*(1<<precisionBits)))
			}
		}
		res[xx-from] = taps{first: xmin, k: k}
	}
	return res
}

// clip8 is Pillow's rounding step: ss already carries the +½ bias.
func clip8(ss int) uint8 {
	if ss >= 1<<precisionBits<<8 {
		return 255
	}
	if ss <= 0 {
		return 0
	}
	return uint8(ss >> precisionBits)
}

// resample returns the window win of m resized to outW×outH, exactly as
// Pillow's Image.resize(…, BICUBIC) followed by a crop to win would: NEAREST
// for P and 1, premultiplied alpha for LA and RGBA, and each separable pass
// only when its dimension changes. Computing just the window makes the crop
// free and bounds the work by the window, not the resized size.
func resample(m *Image, outW, outH int, win image.Rectangle) *Image {
	if outW == m.Width && outH == m.Height {
		return crop(m, win) // Pillow returns a copy: no premultiply round trip
	}
	if m.Mode == ModeP || m.Mode == Mode1 {
		return nearest(m, outW, outH, win)
	}
	c := m.Mode.Channels()
	src := m.Pix
	if m.Mode.hasAlpha() {
		src = premultiply(m.Pix, c)
	}
	pix := bicubicPasses(src, m.Width, m.Height, c, outW, outH, win)
	if m.Mode.hasAlpha() {
		unpremultiply(pix, c)
	}
	return &Image{Mode: m.Mode, Width: win.Dx(), Height: win.Dy(), Pix: pix}
}

// bicubicPasses runs Pillow's horizontal then vertical 8-bit pass over
// packed pixels with c channels and returns the window win of the result.
func bicubicPasses(src []uint8, w, h, c, outW, outH int, win image.Rectangle) []uint8 {
	ww := win.Dx()
	// Source rows the vertical pass reads, like Pillow's ybox_first/last.
	y0, y1 := win.Min.Y, win.Max.Y
	var vt []taps
	if outH != h {
		vt = bicubicTaps(h, outH, win.Min.Y, win.Max.Y)
		y0, y1 = h, 0
		for _, t := range vt {
			y0, y1 = min(y0, t.first), max(y1, t.first+len(t.k))
		}
	}
	tmp := make([]uint8, (y1-y0)*ww*c)
	if outW != w {
		ht := bicubicTaps(w, outW, win.Min.X, win.Max.X)
		for y := y0; y < y1; y++ {
			horizontal(tmp[(y-y0)*ww*c:(y-y0+1)*ww*c], src[y*w*c:(y+1)*w*c], c, ht)
		}
	} else {
		for y := y0; y < y1; y++ {
			copy(tmp[(y-y0)*ww*c:], src[(y*w+win.Min.X)*c:(y*w+win.Max.X)*c])
		}
	}
	if outH == h {
		return tmp
	}
	// Vertical pass, accumulated one source row at a time so that memory is
	// read sequentially; the sums are the same integers in the same order.
	line := ww * c
	out := make([]uint8, win.Dy()*line)
	acc := make([]int, line)
	for yy, t := range vt {
		for i := range acc {
			acc[i] = 1 << (precisionBits - 1)
		}
		for j, k := range t.k {
			row := tmp[(t.first-y0+j)*line : (t.first-y0+j+1)*line]
			for i, v := range row {
				acc[i] += int(v) * int(k)
			}
		}
		dst := out[yy*line : (yy+1)*line]
		for i, ss := range acc {
			dst[i] = clip8(ss)
		}
	}
	return out
}

// horizontal resamples one row of packed pixels with c channels.
func horizontal(dst, row []uint8, c int, ht []taps) {
	const half = 1 << (precisionBits - 1)
	switch c {
	case 1:
		for xx, t := range ht {
			s := row[t.first : t.first+len(t.k)]
			ss := half
			for i, k := range t.k {
				ss += int(s[i]) * int(k)
			}
			dst[xx] = clip8(ss)
		}
	case 3:
		for xx, t := range ht {
			s := row[3*t.first : 3*(t.first+len(t.k))]
			s0, s1, s2 := half, half, half
			for i, k := range t.k {
				p := s[3*i : 3*i+3]
				s0 += int(p[0]) * int(k)
				s1 += int(p[1]) * int(k)
				s2 += int(p[2]) * int(k)
			}
			dst[3*xx], dst[3*xx+1], dst[3*xx+2] = clip8(s0), clip8(s1), clip8(s2)
		}
	default:
		var ss [4]int
		for xx, t := range ht {
			s := row[c*t.first : c*(t.first+len(t.k))]
			for ch := range c {
				ss[ch] = half
			}
			for i, k := range t.k {
				for ch, v := range s[c*i : c*i+c] {
					ss[ch] += int(v) * int(k)
				}
			}
			for ch := range c {
				dst[c*xx+ch] = clip8(ss[ch])
			}
		}
	}
}

// premultiply is Pillow's RGBA→RGBa (and LA→La) conversion: each colour
// channel becomes c·a/255 rounded with MULDIV255; alpha is the last channel.
func premultiply(pix []uint8, c int) []uint8 {
	out := make([]uint8, len(pix))
	for i := 0; i < len(pix); i += c {
		a := uint32(pix[i+c-1])
		for j := range c - 1 {
			t := uint32(pix[i+j])*a + 128
			out[i+j] = uint8((t + t>>8) >> 8)
		}
		out[i+c-1] = uint8(a)
	}
	return out
}

// unpremultiply is Pillow's RGBa→RGBA conversion, in place: colour is left
// alone where alpha is 0 or 255, otherwise min(255, 255·c/a) truncated.
func unpremultiply(pix []uint8, c int) {
	for i := 0; i < len(pix); i += c {
		a := uint32(pix[i+c-1])
		if a == 0 || a == 255 {
			continue
		}
		for j := range c - 1 {
			pix[i+j] = uint8(min(255*uint32(pix[i+j])/a, 255))
		}
	}
}

// nearestIndex reproduces Pillow's ImagingScaleAffine source positions for
// outputs [from, to): a float64 running sum started at scale/2, truncated.
// The running sum (not (i+½)·scale) is what makes it bit-exact.
func nearestIndex(in, out, from, to int) []int {
	scale := float64(in) / float64(out)
	idx := make([]int, to-from)
	xo := scale * 0.5
	for x := range to {
		if x >= from {
			idx[x-from] = min(int(xo), in-1)
		}
		xo += scale
	}
	return idx
}

func nearest(m *Image, outW, outH int, win image.Rectangle) *Image {
	xs := nearestIndex(m.Width, outW, win.Min.X, win.Max.X)
	ys := nearestIndex(m.Height, outH, win.Min.Y, win.Max.Y)
	c := m.Mode.Channels()
	out := &Image{Mode: m.Mode, Width: len(xs), Height: len(ys), Pix: make([]uint8, len(xs)*len(ys)*c), Palette: m.Palette}
	for y, sy := range ys {
		for x, sx := range xs {
			copy(out.Pix[c*(y*len(xs)+x):c*(y*len(xs)+x+1)], m.Pix[c*(sy*m.Width+sx):])
		}
	}
	return out
}

// crop returns the window win of m (which must lie inside m) as a new image.
func crop(m *Image, win image.Rectangle) *Image {
	c := m.Mode.Channels()
	w := win.Dx()
	out := &Image{Mode: m.Mode, Width: w, Height: win.Dy(), Pix: make([]uint8, w*win.Dy()*c), Palette: m.Palette}
	for y := range win.Dy() {
		off := ((win.Min.Y+y)*m.Width + win.Min.X) * c
		copy(out.Pix[y*w*c:(y+1)*w*c], m.Pix[off:off+w*c])
	}
	return out
}
