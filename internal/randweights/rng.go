package randweights

import "math"

// golden is splitmix64's increment, 2⁶⁴/φ, also the seed multiplier.
const golden = 0x9E3779B97F4A7C15

// fnv1a64 is the 64-bit FNV-1a hash of s's UTF-8 bytes.
func fnv1a64(s string) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 0x100000001b3
	}
	return h
}

// Stream is the kit's splitmix64 stream for one (seed, key): the state
// starts at fnv1a64(key) XOR seed·0x9E3779B97F4A7C15 (mod 2⁶⁴), so the values
// of a tensor depend only on the seed and the tensor's name.
type Stream struct{ state uint64 }

// NewStream starts the stream of tensor key under seed.
func NewStream(seed uint64, key string) *Stream {
	return &Stream{state: fnv1a64(key) ^ seed*golden}
}

// Next returns the next 64-bit output of splitmix64.
func (s *Stream) Next() uint64 {
	s.state += golden
	z := s.state
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	return z ^ z>>31
}

// Skip advances the stream by n outputs in O(1): splitmix64's state is a
// counter, which is what lets one tensor be filled by several goroutines.
func (s *Stream) Skip(n uint64) { s.state += n * golden }

// Uniform returns the next output's top 53 bits as a float64 in [0, 1).
func (s *Stream) Uniform() float64 { return float64(s.Next()>>11) * 0x1p-53 }

// Normals fills out with standard normal variates by Box–Muller, two per
// pair of uniforms: u1 = 1−U (never 0), u2 = U, r = √(−2 ln u1),
// out[2i] = r·cos(2π u2), out[2i+1] = r·sin(2π u2); an odd last element
// drops its sine. It consumes 2·⌈len(out)/2⌉ outputs.
//
// V8 computes ln, cos and sin with fdlibm ports, Go with its own code, so
// a value may differ from the kit's by an ulp of float64 (see the package
// documentation for how often that survives rounding to float32).
func (s *Stream) Normals(out []float64) {
	for i := 0; i < len(out); i += 2 {
		u1 := 1 - s.Uniform()
		u2 := s.Uniform()
		r := math.Sqrt(-2 * math.Log(u1))
		sin, cos := math.Sincos(2 * math.Pi * u2)
		out[i] = r * cos
		if i+1 < len(out) {
			out[i+1] = r * sin
		}
	}
}
