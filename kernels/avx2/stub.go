//go:build !amd64

package avx2

import (
	"errors"

	"github.com/clipwasm/clipwasm/kernels"
)

// errNotAMD64 is what every constructor returns off amd64.
var errNotAMD64 = errors.New("avx2: backend needs GOARCH=amd64")

// New reports that this backend exists only on amd64; callers fall back to
// the portable backend.
func New(threads int) (kernels.Backend, error) { return nil, errNotAMD64 }

// NewAVX2 reports that this backend exists only on amd64.
func NewAVX2(threads int) (kernels.Backend, error) { return nil, errNotAMD64 }

// NewAVX512 reports that this backend exists only on amd64.
func NewAVX512(threads int) (kernels.Backend, error) { return nil, errNotAMD64 }
