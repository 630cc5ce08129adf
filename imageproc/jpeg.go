package imageproc

import (
	"bytes"
	"encoding/binary"
	"image"
)

// libjpeg-turbo's YCbCr→RGB tables (jdcolor.c, build_ycc_rgb_table): 16-bit
// fixed point, each term rounded on its own, so the sums differ by ±1 from
// Go's color.YCbCrToRGB.
var crR, cbB, crG, cbG = yccTables()

func yccTables() (crR, cbB, crG, cbG [256]int32) {
	const scaleBits = 16
	const oneHalf = 1 << (scaleBits - 1)
	fix := func(x float64) int32 { return int32(float64(x*(1<<scaleBits)) + 0.5) }
	for i := range 256 {
		x := int32(i) - 128
		crR[i] = (fix(1.40200)*x + oneHalf) >> scaleBits
		cbB[i] = (fix(1.77200)*x + oneHalf) >> scaleBits
		crG[i] = -fix(0.71414) * x
		cbG[i] = -fix(0.34414)*x + oneHalf
	}
	return
}

func clampByte(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// ycbcrToRGB converts m (origin (0, 0), as image/jpeg returns it) to packed
// RGB the way libjpeg-turbo 2.1 does with its defaults, which is what Pillow
// uses: "fancy" triangular upsampling of subsampled chroma (jdsample.c:
// h2v1, h2v2 when the chroma plane is wider than 2 samples, h1v2), plain
// replication otherwise, then the fixed-point colour conversion. image/jpeg
// itself replicates chroma samples, which is up to 78 levels off at chroma
// edges.
func ycbcrToRGB(m *image.YCbCr) []uint8 {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	hs, vs := 1, 1
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		hs = 2
	case image.YCbCrSubsampleRatio420:
		hs, vs = 2, 2
	case image.YCbCrSubsampleRatio440:
		vs = 2
	case image.YCbCrSubsampleRatio411:
		hs = 4
	case image.YCbCrSubsampleRatio410:
		hs, vs = 4, 2
	}
	cw, ch := (w+hs-1)/hs, (h+vs-1)/vs
	// libjpeg-turbo's jinit_upsampler picks the fancy methods only for these
	// factor pairs; 4:2:x planes of 1 or 2 samples fall back to replication.
	fancyH := hs == 2 && cw > 2
	fancyV := vs == 2 && (hs == 1 || fancyH)

	out := make([]uint8, 3*w*h)
	sumCb, sumCr := make([]int32, cw), make([]int32, cw)
	upCb, upCr := make([]int32, w), make([]int32, w)
	for y := range h {
		// Vertical step: the nearer chroma row ×3 plus the farther one (the
		// row above for even output rows); edge rows are replicated, as
		// libjpeg's context rows are.
		cy := y / vs
		far := cy
		if fancyV {
			if y%2 == 0 {
				far = max(cy-1, 0)
			} else {
				far = min(cy+1, ch-1)
			}
		}
		for i := range cw {
			near, other := m.COffset(i*hs, cy*vs), m.COffset(i*hs, far*vs)
			if fancyV {
				sumCb[i] = 3*int32(m.Cb[near]) + int32(m.Cb[other])
				sumCr[i] = 3*int32(m.Cr[near]) + int32(m.Cr[other])
			} else {
				sumCb[i], sumCr[i] = int32(m.Cb[near]), int32(m.Cr[near])
			}
		}
		upsampleRow(upCb, sumCb, hs, fancyH, fancyV, y%2)
		upsampleRow(upCr, sumCr, hs, fancyH, fancyV, y%2)
		yrow := m.Y[m.YOffset(0, y):]
		o := out[3*w*y:]
		for x := range w {
			yy, cb, cr := int32(yrow[x]), upCb[x], upCr[x]
			o[3*x] = clampByte(yy + crR[cr])
			o[3*x+1] = clampByte(yy + (cbG[cb]+crG[cr])>>16)
			o[3*x+2] = clampByte(yy + cbB[cb])
		}
	}
	return out
}

