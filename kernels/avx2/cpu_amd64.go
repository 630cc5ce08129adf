package avx2

// cpuid and xgetbv0 are the raw instructions, in cpu_amd64.s.
func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)
func xgetbv0() (eax uint32)

// cpuFeatures are the instruction sets this package's kernels use, each
// reported only where the OS also saves the registers it needs (without
// that, vector code would see its registers corrupted across context
// switches even on a CPU that has the instructions).
type cpuFeatures struct {
	// avx2FMA: AVX2 and FMA3 with YMM state saved.
	avx2FMA bool
	// avx512: AVX-512 F, BW, VL and DQ with opmask and ZMM state saved.
	avx512 bool
	// avx512VNNI: avx512 plus AVX512_VNNI (VPDPWSSD, VPDPBUSD on ZMM).
	avx512VNNI bool
	// avxVNNI: the VEX-encoded VNNI of chips without AVX-512 (Alder Lake
	// and later, Zen 5). Detected and reported only: Go's assembler
	// encodes VPDPWSSD as EVEX, which such chips do not run.
	avxVNNI bool
}

// detectCPU reads the features from CPUID and XCR0.
func detectCPU() cpuFeatures {
	var f cpuFeatures
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 7 {
		return f
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const (
		fma     = 1 << 12
		osxsave = 1 << 27
		avx     = 1 << 28
	)
	if ecx1&(fma|osxsave|avx) != fma|osxsave|avx {
		return f
	}
	xcr0 := xgetbv0()
	// XCR0 bits 1 and 2: the OS saves the SSE and AVX (YMM upper) state.
	if xcr0&6 != 6 {
		return f
	}
	_, ebx7, ecx7, _ := cpuid(7, 0)
	eax71, _, _, _ := cpuid(7, 1)
	const (
		avx2       = 1 << 5  // leaf 7 EBX
		avx512F    = 1 << 16 // leaf 7 EBX
		avx512DQ   = 1 << 17 // leaf 7 EBX
		avx512BW   = 1 << 30 // leaf 7 EBX
		avx512VL   = 1 << 31 // leaf 7 EBX
		avx512VNNI = 1 << 11 // leaf 7 ECX
		avxVNNI    = 1 << 4  // leaf 7 subleaf 1 EAX
		// XCR0 bits 5–7: opmask, upper halves of ZMM0–15, ZMM16–31.
		zmmState = 7 << 5
	)
	f.avx2FMA = ebx7&avx2 != 0
	f.avxVNNI = f.avx2FMA && eax71&avxVNNI != 0
	const avx512Set = avx512F | avx512DQ | avx512BW | avx512VL
	f.avx512 = f.avx2FMA && ebx7&avx512Set == avx512Set && xcr0&zmmState == zmmState
	f.avx512VNNI = f.avx512 && ecx7&avx512VNNI != 0
	return f
}

// cpu holds the features of the machine the process runs on.
var cpu = detectCPU()
