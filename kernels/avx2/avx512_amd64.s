#include "textflag.h"
#include "tile_amd64.h"

// The AVX-512 micro-kernels: tiles of 4, 5 or 6 rows × 32 columns, two
// adjacent 16-column panels of the same packed B as the AVX2 kernels use
// (panel p+1 at R9 bytes past panel p), so both kernel sets share one
// prepared form. One ZMM register holds a row's 16 columns of one panel:
// Z0–Z11 hold the tile, two registers per row, as in the AVX2 kernels, so
// each output element sees the same operations in the same order and the
// results equal the AVX2 kernels' bit for bit. Z12/Z13 hold the B row,
// Z14–Z19 the rows' broadcast A values (one register per row, so the
// broadcasts of one step do not wait on each other).

// WROW adds row r's broadcast A value times the B row to its float32
// accumulators.
#define WROW(aaddr, tmp, acc0, acc1) \
	VBROADCASTSS aaddr, tmp      \
	VFMADD231PS  Z12, tmp, acc0  \
	VFMADD231PS  Z13, tmp, acc1

#define WSTEP4(aoff, boff) \
	VMOVUPS boff(BX), Z12                   \
	VMOVUPS boff(BX)(R9*1), Z13             \
	WROW(aoff(AX), Z14, Z0, Z1)             \
	WROW(aoff(AX)(DX*1), Z15, Z2, Z3)       \
	WROW(aoff(AX)(DX*2), Z16, Z4, Z5)       \
	WROW(aoff(R8), Z17, Z6, Z7)

#define WSTEP5(aoff, boff) \
	WSTEP4(aoff, boff)                      \
	WROW(aoff(R8)(DX*1), Z18, Z8, Z9)

#define WSTEP6(aoff, boff) \
	WSTEP5(aoff, boff)                      \
	WROW(aoff(R8)(DX*2), Z19, Z10, Z11)

// WSTORE adds one row's accumulators to the 32 floats of C at DI and moves
// DI to the next row (SI is C's row stride in bytes).
#define WSTORE(acc0, acc1) \
	VADDPS  (DI), acc0, acc0    \
	VMOVUPS acc0, (DI)          \
	VADDPS  64(DI), acc1, acc1  \
	VMOVUPS acc1, 64(DI)        \
	ADDQ    SI, DI

// func sgemm512(rows, kc int, a *float32, lda int, b *float32, bStride int, c *float32, ldc int)
TEXT ·sgemm512(SB), NOSPLIT, $0-64
	MOVQ rows+0(FP), R11
	MOVQ kc+8(FP), CX
	MOVQ a+16(FP), AX
	MOVQ lda+24(FP), DX
	MOVQ b+32(FP), BX
	MOVQ bStride+40(FP), R9
	SHLQ $2, DX
	SHLQ $2, R9
	LEAQ (AX)(DX*2), R8
	ADDQ DX, R8
	ZEROTILE512

	CMPQ R11, $5
	JLT  rows4
	JEQ  rows5
	KLOOP(WSTEP6, 4, 64, r6l4, r6l1, r6tail)
rows5:
	KLOOP(WSTEP5, 4, 64, r5l4, r5l1, r5tail)
rows4:
	KLOOP(WSTEP4, 4, 64, r4l4, r4l1, r4tail)

store:
	MOVQ c+48(FP), DI
	MOVQ ldc+56(FP), SI
	SHLQ $2, SI
	WSTORE(Z0, Z1)
	WSTORE(Z2, Z3)
	WSTORE(Z4, Z5)
	WSTORE(Z6, Z7)
	CMPQ R11, $5
	JLT  done
	WSTORE(Z8, Z9)
	CMPQ R11, $6
	JLT  done
	WSTORE(Z10, Z11)

done:
	VZEROUPPER
	RET

// The integer kernel: B holds int8 weight pairs (k, k+1) per column, 32
// bytes per k-pair and panel; VPMOVSXBW widens a panel's pair row to 16
// columns × 2 int16 in one ZMM. A holds int16 activations, a row's
// broadcast dword being its pair (k, k+1). VPDPWSSD (AVX512_VNNI) adds
// both products of each pair to the int32 accumulator in one instruction
// (AVX2's VPMADDWD + VPADDD), exactly: kcInt keeps the sums below 2³¹.

