package imageproc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"

	"golang.org/x/image/webp"
)

// MaxPixels is the largest width×height Decode accepts (100 megapixels). The
// header is checked before any pixel is decoded, so a small file declaring
// a huge image cannot exhaust memory.
const MaxPixels = 100_000_000

// maxFileBytes bounds how much of a stream Decode reads. It is far above any
// real photo within MaxPixels.
const maxFileBytes = 512 << 20

var (
	// ErrFormat reports input that is not JPEG, PNG, GIF or WebP.
	ErrFormat = errors.New("imageproc: unknown image format (want JPEG, PNG, GIF or WebP)")
	// ErrTooLarge reports an image over MaxPixels (or a file over 512 MiB).
	ErrTooLarge = errors.New("imageproc: image too large")
)

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
// its content, into the Pillow mode Pillow would report for it. A JPEG's
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
	var (
		name   string
		config func(io.Reader) (image.Config, error)
		decode func([]byte) (*Image, error)
	)
	switch {
	case bytes.HasPrefix(data, []byte("\xff\xd8\xff")):
		name, config, decode = "JPEG", jpeg.DecodeConfig, decodeJPEG
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		name, config, decode = "PNG", png.DecodeConfig, decodePNG
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		name, config, decode = "GIF", gif.DecodeConfig, decodeGIF
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		name, config, decode = "WebP", webp.DecodeConfig, decodeWebP
	default:
		return nil, fmt.Errorf("%w: starts with % x", ErrFormat, data[:min(len(data), 8)])
	}
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

func decodeJPEG(data []byte) (*Image, error) {
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return orient(fromImage(img), jpegOrientation(data)), nil
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

// decodeWebP takes the mode from the file header, as libwebp (and so
// Pillow) does: RGBA only when the VP8X alpha flag or the VP8L alpha_is_used
// bit is set. x/image/webp returns NRGBA for every lossless file, so without
// the flag the alpha channel it returns is dropped.
func decodeWebP(data []byte) (*Image, error) {
	img, err := webp.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if y, ok := img.(*image.YCbCr); ok { // lossy without alpha: RGB
		return fromImage(y), nil
	}
	mode := ModeRGB
	if webpHasAlpha(data) {
		mode = ModeRGBA
	}
	b := img.Bounds()
	return fromNRGBA(nrgbaPix(img), b.Dx(), b.Dy(), mode), nil
}

func webpHasAlpha(b []byte) bool {
	if len(b) < 21 {
		return false
	}
	switch string(b[12:16]) {
	case "VP8X":
		return b[20]&0x10 != 0
	case "VP8L":
		// After the 0x2f signature: 14 bits width−1, 14 bits height−1, then
		// alpha_is_used, little-endian bit order.
		return len(b) >= 25 && binary.LittleEndian.Uint32(b[21:])>>28&1 != 0
	}
	return false
}
