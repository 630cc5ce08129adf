package imageproc

import (
	"bytes"
	"compress/lzw"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/clipwasm/clipwasm/internal/fixtures"
)

// pngChunk appends one PNG chunk with its CRC.
func pngChunk(b []byte, typ string, data []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	start := len(b)
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[start:]))
}

// makePNG builds a PNG by hand, for the colour types and chunks image/png's
// encoder never writes (LA, tRNS on gray and RGB, 1-bit gray). rows are the
// raw scanlines without filter bytes; nil rows give a header-only file.
func makePNG(t *testing.T, w, h int, depth, colorType byte, trns []byte, rows [][]byte) []byte {
	t.Helper()
	b := []byte("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(h))
	ihdr = append(ihdr, depth, colorType, 0, 0, 0)
	b = pngChunk(b, "IHDR", ihdr)
	if trns != nil {
		b = pngChunk(b, "tRNS", trns)
	}
	if rows == nil {
		return b
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	for _, r := range rows {
		zw.Write(append([]byte{0}, r...))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	b = pngChunk(b, "IDAT", z.Bytes())
	return pngChunk(b, "IEND", nil)
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(fixtures.Path("images", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// encodeJPEG encodes m with image/jpeg at quality 100.
func encodeJPEG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// withAPP1 splices an APP1 segment holding payload right after SOI.
func withAPP1(jpg, payload []byte) []byte {
	seg := []byte{0xff, 0xe1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(payload)+2))
	seg = append(seg, payload...)
	return append(append(append([]byte{}, jpg[:2]...), seg...), jpg[2:]...)
}

// exifTIFF returns an Exif APP1 payload whose IFD0 holds one orientation
// entry of the given TIFF type.
func exifTIFF(bo binary.AppendByteOrder, typ uint16, orientation uint32) []byte {
	b := []byte("Exif\x00\x00")
	if bo == binary.AppendByteOrder(binary.LittleEndian) {
		b = append(b, "II*\x00"...)
	} else {
		b = append(b, "MM\x00*"...)
	}
	b = bo.AppendUint32(b, 8)
	b = bo.AppendUint16(b, 1)
	b = bo.AppendUint16(b, 0x0112)
	b = bo.AppendUint16(b, typ)
	b = bo.AppendUint32(b, 1)
	if typ == 3 {
		b = bo.AppendUint16(b, uint16(orientation))
		b = bo.AppendUint16(b, 0)
	} else {
		b = bo.AppendUint32(b, orientation)
	}
	return bo.AppendUint32(b, 0) // no next IFD
}

// blocksImage is a 3×2 grid of 16-pixel gray blocks A–F:
//
//	A B C
//	D E F
func blocksImage() *image.Gray {
	m := image.NewGray(image.Rect(0, 0, 48, 32))
	for y := range 32 {
		for x := range 48 {
			m.Pix[y*48+x] = blockLevel["ABCDEF"[y/16*3+x/16]]
		}
	}
	return m
}

var blockLevel = map[byte]uint8{'A': 20, 'B': 60, 'C': 100, 'D': 140, 'E': 180, 'F': 220}

func TestEXIFOrientation(t *testing.T) {
	base := encodeJPEG(t, blocksImage())
	for _, tc := range []struct {
		orientation uint32
		want        []string // block rows as they must appear upright
	}{
		{1, []string{"ABC", "DEF"}},
		{2, []string{"CBA", "FED"}},
		{3, []string{"FED", "CBA"}},
		{4, []string{"DEF", "ABC"}},
		{5, []string{"AD", "BE", "CF"}},
		{6, []string{"DA", "EB", "FC"}},
		{7, []string{"FC", "EB", "DA"}},
		{8, []string{"CF", "BE", "AD"}},
	} {
		for _, enc := range []struct {
			name string
			bo   binary.AppendByteOrder
			typ  uint16
		}{{"II/SHORT", binary.LittleEndian, 3}, {"MM/SHORT", binary.BigEndian, 3}, {"MM/LONG", binary.BigEndian, 4}} {
			data := withAPP1(base, exifTIFF(enc.bo, enc.typ, tc.orientation))
			m, err := Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("orientation %d %s: %v", tc.orientation, enc.name, err)
			}
			if m.Width != 16*len(tc.want[0]) || m.Height != 16*len(tc.want) {
				t.Errorf("orientation %d %s: %d×%d, want %d×%d", tc.orientation, enc.name, m.Width, m.Height, 16*len(tc.want[0]), 16*len(tc.want))
				continue
			}
			for by, row := range tc.want {
				for bx := range row {
					got := m.Pix[(16*by+8)*m.Width+16*bx+8]
					if want := blockLevel[row[bx]]; got < want-4 || got > want+4 {
						t.Errorf("orientation %d %s: block (%d,%d) is %d, want %c (%d)", tc.orientation, enc.name, bx, by, got, row[bx], want)
					}
				}
			}
		}
	}
}

func TestMalformedEXIFIsIgnored(t *testing.T) {
	base := encodeJPEG(t, blocksImage())
	valid := exifTIFF(binary.BigEndian, 3, 6)
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"garbage after header", []byte("Exif\x00\x00garbage")},
		{"empty TIFF", []byte("Exif\x00\x00")},
		{"bad byte order", append([]byte("Exif\x00\x00XX\x00*"), valid[10:]...)},
		{"IFD offset past end", append(append([]byte{}, valid[:10]...), 0xff, 0xff, 0xff, 0xf0)},
		{"entry count past end", append(append([]byte{}, valid[:14]...), 0xff, 0xff)},
		{"cut inside entry", valid[:20]},
		{"orientation 0", exifTIFF(binary.BigEndian, 3, 0)},
		{"orientation 9", exifTIFF(binary.BigEndian, 3, 9)},
		{"orientation as ASCII", exifTIFF(binary.BigEndian, 2, 6)},
		{"huge LONG", exifTIFF(binary.LittleEndian, 4, 1<<31+6)},
		{"XMP, not Exif", []byte("http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>")},
	} {
		m, err := Decode(bytes.NewReader(withAPP1(base, tc.payload)))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if m.Width != 48 || m.Height != 32 {
			t.Errorf("%s: %d×%d, want the unrotated 48×32", tc.name, m.Width, m.Height)
		}
	}
	// Every prefix of a valid Exif JPEG header parses without panicking.
	data := withAPP1(base, valid)
	for n := range 64 {
		jpegOrientation(data[:n])
	}
}

func TestBadInput(t *testing.T) {
	fixtures.Require(t)
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	half := func(name string) []byte { b := readFixture(t, name); return b[:len(b)/2] }
	head := func(name string, n int) []byte { return readFixture(t, name)[:n] }

	hugePNG := makePNG(t, 20000, 20000, 8, 2, nil, nil)
	hugeGIF := append([]byte("GIF89a"), 0x20, 0x4e, 0x20, 0x4e, 0, 0, 0) // 20000×20000 screen
	hugeGIF = append(hugeGIF, 0x2c, 0, 0, 0, 0, 0x20, 0x4e, 0x20, 0x4e, 0, 2, 0, 0x3b)
	hugeJPEG := encodeJPEG(t, image.NewGray(image.Rect(0, 0, 8, 8)))
	if i := bytes.Index(hugeJPEG, []byte{0xff, 0xc0}); i < 0 {
		t.Fatal("no SOF0 in encoded JPEG")
	} else {
		binary.BigEndian.PutUint16(hugeJPEG[i+5:], 20000)
		binary.BigEndian.PutUint16(hugeJPEG[i+7:], 20000)
	}
	// VP8L: 14-bit width−1 and height−1 of 16383 each → 16384×16384.
	hugeWebP := []byte("RIFF\x00\x00\x00\x00WEBPVP8L\x00\x00\x00\x00\x2f\xff\xff\xff\x0f")
	binary.LittleEndian.PutUint32(hugeWebP[4:], uint32(len(hugeWebP)-8))
	binary.LittleEndian.PutUint32(hugeWebP[16:], uint32(len(hugeWebP)-20))

	for _, tc := range []struct {
		name string
		data []byte
		want error  // errors.Is target, or nil
		text string // must appear in the message
	}{
		{"empty", nil, ErrFormat, "empty input"},
		{"random bytes", random, ErrFormat, "unknown image format"},
		{"text", []byte("hello, world"), ErrFormat, "unknown image format"},
		{"PNG signature only", head("gray_256x256.png", 8), nil, "PNG header"},
		{"truncated PNG", half("gray_256x256.png"), nil, "decoding PNG"},
		{"truncated JPEG header", head("photo_640x480.jpg", 100), nil, "JPEG header"},
		{"truncated JPEG", half("photo_640x480.jpg"), nil, "decoding JPEG"},
		{"truncated GIF", half("palette_200x150.gif"), nil, "decoding GIF"},
		{"truncated GIF header", head("palette_200x150.gif", 10), nil, "GIF header"},
		{"truncated WebP", half("lossless_160x120.webp"), nil, "decoding WebP"},
		{"truncated WebP header", head("lossless_160x120.webp", 16), nil, "WebP header"},
		{"20000×20000 PNG", hugePNG, ErrTooLarge, "400.0 megapixels, over the 100-megapixel limit"},
		{"20000×20000 GIF", hugeGIF, ErrTooLarge, "megapixel limit"},
		{"20000×20000 JPEG", hugeJPEG, ErrTooLarge, "megapixel limit"},
		{"16384×16384 WebP", hugeWebP, ErrTooLarge, "megapixel limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(bytes.NewReader(tc.data))
			if err == nil {
				t.Fatalf("decoded a %d×%d image, want an error", m.Width, m.Height)
			}
			t.Log(err)
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %q is not %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not mention %q", err, tc.text)
			}
		})
	}
}

