// Package native picks the fastest compute backend this machine runs
// correctly: the amd64 assembly kernels where the CPU has AVX2/FMA (on
// their AVX-512 and VNNI forms where it has those too), the portable Go
// kernels otherwise. CLIPWASM_BACKEND=purego|avx2|avx512 overrides the
// choice (for benchmarks and for bisecting a numerical difference): avx2
// forces the AVX2 kernels on an AVX-512 CPU, avx512 fails without one.
package native

import (
	"fmt"
	"os"

	"github.com/clipwasm/clipwasm/kernels"
	"github.com/clipwasm/clipwasm/kernels/avx2"
	"github.com/clipwasm/clipwasm/kernels/purego"
)

// New returns the best backend using threads threads (<= 0: all cores).
func New(threads int) (kernels.Backend, error) {
	switch name := os.Getenv("CLIPWASM_BACKEND"); name {
	case "purego":
		return purego.New(threads), nil
	case "avx2":
		return avx2.NewAVX2(threads)
	case "avx512":
		return avx2.NewAVX512(threads)
	case "":
		if b, err := avx2.New(threads); err == nil {
			return b, nil
		}
		return purego.New(threads), nil
	default:
		return nil, fmt.Errorf("CLIPWASM_BACKEND=%q: want purego, avx2 or avx512", name)
	}
}
