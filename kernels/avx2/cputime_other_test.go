//go:build amd64 && !linux

package avx2

import "time"

// processCPU is not measured here; benchmarks omit their CPU-time metric.
func processCPU() time.Duration { return 0 }
