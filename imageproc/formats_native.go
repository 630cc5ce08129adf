//go:build !(js && wasm)

package imageproc

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/jpeg"

	"golang.org/x/image/webp"
)

// platformFormats: JPEG and WebP are decoded natively; in the browser
// createImageBitmap decodes them (web/decode.js), so the js/wasm build
// leaves their decoders out (formats_js.go).
var platformFormats = []format{
	{"JPEG", func(b []byte) bool { return bytes.HasPrefix(b, []byte("\xff\xd8\xff")) }, jpeg.DecodeConfig, decodeJPEG},
	{"WebP", func(b []byte) bool { return len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP" }, webp.DecodeConfig, decodeWebP},
}

func decodeJPEG(data []byte) (*Image, error) {
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return orient(fromImage(img), jpegOrientation(data)), nil
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