func TestDecodeFileMissing(t *testing.T) {
	_, err := DecodeFile(t.TempDir() + "/nope.jpg")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want a not-exist error", err)
	}
}

// TestPNGModes checks the IHDR-driven modes for the PNG kinds image/png
// returns as NRGBA, and the resampling each mode implies.
func TestPNGModes(t *testing.T) {
	const w, h = 40, 30
	row := func(f func(x int) []byte) []byte {
		var r []byte
		for x := range w {
			r = append(r, f(x)...)
		}
		return r
	}
	rows := func(f func(x, y int) []byte) [][]byte {
		out := make([][]byte, h)
		for y := range h {
			out[y] = row(func(x int) []byte { return f(x, y) })
		}
		return out
	}
	gray := func(x, y int) byte { return byte(x*6 + y) }
	for _, tc := range []struct {
		name  string
		png   []byte
		mode  Mode
		pixel []byte // want at (3, 2)
	}{
		{"gray+tRNS stays L", makePNG(t, w, h, 8, 0, []byte{0, gray(3, 2)}, rows(func(x, y int) []byte { return []byte{gray(x, y)} })), ModeL, []byte{gray(3, 2)}},
		{"RGB+tRNS stays RGB", makePNG(t, w, h, 8, 2, []byte{0, 9, 0, 8, 0, 7}, rows(func(x, y int) []byte { return []byte{9, 8, 7} })), ModeRGB, []byte{9, 8, 7}},
		{"gray+alpha is LA", makePNG(t, w, h, 8, 4, nil, rows(func(x, y int) []byte { return []byte{gray(x, y), byte(x * 6)} })), ModeLA, []byte{gray(3, 2), 18}},
		{"1-bit gray is 1", makePNG(t, w, h, 1, 0, nil, rows(func(x, y int) []byte {
			if x >= w/8 {
				return nil
			}
			return []byte{0b10110010}
		})), Mode1, []byte{255}},
		{"16-bit RGBA keeps high bytes", makePNG(t, w, h, 16, 6, nil, rows(func(x, y int) []byte { return []byte{1, 2, 3, 4, 5, 6, 7, 8} })), ModeRGBA, []byte{1, 3, 5, 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(bytes.NewReader(tc.png))
			if err != nil {
				t.Fatal(err)
			}
			if m.Mode != tc.mode {
				t.Fatalf("mode %v, want %v", m.Mode, tc.mode)
			}
			c := m.Mode.Channels()
			if got := m.Pix[(2*w+3)*c : (2*w+4)*c]; !bytes.Equal(got, tc.pixel) {
				t.Errorf("pixel (3,2) = %v, want %v", got, tc.pixel)
			}
		})
	}

	// Mode 1 is resized with NEAREST, so only black and white come out.
	one, err := Decode(bytes.NewReader(makePNG(t, w, h, 1, 0, nil, rows(func(x, y int) []byte {
		if x >= w/8 {
			return nil
		}
		return []byte{0b10110010 ^ byte(y)}
	}))))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ResizeShortSide(one, 17)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range r.Pix {
		if v != 0 && v != 255 {
			t.Fatalf("mode 1 resize produced %d at %d: not NEAREST", v, i)
		}
	}
}

