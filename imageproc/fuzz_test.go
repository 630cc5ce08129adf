package imageproc

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/gif"
	"image/png"
	"testing"

	"github.com/clipwasm/clipwasm/internal/fixtures"
)

// FuzzDecodePreprocess feeds arbitrary bytes through Decode and
// Preprocess(32): any error is fine, a panic is not.
func FuzzDecodePreprocess(f *testing.F) {
	fixtures.Require(f)
	for _, g := range goldenImages {
		f.Add(readFixture(f, g.file))
	}
	// Small seeds let the mutator explore the decoders quickly (large ones
	// mostly cost time). Run with a short -fuzzminimizetime: minimising a
	// 300 KB input one byte at a time takes minutes.
	small := image.NewNRGBA(image.Rect(0, 0, 9, 5))
	for i := range small.Pix {
		small.Pix[i] = uint8(i * 37)
	}
	var buf bytes.Buffer
	png.Encode(&buf, small)
	f.Add(bytes.Clone(buf.Bytes()))
	buf.Reset()
	gif.Encode(&buf, small, nil)
	f.Add(bytes.Clone(buf.Bytes()))
	f.Add(withAPP1(encodeJPEG(f, small), exifTIFF(binary.LittleEndian, 3, 6)))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Headers of up to 100 megapixels are valid, but decoding them
		// would make each fuzz run take seconds.
		if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil && cfg.Width*cfg.Height > 1<<22 {
			t.Skip()
		}
		m, err := Decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		if m.Width <= 0 || m.Height <= 0 || len(m.Pix) != m.Width*m.Height*m.Mode.Channels() {
			t.Fatalf("inconsistent image: %v %d×%d with %d bytes", m.Mode, m.Width, m.Height, len(m.Pix))
		}
		x, err := Preprocess(m, OpenAIOptions(32))
		if err != nil {
			return
		}
		if len(x) != 3*32*32 {
			t.Fatalf("tensor has %d values", len(x))
		}
	})
}