// VROW adds row r's pair times the B pairs to its int32 accumulators.
#define VROW(aaddr, tmp, acc0, acc1) \
	VPBROADCASTD aaddr, tmp   \
	VPDPWSSD     Z12, tmp, acc0 \
	VPDPWSSD     Z13, tmp, acc1

#define VSTEP4(aoff, boff) \
	VPMOVSXBW boff(BX), Z12                 \
	VPMOVSXBW boff(BX)(R9*1), Z13           \
	VROW(aoff(AX), Z14, Z0, Z1)             \
	VROW(aoff(AX)(DX*1), Z15, Z2, Z3)       \
	VROW(aoff(AX)(DX*2), Z16, Z4, Z5)       \
	VROW(aoff(R8), Z17, Z6, Z7)

#define VSTEP5(aoff, boff) \
	VSTEP4(aoff, boff)                      \
	VROW(aoff(R8)(DX*1), Z18, Z8, Z9)

#define VSTEP6(aoff, boff) \
	VSTEP5(aoff, boff)                      \
	VROW(aoff(R8)(DX*2), Z19, Z10, Z11)

// VSTORE scales one row's int32 accumulators by sa[row]·sw (panel p's 16
// column scales at R12, panel p+1's R14 bytes further) and adds them to the
// 32 floats of C at DI, then moves DI to the next row (SI is C's row
// stride in bytes, R11 points at sa). Same operations as the AVX2 QSTORE.
#define VSTORE(row, acc0, acc1) \
	VCVTDQ2PS    acc0, acc0            \
	VCVTDQ2PS    acc1, acc1            \
	VBROADCASTSS (row*4)(R11), Z14     \
	VMULPS       (R12), Z14, Z15       \
	VFMADD213PS  (DI), Z15, acc0       \
	VMOVUPS      acc0, (DI)            \
	VMULPS       (R12)(R14*1), Z14, Z15 \
	VFMADD213PS  64(DI), Z15, acc1     \
	VMOVUPS      acc1, 64(DI)          \
	ADDQ         SI, DI

// func qgemm512(rows, groups, gkp int, a *int16, lda int, b *int8, bStride int, c *float32, ldc int, sa, sw *float32, swStride, swPanelStride int)
//
// For each of groups scale groups of gkp k-pairs: sums the int32 products
// of the group, then adds them, scaled by sa (per row) and the group's sw
// (per column; the next group's is swStride floats further, panel p+1's
// swPanelStride floats further than panel p's), to C.
TEXT ·qgemm512(SB), NOSPLIT, $0-104
	MOVQ a+24(FP), AX
	MOVQ lda+32(FP), DX
	MOVQ b+40(FP), BX
	MOVQ bStride+48(FP), R9
	MOVQ ldc+64(FP), SI
	MOVQ sa+72(FP), R11
	MOVQ sw+80(FP), R12
	MOVQ swStride+88(FP), R13
	MOVQ swPanelStride+96(FP), R14
	MOVQ groups+8(FP), R10
	SHLQ $1, DX
	SHLQ $2, SI
	SHLQ $2, R13
	SHLQ $2, R14
	LEAQ (AX)(DX*2), R8
	ADDQ DX, R8

group:
	ZEROTILE512
	MOVQ gkp+16(FP), CX
	CMPQ rows+0(FP), $5
	JLT  rows4
	JEQ  rows5
	KLOOP(VSTEP6, 4, 32, r6l4, r6l1, r6tail)
rows5:
	KLOOP(VSTEP5, 4, 32, r5l4, r5l1, r5tail)
rows4:
	KLOOP(VSTEP4, 4, 32, r4l4, r4l1, r4tail)

store:
	MOVQ c+56(FP), DI
	VSTORE(0, Z0, Z1)
	VSTORE(1, Z2, Z3)
	VSTORE(2, Z4, Z5)
	VSTORE(3, Z6, Z7)
	CMPQ rows+0(FP), $5
	JLT  next
	VSTORE(4, Z8, Z9)
	CMPQ rows+0(FP), $6
	JLT  next
	VSTORE(5, Z10, Z11)

next:
	ADDQ R13, R12
	DECQ R10
	JNZ  group
	VZEROUPPER
	RET
