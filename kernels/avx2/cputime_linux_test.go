//go:build amd64 && linux

package avx2

import (
	"syscall"
	"time"
	"unsafe"
)

// processCPU returns the CPU time of all threads of this process. On the
// shared benchmark machine it is steadier than wall time: time spent
// preempted by other processes does not count.
func processCPU() time.Duration {
	const clockProcessCPUTimeID = 2
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockProcessCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}
