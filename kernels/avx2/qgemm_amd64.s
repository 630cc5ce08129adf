#include "textflag.h"
#include "tile_amd64.h"

// The integer micro-kernel: a tile of 4, 5 or 6 rows × 16 columns, like
// the float32 one (see sgemm_amd64.s for the register plan and why fewer
// rows). B holds int8 weights in pairs (k, k+1) per column, 32 bytes per
// step at BX; VPMOVSXBW widens each half to 8 columns × 2 int16. A holds
// int16 activations read in place, rows 0–2 at AX, AX+DX, AX+2·DX and rows
// 3–5 at R8, R8+DX, R8+2·DX; a row's broadcast dword is its pair (k, k+1).
// VPMADDWD multiplies and adds each pair into an int32, so no sum
// saturates (AVX2 has no VNNI, and VPMADDUBSW's int16 pair sums would).
// Y0–Y11 hold the int32 tile; Y15 takes each product.

// QROW adds row r's pair times the B pairs to its int32 accumulators.
#define QROW(aaddr, acc0, acc1) \
	VPBROADCASTD aaddr, Y14      \
	VPMADDWD     Y12, Y14, Y15   \
	VPADDD       Y15, acc0, acc0 \
	VPMADDWD     Y13, Y14, Y15   \
	VPADDD       Y15, acc1, acc1

#define QSTEP4(aoff, boff) \
	VPMOVSXBW boff(BX), Y12         \
	VPMOVSXBW (boff+16)(BX), Y13    \
	QROW(aoff(AX), Y0, Y1)          \
	QROW(aoff(AX)(DX*1), Y2, Y3)    \
	QROW(aoff(AX)(DX*2), Y4, Y5)    \
	QROW(aoff(R8), Y6, Y7)

#define QSTEP5(aoff, boff) \
	QSTEP4(aoff, boff)              \
	QROW(aoff(R8)(DX*1), Y8, Y9)

#define QSTEP6(aoff, boff) \
	QSTEP5(aoff, boff)              \
	QROW(aoff(R8)(DX*2), Y10, Y11)

// QSTORE scales one row's int32 accumulators by sa[row]·sw[0:16] and adds
// them to the 16 floats of C at DI, then moves DI to the next row (SI is
// C's row stride in bytes, R11 points at sa, R12 at sw).
#define QSTORE(row, acc0, acc1) \
	VCVTDQ2PS    acc0, acc0           \
	VCVTDQ2PS    acc1, acc1           \
	VBROADCASTSS (row*4)(R11), Y14    \
	VMULPS       (R12), Y14, Y15      \
	VFMADD213PS  (DI), Y15, acc0      \
	VMOVUPS      acc0, (DI)           \
	VMULPS       32(R12), Y14, Y15    \
	VFMADD213PS  32(DI), Y15, acc1    \
	VMOVUPS      acc1, 32(DI)         \
	ADDQ         SI, DI

// func qgemm(rows, groups, gkp int, a *int16, lda int, b *int8, c *float32, ldc int, sa, sw *float32, swStride int)
//
// For each of groups scale groups of gkp k-pairs: sums the int32 products of
// the group, then adds them, scaled by sa (per row) and the group's sw (per
// column; the next group's sw is swStride floats further), to C. The
// per-group flush is what q4's block scales need; int8 uses one group.
TEXT ·qgemm(SB), NOSPLIT, $0-88
	MOVQ a+24(FP), AX
	MOVQ lda+32(FP), DX
	MOVQ b+40(FP), BX
	MOVQ sa+64(FP), R11
	MOVQ sw+72(FP), R12
	MOVQ swStride+80(FP), R13
	MOVQ ldc+56(FP), SI
	MOVQ groups+8(FP), R10
	MOVQ rows+0(FP), R9
	SHLQ $1, DX
	SHLQ $2, SI
	SHLQ $2, R13
	LEAQ (AX)(DX*2), R8
	ADDQ DX, R8

group:
	ZEROTILE
	MOVQ  gkp+16(FP), CX

	CMPQ R9, $5
	JLT  rows4
	JEQ  rows5
	KLOOP(QSTEP6, 4, 32, r6l4, r6l1, r6tail)
rows5:
	KLOOP(QSTEP5, 4, 32, r5l4, r5l1, r5tail)
rows4:
	KLOOP(QSTEP4, 4, 32, r4l4, r4l1, r4tail)

store:
	MOVQ c+48(FP), DI
	QSTORE(0, Y0, Y1)
	QSTORE(1, Y2, Y3)
	QSTORE(2, Y4, Y5)
	QSTORE(3, Y6, Y7)
	CMPQ R9, $5
	JLT  next
	QSTORE(4, Y8, Y9)
	CMPQ R9, $6
	JLT  next
	QSTORE(5, Y10, Y11)

next:
	ADDQ R13, R12
	DECQ R10
	JNZ  group
	VZEROUPPER
	RET

// func maxMasked(x *float32, n int, mask uint32, init float32) float32
//
// Returns the largest of init and the x[i] with their bits ANDed with
// mask, over n floats, n a multiple of 8: the largest magnitude with mask
// 0x7fffffff (the sign cleared), the plain maximum with all ones.
TEXT ·maxMasked(SB), NOSPLIT, $0-28
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS mask+16(FP), Y15
	VBROADCASTSS init+20(FP), Y0
	TESTQ        CX, CX
	JZ           reduce

maxloop:
	VANDPS (SI), Y15, Y1
	VMAXPS Y1, Y0, Y0
	ADDQ   $32, SI
	SUBQ   $8, CX
	JNZ    maxloop

reduce:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4E, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xB1, X0, X1
	VMAXPS       X1, X0, X0
	VZEROUPPER
	MOVSS        X0, ret+24(FP)
	RET

// func quantizeRow(dst *int16, x *float32, n int, inv float32)
//
// Writes round-to-nearest-even(x[i]·inv), saturated to int16, for n floats,
// n a multiple of 16.
TEXT ·quantizeRow(SB), NOSPLIT, $0-28
	MOVQ         dst+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS inv+24(FP), Y15
	TESTQ        CX, CX
	JZ           qdone

qloop:
	VMULPS    (SI), Y15, Y0
	VMULPS    32(SI), Y15, Y1
	VCVTPS2DQ Y0, Y0
	VCVTPS2DQ Y1, Y1
	VPACKSSDW Y1, Y0, Y0
	VPERMQ    $0xD8, Y0, Y0 // undo the per-lane interleave of VPACKSSDW
	VMOVDQU   Y0, (DI)
	ADDQ      $64, SI
	ADDQ      $32, DI
	SUBQ      $16, CX
	JNZ       qloop

qdone:
	VZEROUPPER
	RET