// TestLAResizesLikeRGBA: Pillow's LA→La and RGBA→RGBa use the same
// formulas, so an LA image must preprocess exactly like its RGBA twin.
func TestLAResizesLikeRGBA(t *testing.T) {
	la := newImage(ModeLA, 57, 41)
	rgba := newImage(ModeRGBA, 57, 41)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 57 * 41 {
		l, a := byte(rng.Uint32()), byte(rng.Uint32())
		if i%5 == 0 {
			a = 0
		}
		la.Pix[2*i], la.Pix[2*i+1] = l, a
		copy(rgba.Pix[4*i:], []byte{l, l, l, a})
	}
	for _, n := range []int{16, 41, 64} {
		a, err := Preprocess(la, OpenAIOptions(n))
		if err != nil {
			t.Fatal(err)
		}
		b, err := Preprocess(rgba, OpenAIOptions(n))
		if err != nil {
			t.Fatal(err)
		}
		fixtures.AssertClose(t, "LA vs RGBA", a, b, 0)
	}
}

// TestPaletteStaysNearest: a P image's resize only copies palette colours.
func TestPaletteStaysNearest(t *testing.T) {
	p := image.NewPaletted(image.Rect(0, 0, 31, 23), color.Palette{
		color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}, color.NRGBA{0, 255, 0, 0},
	})
	for i := range p.Pix {
		p.Pix[i] = uint8(i % 3)
	}
	r, err := ResizeShortSide(p, 50)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(r.Pix); i += 3 {
		switch [3]uint8(r.Pix[i : i+3]) {
		case [3]uint8{255, 0, 0}, [3]uint8{0, 0, 255}, [3]uint8{0, 255, 0}:
		default:
			t.Fatalf("pixel %d is %v, not a palette colour", i/3, r.Pix[i:i+3])
		}
	}
}

