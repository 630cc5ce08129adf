// Macros shared by the GEMM micro-kernels (sgemm_amd64.s, qgemm_amd64.s,
// avx512_amd64.s). Each kernel keeps A's rows 0–2 at AX, AX+DX, AX+2·DX and
// rows 3–5 at R8, R8+DX, R8+2·DX, B at BX, and its step count in CX.

// KLOOP runs the CX k steps of STEP, four per iteration to amortise the
// loop overhead, then jumps to store. A step reads astep bytes of each A
// row and bstep bytes of B; STEP(aoff, boff) is one step at those byte
// offsets. l4, l1 and tail name its labels (unique per use).
#define KLOOP(STEP, astep, bstep, l4, l1, tail) \
	CMPQ  CX, $4                  \
	JLT   tail                    \
l4:                               \
	STEP(0, 0)                    \
	STEP((astep), (bstep))        \
	STEP((2*astep), (2*bstep))    \
	STEP((3*astep), (3*bstep))    \
	ADDQ  $(4*astep), AX          \
	ADDQ  $(4*astep), R8          \
	ADDQ  $(4*bstep), BX          \
	SUBQ  $4, CX                  \
	CMPQ  CX, $4                  \
	JGE   l4                      \
tail:                             \
	TESTQ CX, CX                  \
	JZ    store                   \
l1:                               \
	STEP(0, 0)                    \
	ADDQ  $astep, AX              \
	ADDQ  $astep, R8              \
	ADDQ  $bstep, BX              \
	DECQ  CX                      \
	JNZ   l1                      \
	JMP   store

// ZEROTILE clears the 6×16 AVX2 tile's accumulators Y0–Y11.
#define ZEROTILE \
	VPXOR Y0, Y0, Y0    \
	VPXOR Y1, Y1, Y1    \
	VPXOR Y2, Y2, Y2    \
	VPXOR Y3, Y3, Y3    \
	VPXOR Y4, Y4, Y4    \
	VPXOR Y5, Y5, Y5    \
	VPXOR Y6, Y6, Y6    \
	VPXOR Y7, Y7, Y7    \
	VPXOR Y8, Y8, Y8    \
	VPXOR Y9, Y9, Y9    \
	VPXOR Y10, Y10, Y10 \
	VPXOR Y11, Y11, Y11

// ZEROTILE512 clears the 6×32 AVX-512 tile's accumulators Z0–Z11.
#define ZEROTILE512 \
	VPXORD Z0, Z0, Z0    \
	VPXORD Z1, Z1, Z1    \
	VPXORD Z2, Z2, Z2    \
	VPXORD Z3, Z3, Z3    \
	VPXORD Z4, Z4, Z4    \
	VPXORD Z5, Z5, Z5    \
	VPXORD Z6, Z6, Z6    \
	VPXORD Z7, Z7, Z7    \
	VPXORD Z8, Z8, Z8    \
	VPXORD Z9, Z9, Z9    \
	VPXORD Z10, Z10, Z10 \
	VPXORD Z11, Z11, Z11
