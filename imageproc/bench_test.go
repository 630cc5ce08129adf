package imageproc

import (
	"bytes"
	"testing"

	"github.com/clipwasm/clipwasm/internal/fixtures"
)

func BenchmarkPreprocess224(b *testing.B) {
	fixtures.Require(b)
	data := readFixture(b, "photo_640x480.jpg")
	b.Run("decode+preprocess", func(b *testing.B) {
		for b.Loop() {
			m, err := Decode(bytes.NewReader(data))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := Preprocess(m, OpenAIOptions(224)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("preprocess", func(b *testing.B) {
		m, err := Decode(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := Preprocess(m, OpenAIOptions(224)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
