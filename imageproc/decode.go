package imageproc

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"io"
	"os"
)

// MaxPixels is the largest width×height Decode accepts (100 megapixels). The
// header is checked before any pixel is decoded, so a small file declaring
// a huge image cannot exhaust memory.
const MaxPixels = 100_000_000

// maxFileBytes bounds how much of a stream Decode reads. It is far above any
// real photo within MaxPixels.
const maxFileBytes = 512 << 20

var (
	// ErrFormat reports input in none of the formats Decode knows (JPEG,
	// PNG, GIF or WebP; PNG or GIF in the js/wasm build).
	ErrFormat = errors.New("imageproc: unknown image format (want " + formatNames() + ")")
	// ErrTooLarge reports an image over MaxPixels (or a file over 512 MiB).
	ErrTooLarge = errors.New("imageproc: image too large")
)

// format is an image format Decode detects by its first bytes.
type format struct {
	name   string
	magic  func(data []byte) bool
	config func(io.Reader) (image.Config, error)
	decode func(data []byte) (*Image, error)
}

// formats are the formats Decode knows: the portable ones, then the
// platform's (JPEG and WebP outside js/wasm, see formats_native.go).
var formats = append(portableFormats, platformFormats...)

// portableFormats are built everywhere: the browser engine decodes palette
// images itself, since Pillow resizes them differently from the browser's
// pixels (see web/decode.js).
var portableFormats = []format{
	{"PNG", func(b []byte) bool { return bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) }, png.DecodeConfig, decodePNG},
	{"GIF", func(b []byte) bool {
		return bytes.HasPrefix(b, []byte("GIF87a")) || bytes.HasPrefix(b, []byte("GIF89a"))
	}, gif.DecodeConfig, decodeGIF},
}

// detectFormat returns the format whose magic data starts with, or nil.
func detectFormat(data []byte) *format {
	for i := range formats {
		if formats[i].magic(data) {
			return &formats[i]
		}
	}
	return nil
}

// formatNames lists the known formats for ErrFormat, e.g. "PNG or GIF".
func formatNames() string {
	var s string
	for i, f := range formats {
		switch {
		case i == 0:
		case i == len(formats)-1:
			s += " or "
		default:
			s += ", "
		}
		s += f.name
	}
	return s
}

func checkPixels(w, h int) error {
	if int64(w)*int64(h) > MaxPixels {
		return fmt.Errorf("%w: %d×%d is %.1f megapixels, over the %d-megapixel limit",
			ErrTooLarge, w, h, float64(w)*float64(h)/1e6, MaxPixels/1_000_000)
	}
	return nil
}

// DecodeFile reads and decodes the image file at path (see Decode).
func DecodeFile(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("imageproc: %w", err)
	}
	defer f.Close()
	m, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Decode reads a JPEG, PNG, GIF (first frame) or WebP image, detected from
// its content (PNG and GIF only in the js/wasm build, see formats), into the Pillow mode Pillow would report for it. A JPEG's
// EXIF orientation is applied. Images over MaxPixels are refused from their
// header, before decoding.
func Decode(r io.Reader) (*Image, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("imageproc: reading image: %w", err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%w: file is over %d MiB", ErrTooLarge, maxFileBytes>>20)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrFormat)
	}
	f := detectFormat(data)
	if f == nil {
		return nil, fmt.Errorf("%w: starts with % x", ErrFormat, data[:min(len(data), 8)])
	}
	name, config, decode := f.name, f.config, f.decode
	cfg, err := config(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("imageproc: reading %s header: %w", name, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("imageproc: %s header declares an empty %d×%d image", name, cfg.Width, cfg.Height)
	}
	if err := checkPixels(cfg.Width, cfg.Height); err != nil {
		return nil, fmt.Errorf("%w (%s header)", err, name)
	}
	m, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("imageproc: decoding %s: %w", name, err)
	}
	return m, nil
}

