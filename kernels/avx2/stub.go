//go:build !amd64

package avx2

import (
	"errors"

	"github.com/clipwasm/clipwasm/kernels"
)

// New reports that this backend exists only on amd64; callers fall back to
// the portable backend.
func New(threads int) (kernels.Backend, error) {
	return nil, errors.New("avx2: backend needs GOARCH=amd64")
}
