// Package native picks the fastest compute backend this machine runs
// correctly: the AVX2/FMA assembly kernels where the CPU has them, the
// portable Go kernels otherwise. CLIPWASM_BACKEND=purego|avx2 overrides the
// choice (for benchmarks and for bisecting a numerical difference).
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
		return avx2.New(threads)
	case "":
		if b, err := avx2.New(threads); err == nil {
			return b, nil
		}
		return purego.New(threads), nil
	default:
		return nil, fmt.Errorf("CLIPWASM_BACKEND=%q: want purego or avx2", name)
	}
}
