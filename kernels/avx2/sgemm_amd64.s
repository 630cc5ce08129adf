#include "textflag.h"
#include "tile_amd64.h"

// The float32 micro-kernel computes a tile of 4, 5 or 6 rows × 16 columns.
// A's rows are read in place from x: rows 0–2 at AX, AX+DX, AX+2·DX and
// rows 3–5 at R8, R8+DX, R8+2·DX (DX is the row stride in bytes), so A
// needs no packing. B is a packed panel, 16 floats per k step at BX.
// Y0–Y11 hold the tile, two registers per row; Y12/Y13 the B row; Y14/Y15
// alternate as the broadcast A value so that consecutive broadcasts do not
// wait on one register. Fewer rows than 6 serve the last rows of x: a
// 4-row tile still has 8 independent FMA chains, enough for 2 FMA units of
// 4 cycles' latency, so it runs at full speed where a padded 6-row tile
// would waste a third of its work.

// SROW adds row r's broadcast A value times the B row to its accumulators.
#define SROW(aaddr, tmp, acc0, acc1) \
	VBROADCASTSS aaddr, tmp      \
	VFMADD231PS  Y12, tmp, acc0  \
	VFMADD231PS  Y13, tmp, acc1

#define SSTEP4(aoff, boff) \
	VMOVUPS boff(BX), Y12                      \
	VMOVUPS (boff+32)(BX), Y13                 \
	SROW(aoff(AX), Y14, Y0, Y1)                \
	SROW(aoff(AX)(DX*1), Y15, Y2, Y3)          \
	SROW(aoff(AX)(DX*2), Y14, Y4, Y5)          \
	SROW(aoff(R8), Y15, Y6, Y7)

#define SSTEP5(aoff, boff) \
	SSTEP4(aoff, boff)                         \
	SROW(aoff(R8)(DX*1), Y14, Y8, Y9)

#define SSTEP6(aoff, boff) \
	SSTEP5(aoff, boff)                         \
	SROW(aoff(R8)(DX*2), Y15, Y10, Y11)

// SSTORE adds one row's accumulators to the 16 floats of C at DI and moves
// DI to the next row (SI is C's row stride in bytes).
#define SSTORE(acc0, acc1) \
	VADDPS  (DI), acc0, acc0    \
	VMOVUPS acc0, (DI)          \
	VADDPS  32(DI), acc1, acc1  \
	VMOVUPS acc1, 32(DI)        \
	ADDQ    SI, DI

// func sgemm(rows, kc int, a *float32, lda int, b *float32, c *float32, ldc int)
TEXT ·sgemm(SB), NOSPLIT, $0-56
	MOVQ rows+0(FP), R11
	MOVQ kc+8(FP), CX
	MOVQ a+16(FP), AX
	MOVQ lda+24(FP), DX
	MOVQ b+32(FP), BX
	SHLQ $2, DX
	LEAQ (AX)(DX*2), R8
	ADDQ DX, R8

	ZEROTILE

	CMPQ R11, $5
	JLT  rows4
	JEQ  rows5
	KLOOP(SSTEP6, 4, 64, r6l4, r6l1, r6tail)
rows5:
	KLOOP(SSTEP5, 4, 64, r5l4, r5l1, r5tail)
rows4:
	KLOOP(SSTEP4, 4, 64, r4l4, r4l1, r4tail)

store:
	MOVQ c+40(FP), DI
	MOVQ ldc+48(FP), SI
	SHLQ $2, SI
	SSTORE(Y0, Y1)
	SSTORE(Y2, Y3)
	SSTORE(Y4, Y5)
	SSTORE(Y6, Y7)
	CMPQ R11, $5
	JLT  done
	SSTORE(Y8, Y9)
	CMPQ R11, $6
	JLT  done
	SSTORE(Y10, Y11)

done:
	VZEROUPPER
	RET
