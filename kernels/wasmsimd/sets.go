package wasmsimd

import "errors"

// The kernel sets, fastest first.
const (
	// SetRelaxed is the relaxed-SIMD GEMMs plus the SIMD128 row ops.
	SetRelaxed = "relaxed"
	// SetSIMD128 is the SIMD128 kernels only.
	SetSIMD128 = "simd128"
	// SetGo is the portable backend, package purego.
	SetGo = "go"
)

// ErrUnavailable is the self-test result of a kernel set the host did not
// link (no glue, no SIMD support, or relaxed SIMD not enabled).
var ErrUnavailable = errors.New("wasmsimd: kernel set not linked by the host")
