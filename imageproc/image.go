// Package imageproc turns image files into the [3,N,N] float32 tensors that
// CLIP's image towers take, reproducing what OpenAI's clip `_transform(N)`
// does with Pillow 9.4 and torchvision 0.14: Resize(N, BICUBIC) of the short
// side, CenterCrop(N), convert("RGB"), ToTensor, Normalize.
//
// The resize, crop and normalisation are bit-exact with Pillow given the same
// decoded pixels. PNG, GIF and lossless WebP decode to the same pixels as
// Pillow. JPEG is decoded with image/jpeg plus libjpeg-turbo's chroma
// upsampling and colour conversion; only the IDCT still differs (±1–3 levels).
// Unlike CLIP, Decode applies the JPEG EXIF orientation, because phones store
// rotated photos that way.
package imageproc

import (
	"fmt"
	"image"
	"image/color"
)

// Mode is a Pillow image mode: how many channels a pixel has and what they
// mean. The mode decides how Pillow resizes an image (palette images with
// NEAREST, images with alpha premultiplied), so it is kept from decoding to
// resizing.
type Mode uint8

// The Pillow modes this package produces.
const (
	ModeL    Mode = iota + 1 // 8-bit gray
	ModeLA                   // gray and straight (non-premultiplied) alpha
	ModeRGB                  // 8-bit red, green, blue
	ModeRGBA                 // RGB and straight alpha
	ModeP                    // 8-bit indices into Image.Palette
	Mode1                    // bilevel, stored as 0 or 255 per pixel
)

