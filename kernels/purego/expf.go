package purego

import "math"

// expf returns e**x in float32 arithmetic, within about 1 ulp of the exact
// value. It replaces math.Exp in QuickGELU and softmax: under js/wasm, where
// math.Exp has no assembly, it measured about 2× faster (on amd64 the two
// are close). The method is Cephes' expf: x = n·ln2 + r
// with |r| ≤ ln2/2, a degree-6 polynomial for e**r, and 2**n put in the
// exponent bits.
func expf(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		// ln2 split in two so n·ln2Hi is exact for the n that occur.
		ln2Hi = 0.693359375
		ln2Lo = -2.12194440e-4
		// Outside these bounds 2**n leaves the float32 exponent range, so
		// the result saturates to +Inf or 0 (the last 0.35 below
		// ln(MaxFloat32) and the subnormals are given up; no caller needs
		// them).
		maxArg = 88.37
		minArg = -87.3365447504019
	)
	if x > maxArg {
		return float32(math.Inf(1))
	}
	if x < minArg || x != x {
		if x != x {
			return x
		}
		return 0
	}
	t := x*log2e + 0.5
	n := int32(t)
	if float32(n) > t { // int32() truncates toward zero; we need floor
		n--
	}
	fn := float32(n)
	r := x - fn*ln2Hi - fn*ln2Lo
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	y := p*r*r + r + 1
	return y * math.Float32frombits(uint32(n+127)<<23)
}