func TestGIFTransparentIndexKeepsColour(t *testing.T) {
	fixtures.Require(t)
	m, err := DecodeFile(fixtures.Path("images", "palette_200x150.gif"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Palette[24], (color.NRGBA{66, 184, 196, 0}); got != want {
		t.Errorf("palette[24] = %v, want %v (the global table's colour)", got, want)
	}
}

// TestGIFLocalTableAndOffsetFrame: a first frame smaller than the screen,
// with a local colour table and a transparent index. Pillow fills the rest
// of the screen with the transparent index and keeps the local colour.
func TestGIFLocalTableAndOffsetFrame(t *testing.T) {
	b := []byte("GIF89a")
	b = append(b, 4, 0, 3, 0, 0x81, 0, 0) // 4×3 screen, 4-colour global table
	b = append(b, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4)
	b = append(b, 0x21, 0xf9, 4, 1, 0, 0, 1, 0)       // GCE: transparent index 1
	b = append(b, 0x2c, 1, 0, 1, 0, 2, 0, 2, 0, 0x81) // 2×2 at (1,1), local table
	b = append(b, 50, 0, 0, 10, 20, 30, 0, 50, 0, 0, 0, 50)
	var lz bytes.Buffer
	w := lzw.NewWriter(&lz, lzw.LSB, 2)
	w.Write([]byte{0, 1, 2, 3})
	w.Close()
	b = append(b, 2, byte(lz.Len()))
	b = append(b, lz.Bytes()...)
	b = append(b, 0, 0x3b)

	m, err := Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if m.Mode != ModeP || m.Width != 4 || m.Height != 3 {
		t.Fatalf("got %v %d×%d, want P 4×3", m.Mode, m.Width, m.Height)
	}
	wantIdx := []uint8{1, 1, 1, 1, 1, 0, 1, 1, 1, 2, 3, 1}
	if !bytes.Equal(m.Pix, wantIdx) {
		t.Errorf("indices %v, want %v", m.Pix, wantIdx)
	}
	if got := m.ToRGB().Pix[:3]; !bytes.Equal(got, []byte{10, 20, 30}) {
		t.Errorf("transparent index converts to %v, want the local table's 10 20 30", got)
	}
}

// TestWebPAlphaFlag: with VP8L's alpha_is_used bit set, Pillow opens the
// fixture as RGBA; its alpha is all 255, so the tensor must not change.
func TestWebPAlphaFlag(t *testing.T) {
	fixtures.Require(t)
	data := readFixture(t, "lossless_160x120.webp")
	data[24] |= 0x10 // bit 28 of the little-endian word at 21
	m, err := Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if m.Mode != ModeRGBA {
		t.Fatalf("mode %v, want RGBA", m.Mode)
	}
	got, err := Preprocess(m, OpenAIOptions(64))
	if err != nil {
		t.Fatal(err)
	}
	want := fixtures.LoadNpy(t, "openai", "preprocess", "lossless_160x120.n64.npy")
	fixtures.AssertClose(t, "RGBA-flagged WebP", got, want.F32, 0)
}

// TestFromRGBA: browser pixels (straight RGBA, padded rows) go through the
// same premultiplied resize as Pillow's RGBA mode.
func TestFromRGBA(t *testing.T) {
	fixtures.Require(t)
	png, err := DecodeFile(fixtures.Path("images", "rgba_333x500.png"))
	if err != nil {
		t.Fatal(err)
	}
	const stride = 333*4 + 12
	pix := make([]byte, stride*500)
	for y := range 500 {
		copy(pix[y*stride:], png.Pix[y*333*4:(y+1)*333*4])
	}
	m, err := FromRGBA(pix, 333, 500, stride)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Preprocess(m, OpenAIOptions(224))
	if err != nil {
		t.Fatal(err)
	}
	want := fixtures.LoadNpy(t, "openai", "preprocess", "rgba_333x500.n224.npy")
	fixtures.AssertClose(t, "FromRGBA", got, want.F32, 0)

	for _, tc := range []struct {
		name      string
		pix       []byte
		w, h, str int
	}{
		{"zero width", pix, 0, 500, stride},
		{"short stride", pix, 333, 500, 333*4 - 1},
		{"short buffer", pix[:len(pix)-13], 333, 500, stride},
		{"over the pixel limit", pix, 20000, 20000, 80000},
	} {
		if _, err := FromRGBA(tc.pix, tc.w, tc.h, tc.str); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestPreprocessOptionErrors(t *testing.T) {
	m := newImage(ModeRGB, 10, 10)
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"zero size", Options{Size: 0, Mean: OpenAIMean, Std: OpenAIStd}},
		{"zero std", Options{Size: 8}},
		{"resize over the limit", OpenAIOptions(20000)},
	} {
		if _, err := Preprocess(m, tc.o); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	for _, bad := range []*Image{
		{Mode: ModeRGB, Width: 10, Height: 10, Pix: make([]uint8, 299)},
		{Mode: ModeP, Width: 2, Height: 2, Pix: make([]uint8, 4)},
		{Mode: 0, Width: 1, Height: 1, Pix: make([]uint8, 1)},
		{Mode: ModeL, Width: -1, Height: -1},
	} {
		if _, err := Preprocess(bad, OpenAIOptions(8)); err == nil {
			t.Errorf("inconsistent %v %d×%d image with %d bytes: no error", bad.Mode, bad.Width, bad.Height, len(bad.Pix))
		}
	}
	if _, err := CenterCrop(m, 11); err == nil {
		t.Error("CenterCrop larger than the image: no error")
	}
}