// upsampleRow expands one row of chroma column sums to full width with
// libjpeg-turbo's integer formulas. With fancyV the sums are 3·near + far
// (4× scale), otherwise plain samples; rowParity selects h1v2's bias.
func upsampleRow(dst, s []int32, hs int, fancyH, fancyV bool, rowParity int) {
	n := len(s)
	switch {
	case fancyH:
		// 3/4 of the nearer column plus 1/4 of the farther one, edge columns
		// replicated: h2v1_fancy_upsample, or h2v2's on 4×-scaled sums.
		shift, even, odd := 2, int32(1), int32(2)
		if fancyV {
			shift, even, odd = 4, 8, 7
		}
		for i, v := range s {
			l, r := s[max(i-1, 0)], s[min(i+1, n-1)]
			if 2*i < len(dst) {
				dst[2*i] = (3*v + l + even) >> shift
			}
			if 2*i+1 < len(dst) {
				dst[2*i+1] = (3*v + r + odd) >> shift
			}
		}
	case fancyV: // h1v2_fancy_upsample
		bias := 1 + int32(rowParity)
		for x := range dst {
			dst[x] = (s[x] + bias) >> 2
		}
	default:
		for x := range dst {
			dst[x] = s[x/hs]
		}
	}
}

// jpegOrientation returns the EXIF orientation (1–8) stored in the first
// Exif APP1 segment of a JPEG stream, or 1 when there is none or it cannot
// be read: broken metadata must not stop a photo from being classified.
func jpegOrientation(b []byte) int {
	if len(b) < 2 || b[0] != 0xff || b[1] != 0xd8 {
		return 1
	}
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xff {
			return 1
		}
		marker := b[i+1]
		switch {
		case marker == 0xff: // fill byte
			i++
			continue
		case marker == 0xda || marker == 0xd9: // SOS, EOI: metadata is over
			return 1
		case marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7): // no length
			i += 2
			continue
		}
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if n < 2 || i+2+n > len(b) {
			return 1
		}
		seg := b[i+4 : i+2+n]
		if marker == 0xe1 && bytes.HasPrefix(seg, []byte("Exif\x00\x00")) {
			return exifOrientation(seg[6:])
		}
		i += 2 + n
	}
	return 1
}

// exifOrientation reads tag 0x0112 from IFD0 of a TIFF-structured EXIF
// block, returning 1 for anything missing, malformed or out of range.
func exifOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:4]) {
	case "II*\x00":
		bo = binary.LittleEndian
	case "MM\x00*":
		bo = binary.BigEndian
	default:
		return 1
	}
	ifd := int64(bo.Uint32(t[4:]))
	if ifd+2 > int64(len(t)) {
		return 1
	}
	count := int(bo.Uint16(t[ifd:]))
	for k := range count {
		e := ifd + 2 + 12*int64(k)
		if e+12 > int64(len(t)) {
			return 1
		}
		if bo.Uint16(t[e:]) != 0x0112 {
			continue
		}
		var v uint32
		switch bo.Uint16(t[e+2:]) {
		case 3: // SHORT, stored in the first 2 bytes of the value field
			v = uint32(bo.Uint16(t[e+8:]))
		case 4: // LONG
			v = bo.Uint32(t[e+8:])
		default:
			return 1
		}
		if v < 1 || v > 8 {
			return 1
		}
		return int(v)
	}
	return 1
}

// orient returns m transformed so that it displays upright for EXIF
// orientation o, with the same operations as Pillow's
// ImageOps.exif_transpose.
func orient(m *Image, o int) *Image {
	if o < 2 || o > 8 {
		return m
	}
	w, h := m.Width, m.Height
	ow, oh := w, h
	if o >= 5 { // the transposing orientations swap width and height
		ow, oh = h, w
	}
	out := &Image{Mode: m.Mode, Width: ow, Height: oh, Pix: make([]uint8, len(m.Pix)), Palette: m.Palette}
	c := m.Mode.Channels()
	for y := range oh {
		for x := range ow {
			var sx, sy int
			switch o {
			case 2: // mirrored left-right
				sx, sy = w-1-x, y
			case 3: // rotated 180°
				sx, sy = w-1-x, h-1-y
			case 4: // mirrored top-bottom
				sx, sy = x, h-1-y
			case 5: // transposed
				sx, sy = y, x
			case 6: // needs 90° clockwise
				sx, sy = y, h-1-x
			case 7: // transversed
				sx, sy = w-1-y, h-1-x
			case 8: // needs 90° counter-clockwise
				sx, sy = w-1-y, x
			}
			copy(out.Pix[c*(y*ow+x):c*(y*ow+x+1)], m.Pix[c*(sy*w+sx):])
		}
	}
	return out
}
