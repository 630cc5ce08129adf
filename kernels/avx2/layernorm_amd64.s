#include "textflag.h"

// func layerNormRow(dst, x, gamma, beta *float32, n int, eps float32)
//
// Normalises one row of n floats, n a multiple of 8, like purego: mean and
// variance accumulated in float64 over two passes (the second over the
// deviations, which keeps the variance accurate for rows with a large
// mean), then dst = float32((x−mean)/sqrt(var+eps))·gamma + beta.
TEXT ·layerNormRow(SB), NOSPLIT, $0-44
	MOVQ x+8(FP), SI
	MOVQ n+32(FP), CX

	// Pass 1: the sum, in two float64 accumulators of 4.
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	MOVQ   SI, AX
	MOVQ   CX, DX

sum:
	VCVTPS2PD (AX), Y2
	VCVTPS2PD 16(AX), Y3
	VADDPD    Y2, Y0, Y0
	VADDPD    Y3, Y1, Y1
	ADDQ      $32, AX
	SUBQ      $8, DX
	JNZ       sum
	VADDPD       Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPD       X1, X0, X0
	VHADDPD      X0, X0, X0
	CVTSQ2SD     CX, X7         // n
	VDIVSD       X7, X0, X0     // mean
	VBROADCASTSD X0, Y6

	// Pass 2: the sum of squared deviations.
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	MOVQ   SI, AX
	MOVQ   CX, DX

dev:
	VCVTPS2PD    (AX), Y2
	VCVTPS2PD    16(AX), Y3
	VSUBPD       Y6, Y2, Y2
	VSUBPD       Y6, Y3, Y3
	VFMADD231PD  Y2, Y2, Y0
	VFMADD231PD  Y3, Y3, Y1
	ADDQ         $32, AX
	SUBQ         $8, DX
	JNZ          dev
	VADDPD       Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPD       X1, X0, X0
	VHADDPD      X0, X0, X0
	VDIVSD       X7, X0, X0     // variance
	VCVTSS2SD    eps+40(FP), X1, X1
	VADDSD       X1, X0, X0
	VSQRTSD      X0, X0, X0
	MOVQ         $0x3ff0000000000000, AX // 1.0
	MOVQ         AX, X1
	VDIVSD       X0, X1, X0     // 1/sqrt(var+eps)
	VBROADCASTSD X0, Y7

	// Pass 3: normalise in float64, then scale and shift in float32.
	MOVQ dst+0(FP), DI
	MOVQ gamma+16(FP), R8
	MOVQ beta+24(FP), R9

norm:
	VCVTPS2PD    (SI), Y2
	VCVTPS2PD    16(SI), Y3
	VSUBPD       Y6, Y2, Y2
	VSUBPD       Y6, Y3, Y3
	VMULPD       Y7, Y2, Y2
	VMULPD       Y7, Y3, Y3
	VCVTPD2PSY   Y2, X2
	VCVTPD2PSY   Y3, X3
	VINSERTF128  $1, X3, Y2, Y2
	VMULPS       (R8), Y2, Y2
	VADDPS       (R9), Y2, Y2
	VMOVUPS      Y2, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DI
	ADDQ         $32, R8
	ADDQ         $32, R9
	SUBQ         $8, CX
	JNZ          norm
	VZEROUPPER
	RET