// String returns Pillow's name for the mode.
func (m Mode) String() string {
	switch m {
	case ModeL:
		return "L"
	case ModeLA:
		return "LA"
	case ModeRGB:
		return "RGB"
	case ModeRGBA:
		return "RGBA"
	case ModeP:
		return "P"
	case Mode1:
		return "1"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Channels returns the number of bytes per pixel in Image.Pix.
func (m Mode) Channels() int {
	switch m {
	case ModeLA:
		return 2
	case ModeRGB:
		return 3
	case ModeRGBA:
		return 4
	}
	return 1
}

// hasAlpha reports whether Pillow resizes the mode in premultiplied form.
func (m Mode) hasAlpha() bool { return m == ModeLA || m == ModeRGBA }

// Image is a decoded image in a Pillow mode. It implements image.Image, with
// its origin at (0, 0).
type Image struct {
	Mode          Mode
	Width, Height int
	// Pix holds Height rows of Width pixels, Mode.Channels() bytes each, with
	// no padding.
	Pix []uint8
	// Palette has 256 entries for ModeP and is nil otherwise. Its alpha is
	// informational: convert("RGB") uses the colour even where alpha is 0, as
	// Pillow does for a GIF's transparent index.
	Palette []color.NRGBA
}

func newImage(mode Mode, w, h int) *Image {
	return &Image{Mode: mode, Width: w, Height: h, Pix: make([]uint8, w*h*mode.Channels())}
}

// check reports an Image whose fields disagree, so that a hand-built Image
// gives an error rather than a panic.
func (m *Image) check() error {
	switch {
	case m.Mode < ModeL || m.Mode > Mode1:
		return fmt.Errorf("imageproc: invalid image mode %v", m.Mode)
	case m.Width <= 0 || m.Height <= 0:
		return fmt.Errorf("imageproc: empty %d×%d image", m.Width, m.Height)
	}
	if err := checkPixels(m.Width, m.Height); err != nil {
		return err
	}
	if want := m.Width * m.Height * m.Mode.Channels(); len(m.Pix) != want {
		return fmt.Errorf("imageproc: %v %d×%d image has %d bytes of pixels, want %d", m.Mode, m.Width, m.Height, len(m.Pix), want)
	}
	if m.Mode == ModeP && len(m.Palette) < 256 {
		return fmt.Errorf("imageproc: palette image has %d palette entries, want 256", len(m.Palette))
	}
	return nil
}

// ColorModel implements image.Image.
func (m *Image) ColorModel() color.Model {
	switch m.Mode {
	case ModeL, Mode1:
		return color.GrayModel
	case ModeRGB:
		return color.RGBAModel
	case ModeP:
		p := make(color.Palette, len(m.Palette))
		for i, c := range m.Palette {
			p[i] = c
		}
		return p
	}
	return color.NRGBAModel
}

// Bounds implements image.Image.
func (m *Image) Bounds() image.Rectangle { return image.Rect(0, 0, m.Width, m.Height) }

// At implements image.Image.
func (m *Image) At(x, y int) color.Color {
	if x < 0 || y < 0 || x >= m.Width || y >= m.Height {
		return color.NRGBA{}
	}
	c := m.Mode.Channels()
	p := m.Pix[(y*m.Width+x)*c:]
	switch m.Mode {
	case ModeL, Mode1:
		return color.Gray{Y: p[0]}
	case ModeLA:
		return color.NRGBA{p[0], p[0], p[0], p[1]}
	case ModeRGB:
		return color.RGBA{p[0], p[1], p[2], 0xff}
	case ModeRGBA:
		return color.NRGBA{p[0], p[1], p[2], p[3]}
	case ModeP:
		if int(p[0]) < len(m.Palette) {
			return m.Palette[p[0]]
		}
	}
	return color.NRGBA{}
}

// ToRGB returns the image in ModeRGB, converted as Pillow's convert("RGB")
// does: gray is replicated, alpha is dropped without compositing, palette
// indices are looked up (ignoring the palette's alpha). An RGB image is
// returned as is.
func (m *Image) ToRGB() *Image {
	if m.Mode == ModeRGB {
		return m
	}
	out := newImage(ModeRGB, m.Width, m.Height)
	c := m.Mode.Channels()
	n := m.Width * m.Height
	for i := range n {
		d := out.Pix[3*i : 3*i+3]
		s := m.Pix[c*i:]
		switch m.Mode {
		case ModeL, ModeLA, Mode1:
			d[0], d[1], d[2] = s[0], s[0], s[0]
		case ModeRGBA:
			d[0], d[1], d[2] = s[0], s[1], s[2]
		case ModeP:
			if int(s[0]) < len(m.Palette) {
				p := m.Palette[s[0]]
				d[0], d[1], d[2] = p.R, p.G, p.B
			}
		}
	}
	return out
}

// FromRGBA wraps pixels decoded elsewhere (a browser canvas's ImageData) as
// a ModeRGBA image: 4 bytes per pixel, straight alpha, rows stride bytes
// apart. The pixels are copied.
func FromRGBA(pix []byte, w, h, stride int) (*Image, error) {
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("imageproc: FromRGBA: bad size %d×%d", w, h)
	}
	if err := checkPixels(w, h); err != nil {
		return nil, err
	}
	if stride < 4*w {
		return nil, fmt.Errorf("imageproc: FromRGBA: stride %d is less than 4×width (%d)", stride, 4*w)
	}
	if h > 1 && stride > len(pix)/(h-1) {
		return nil, fmt.Errorf("imageproc: FromRGBA: %d bytes cannot hold %d rows %d bytes apart", len(pix), h, stride)
	}
	if need := stride*(h-1) + 4*w; len(pix) < need {
		return nil, fmt.Errorf("imageproc: FromRGBA: %d bytes, want at least %d for %d×%d with stride %d", len(pix), need, w, h, stride)
	}
	m := newImage(ModeRGBA, w, h)
	for y := range h {
		copy(m.Pix[y*4*w:(y+1)*4*w], pix[y*stride:])
	}
	return m, nil
}

// fromImage converts a Go image to the Pillow mode Pillow would report for
// it. YCbCr images at the origin (image/jpeg's output) are converted as
// libjpeg-turbo converts them (see ycbcrToRGB). Images with alpha that are
// fully opaque become RGB: Pillow's premultiplied resize leaves such an
// image exactly as the plain RGB resize would, and RGB is cheaper.
func fromImage(img image.Image) *Image {
	switch m := img.(type) {
	case *Image:
		return m
	case *image.Paletted:
		return fromPaletted(m)
	case *image.Gray, *image.Gray16:
		return fromNRGBA(nrgbaPix(img), img.Bounds().Dx(), img.Bounds().Dy(), ModeL)
	case *image.YCbCr:
		if m.Rect.Min == (image.Point{}) {
			return &Image{Mode: ModeRGB, Width: m.Rect.Dx(), Height: m.Rect.Dy(), Pix: ycbcrToRGB(m)}
		}
	}
	b := img.Bounds()
	pix := nrgbaPix(img)
	mode := ModeRGB
	for i := 3; i < len(pix); i += 4 {
		if pix[i] != 0xff {
			mode = ModeRGBA
			break
		}
	}
	return fromNRGBA(pix, b.Dx(), b.Dy(), mode)
}

// fromPaletted keeps the indices and pads the palette to 256 entries the way
// Pillow initialises a palette (a gray ramp), so any index is valid.
func fromPaletted(p *image.Paletted) *Image {
	b := p.Bounds()
	w, h := b.Dx(), b.Dy()
	m := newImage(ModeP, w, h)
	for y := range h {
		off := p.PixOffset(b.Min.X, b.Min.Y+y)
		copy(m.Pix[y*w:(y+1)*w], p.Pix[off:off+w])
	}
	m.Palette = make([]color.NRGBA, 256)
	for i := range m.Palette {
		if i < len(p.Palette) {
			m.Palette[i] = color.NRGBAModel.Convert(p.Palette[i]).(color.NRGBA)
		} else {
			m.Palette[i] = color.NRGBA{uint8(i), uint8(i), uint8(i), 0xff}
		}
	}
	return m
}

// nrgbaPix returns the pixels of img as tightly packed 8-bit straight RGBA.
// Types whose samples are stored straight are read directly (16-bit samples
// keep their high byte, as Pillow's PNG reader does), so colour under
// transparent pixels survives; other types go through color.NRGBAModel.
func nrgbaPix(img image.Image) []uint8 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]uint8, 4*w*h)
	switch m := img.(type) {
	case *image.NRGBA:
		for y := range h {
			off := m.PixOffset(b.Min.X, b.Min.Y+y)
			copy(out[4*w*y:4*w*(y+1)], m.Pix[off:off+4*w])
		}
		return out
	case *image.NRGBA64:
		for y := range h {
			off := m.PixOffset(b.Min.X, b.Min.Y+y)
			for x := range 4 * w {
				out[4*w*y+x] = m.Pix[off+2*x]
			}
		}
		return out
	case *image.Gray:
		for y := range h {
			off := m.PixOffset(b.Min.X, b.Min.Y+y)
			for x := range w {
				v := m.Pix[off+x]
				copy(out[4*(w*y+x):], []uint8{v, v, v, 0xff})
			}
		}
		return out
	case *image.NYCbCrA:
		if b.Min == (image.Point{}) {
			rgb := ycbcrToRGB(&m.YCbCr)
			for y := range h {
				for x := range w {
					i := w*y + x
					copy(out[4*i:], rgb[3*i:3*i+3])
					out[4*i+3] = m.A[m.AOffset(x, y)]
				}
			}
			return out
		}
	}
	for y := range h {
		for x := range w {
			c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			copy(out[4*(w*y+x):], []uint8{c.R, c.G, c.B, c.A})
		}
	}
	return out
}

// fromNRGBA packs straight RGBA pixels into mode (not ModeP).
func fromNRGBA(pix []uint8, w, h int, mode Mode) *Image {
	m := newImage(mode, w, h)
	c := mode.Channels()
	for i := range w * h {
		s, d := pix[4*i:4*i+4], m.Pix[c*i:]
		switch mode {
		case ModeL, Mode1:
			d[0] = s[0]
		case ModeLA:
			d[0], d[1] = s[0], s[3]
		default:
			copy(d[:c], s)
		}
	}
	return m
}
