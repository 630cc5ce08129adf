#include "textflag.h"

// One k step of the 6×16 float32 micro-kernel. A's six rows are read in
// place from x: rows 0–2 at AX, AX+DX, AX+2·DX and rows 3–5 at R8, R8+DX,
// R8+2·DX (DX is the row stride in bytes), so no packing of A is needed.
// B is a packed panel, 16 floats per k step at BX. Y0–Y11 hold the 6×16
// tile; Y12/Y13 the B row; Y14/Y15 alternate as the broadcast A value so
// that consecutive broadcasts do not wait on one register.
#define SSTEP(aoff, boff) \
	VMOVUPS      boff(BX), Y12         \
	VMOVUPS      (boff+32)(BX), Y13    \
	VBROADCASTSS aoff(AX), Y14         \
	VFMADD231PS  Y12, Y14, Y0          \
	VFMADD231PS  Y13, Y14, Y1          \
	VBROADCASTSS aoff(AX)(DX*1), Y15   \
	VFMADD231PS  Y12, Y15, Y2          \
	VFMADD231PS  Y13, Y15, Y3          \
	VBROADCASTSS aoff(AX)(DX*2), Y14   \
	VFMADD231PS  Y12, Y14, Y4          \
	VFMADD231PS  Y13, Y14, Y5          \
	VBROADCASTSS aoff(R8), Y15         \
	VFMADD231PS  Y12, Y15, Y6          \
	VFMADD231PS  Y13, Y15, Y7          \
	VBROADCASTSS aoff(R8)(DX*1), Y14   \
	VFMADD231PS  Y12, Y14, Y8          \
	VFMADD231PS  Y13, Y14, Y9          \
	VBROADCASTSS aoff(R8)(DX*2), Y15   \
	VFMADD231PS  Y12, Y15, Y10         \
	VFMADD231PS  Y13, Y15, Y11

// Adds the two accumulators of one row to the 16 floats of C at DI and
// moves DI to the next row (SI is C's row stride in bytes).
#define SSTORE(acc0, acc1) \
	VADDPS  (DI), acc0, acc0    \
	VMOVUPS acc0, (DI)          \
	VADDPS  32(DI), acc1, acc1  \
	VMOVUPS acc1, 32(DI)        \
	ADDQ    SI, DI

// func sgemm6x16(kc int, a *float32, lda int, b *float32, c *float32, ldc int)
TEXT ·sgemm6x16(SB), NOSPLIT, $0-48
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ lda+16(FP), DX
	MOVQ b+24(FP), BX
	SHLQ $2, DX
	LEAQ (AX)(DX*2), R8
	ADDQ DX, R8

	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

	// Four k steps per iteration to amortise the loop overhead.
	CMPQ CX, $4
	JLT  tail

loop4:
	SSTEP(0, 0)
	SSTEP(4, 64)
	SSTEP(8, 128)
	SSTEP(12, 192)
	ADDQ $16, AX
	ADDQ $16, R8
	ADDQ $256, BX
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  loop4

tail:
	TESTQ CX, CX
	JZ    store

loop1:
	SSTEP(0, 0)
	ADDQ $4, AX
	ADDQ $4, R8
	ADDQ $64, BX
	DECQ CX
	JNZ  loop1

store:
	MOVQ c+32(FP), DI
	MOVQ ldc+40(FP), SI
	SHLQ $2, SI
	SSTORE(Y0, Y1)
	SSTORE(Y2, Y3)
	SSTORE(Y4, Y5)
	SSTORE(Y6, Y7)
	SSTORE(Y8, Y9)
	SSTORE(Y10, Y11)
	VZEROUPPER
	RET