// decodePNG takes the mode from the IHDR colour type, as Pillow does: a tRNS
// chunk makes image/png return NRGBA for gray and RGB files, but Pillow keeps
// them L and RGB (transparency is only metadata there), so they must not be
// resized as RGBA. 16-bit gray, which Pillow opens as mode I, becomes L from
// the high byte instead (Pillow's I→RGB would clip it to white).
func decodePNG(data []byte) (*Image, error) {
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if p, ok := img.(*image.Paletted); ok {
		return fromPaletted(p), nil
	}
	// DecodeConfig has read IHDR: 8-byte signature, length, type, width,
	// height, then bit depth at 24 and colour type at 25.
	depth, colorType := data[24], data[25]
	var mode Mode
	switch colorType {
	case 0:
		mode = ModeL
		if depth == 1 {
			mode = Mode1
		}
	case 4:
		mode = ModeLA
	case 6:
		mode = ModeRGBA
	default:
		mode = ModeRGB
	}
	b := img.Bounds()
	return fromNRGBA(nrgbaPix(img), b.Dx(), b.Dy(), mode), nil
}

// decodeGIF returns the first frame in mode P on the logical screen, as
// Pillow does. image/gif blanks the palette entry of the transparent index,
// but Pillow's convert("RGB") uses its colour, so it is read back from the
// file's colour table.
func decodeGIF(data []byte) (*Image, error) {
	cfg, err := gif.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	img, err := gif.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	p, ok := img.(*image.Paletted)
	if !ok {
		return nil, fmt.Errorf("first frame is %T, not paletted", img)
	}
	frame := fromPaletted(p)
	table, ti := gifFirstFrameTable(data)
	if ti >= 0 {
		// Past the end of the table Pillow's palette keeps its gray ramp.
		c := color.NRGBA{uint8(ti), uint8(ti), uint8(ti), 0}
		if 3*ti+3 <= len(table) {
			c = color.NRGBA{table[3*ti], table[3*ti+1], table[3*ti+2], 0}
		}
		frame.Palette[ti] = c
	}
	if p.Rect == image.Rect(0, 0, cfg.Width, cfg.Height) {
		return frame, nil
	}
	// A frame smaller than the screen: Pillow fills the rest with the
	// transparent index, or 0 when there is none.
	screen := newImage(ModeP, cfg.Width, cfg.Height)
	screen.Palette = frame.Palette
	if ti >= 0 {
		for i := range screen.Pix {
			screen.Pix[i] = uint8(ti)
		}
	}
	r := p.Rect.Intersect(screen.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		copy(screen.Pix[y*cfg.Width+r.Min.X:y*cfg.Width+r.Max.X], frame.Pix[(y-p.Rect.Min.Y)*frame.Width+r.Min.X-p.Rect.Min.X:])
	}
	return screen, nil
}

// gifFirstFrameTable walks the GIF blocks up to the first image and returns
// the colour table it uses (local, else global) as RGB triples, and the
// transparent index from its graphic control extension (−1 if none). The
// file has already been decoded by image/gif, so a structure it could not
// walk simply yields no table.
func gifFirstFrameTable(b []byte) (table []byte, transparent int) {
	transparent = -1
	if len(b) < 13 {
		return nil, -1
	}
	i := 13
	if flags := b[10]; flags&0x80 != 0 {
		n := 3 << (flags&7 + 1)
		if i+n > len(b) {
			return nil, -1
		}
		table, i = b[i:i+n], i+n
	}
	for i < len(b) {
		switch b[i] {
		case 0x21: // extension: label, then data sub-blocks
			if i+1 >= len(b) {
				return nil, -1
			}
			if b[i+1] == 0xf9 && i+6 < len(b) && b[i+2] == 4 {
				transparent = -1
				if b[i+3]&1 != 0 {
					transparent = int(b[i+6])
				}
			}
			i += 2
			for i < len(b) && b[i] != 0 {
				i += int(b[i]) + 1
			}
			i++
		case 0x2c: // image descriptor: 9 bytes, maybe a local table
			if i+10 > len(b) {
				return nil, -1
			}
			if flags := b[i+9]; flags&0x80 != 0 {
				n := 3 << (flags&7 + 1)
				if i+10+n > len(b) {
					return nil, -1
				}
				table = b[i+10 : i+10+n]
			}
			return table, transparent
		default:
			return nil, -1
		}
	}
	return nil, -1
}
