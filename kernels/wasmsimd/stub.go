//go:build !(js && wasm)

package wasmsimd

import (
	"errors"

	"github.com/clipwasm/clipwasm/kernels"
)

// errPlatform is what every constructor returns outside js/wasm.
var errPlatform = errors.New("wasmsimd: backend needs GOOS=js GOARCH=wasm")

// New reports that this backend exists only under GOOS=js GOARCH=wasm;
// callers on other platforms use another backend.
func New() (kernels.Backend, error) { return nil, errPlatform }

// NewSet fails like New.
func NewSet(set string) (kernels.Backend, error) { return nil, errPlatform }

// Selected returns "none": no kernel set runs on this platform.
func Selected() string { return "none" }

// SelfTest reports every kernel set unavailable on this platform.
func SelfTest() map[string]error {
	return map[string]error{SetRelaxed: ErrUnavailable, SetSIMD128: ErrUnavailable, SetGo: errPlatform}
}
