#include "textflag.h"

// Constants of the vector exp, each repeated to fill a YMM register so it
// can be a memory operand. The polynomial is Cephes' expf.

// log2(e)
DATA log2e<>+0(SB)/4, $0x3fb8aa3b
DATA log2e<>+4(SB)/4, $0x3fb8aa3b
DATA log2e<>+8(SB)/4, $0x3fb8aa3b
DATA log2e<>+12(SB)/4, $0x3fb8aa3b
DATA log2e<>+16(SB)/4, $0x3fb8aa3b
DATA log2e<>+20(SB)/4, $0x3fb8aa3b
DATA log2e<>+24(SB)/4, $0x3fb8aa3b
DATA log2e<>+28(SB)/4, $0x3fb8aa3b
GLOBL log2e<>(SB), RODATA|NOPTR, $32

// ln 2, high part (exact in float32)
DATA expc1<>+0(SB)/4, $0x3f318000
DATA expc1<>+4(SB)/4, $0x3f318000
DATA expc1<>+8(SB)/4, $0x3f318000
DATA expc1<>+12(SB)/4, $0x3f318000
DATA expc1<>+16(SB)/4, $0x3f318000
DATA expc1<>+20(SB)/4, $0x3f318000
DATA expc1<>+24(SB)/4, $0x3f318000
DATA expc1<>+28(SB)/4, $0x3f318000
GLOBL expc1<>(SB), RODATA|NOPTR, $32

// ln 2, low part
DATA expc2<>+0(SB)/4, $0xb95e8083
DATA expc2<>+4(SB)/4, $0xb95e8083
DATA expc2<>+8(SB)/4, $0xb95e8083
DATA expc2<>+12(SB)/4, $0xb95e8083
DATA expc2<>+16(SB)/4, $0xb95e8083
DATA expc2<>+20(SB)/4, $0xb95e8083
DATA expc2<>+24(SB)/4, $0xb95e8083
DATA expc2<>+28(SB)/4, $0xb95e8083
GLOBL expc2<>(SB), RODATA|NOPTR, $32

DATA expp0<>+0(SB)/4, $0x39506967
DATA expp0<>+4(SB)/4, $0x39506967
DATA expp0<>+8(SB)/4, $0x39506967
DATA expp0<>+12(SB)/4, $0x39506967
DATA expp0<>+16(SB)/4, $0x39506967
DATA expp0<>+20(SB)/4, $0x39506967
DATA expp0<>+24(SB)/4, $0x39506967
DATA expp0<>+28(SB)/4, $0x39506967
GLOBL expp0<>(SB), RODATA|NOPTR, $32

DATA expp1<>+0(SB)/4, $0x3ab743ce
DATA expp1<>+4(SB)/4, $0x3ab743ce
DATA expp1<>+8(SB)/4, $0x3ab743ce
DATA expp1<>+12(SB)/4, $0x3ab743ce
DATA expp1<>+16(SB)/4, $0x3ab743ce
DATA expp1<>+20(SB)/4, $0x3ab743ce
DATA expp1<>+24(SB)/4, $0x3ab743ce
DATA expp1<>+28(SB)/4, $0x3ab743ce
GLOBL expp1<>(SB), RODATA|NOPTR, $32

DATA expp2<>+0(SB)/4, $0x3c088908
DATA expp2<>+4(SB)/4, $0x3c088908
DATA expp2<>+8(SB)/4, $0x3c088908
DATA expp2<>+12(SB)/4, $0x3c088908
DATA expp2<>+16(SB)/4, $0x3c088908
DATA expp2<>+20(SB)/4, $0x3c088908
DATA expp2<>+24(SB)/4, $0x3c088908
DATA expp2<>+28(SB)/4, $0x3c088908
GLOBL expp2<>(SB), RODATA|NOPTR, $32

DATA expp3<>+0(SB)/4, $0x3d2aa9c1
DATA expp3<>+4(SB)/4, $0x3d2aa9c1
DATA expp3<>+8(SB)/4, $0x3d2aa9c1
DATA expp3<>+12(SB)/4, $0x3d2aa9c1
DATA expp3<>+16(SB)/4, $0x3d2aa9c1
DATA expp3<>+20(SB)/4, $0x3d2aa9c1
DATA expp3<>+24(SB)/4, $0x3d2aa9c1
DATA expp3<>+28(SB)/4, $0x3d2aa9c1
GLOBL expp3<>(SB), RODATA|NOPTR, $32

DATA expp4<>+0(SB)/4, $0x3e2aaaaa
DATA expp4<>+4(SB)/4, $0x3e2aaaaa
DATA expp4<>+8(SB)/4, $0x3e2aaaaa
DATA expp4<>+12(SB)/4, $0x3e2aaaaa
DATA expp4<>+16(SB)/4, $0x3e2aaaaa
DATA expp4<>+20(SB)/4, $0x3e2aaaaa
DATA expp4<>+24(SB)/4, $0x3e2aaaaa
DATA expp4<>+28(SB)/4, $0x3e2aaaaa
GLOBL expp4<>(SB), RODATA|NOPTR, $32

DATA expp5<>+0(SB)/4, $0x3f000000
DATA expp5<>+4(SB)/4, $0x3f000000
DATA expp5<>+8(SB)/4, $0x3f000000
DATA expp5<>+12(SB)/4, $0x3f000000
DATA expp5<>+16(SB)/4, $0x3f000000
DATA expp5<>+20(SB)/4, $0x3f000000
DATA expp5<>+24(SB)/4, $0x3f000000
DATA expp5<>+28(SB)/4, $0x3f000000
GLOBL expp5<>(SB), RODATA|NOPTR, $32

// 1
DATA one<>+0(SB)/4, $0x3f800000
DATA one<>+4(SB)/4, $0x3f800000
DATA one<>+8(SB)/4, $0x3f800000
DATA one<>+12(SB)/4, $0x3f800000
DATA one<>+16(SB)/4, $0x3f800000
DATA one<>+20(SB)/4, $0x3f800000
DATA one<>+24(SB)/4, $0x3f800000
DATA one<>+28(SB)/4, $0x3f800000
GLOBL one<>(SB), RODATA|NOPTR, $32

// 88.376: exp overflows above
DATA exphi<>+0(SB)/4, $0x42b0c0a5
DATA exphi<>+4(SB)/4, $0x42b0c0a5
DATA exphi<>+8(SB)/4, $0x42b0c0a5
DATA exphi<>+12(SB)/4, $0x42b0c0a5
DATA exphi<>+16(SB)/4, $0x42b0c0a5
DATA exphi<>+20(SB)/4, $0x42b0c0a5
DATA exphi<>+24(SB)/4, $0x42b0c0a5
DATA exphi<>+28(SB)/4, $0x42b0c0a5
GLOBL exphi<>(SB), RODATA|NOPTR, $32

// −87.337: exp is subnormal below
DATA explo<>+0(SB)/4, $0xc2aeac50
DATA explo<>+4(SB)/4, $0xc2aeac50
DATA explo<>+8(SB)/4, $0xc2aeac50
DATA explo<>+12(SB)/4, $0xc2aeac50
DATA explo<>+16(SB)/4, $0xc2aeac50
DATA explo<>+20(SB)/4, $0xc2aeac50
DATA explo<>+24(SB)/4, $0xc2aeac50
DATA explo<>+28(SB)/4, $0xc2aeac50
GLOBL explo<>(SB), RODATA|NOPTR, $32

// −1.702, QuickGELU's slope
DATA qgk<>+0(SB)/4, $0xbfd9db23
DATA qgk<>+4(SB)/4, $0xbfd9db23
DATA qgk<>+8(SB)/4, $0xbfd9db23
DATA qgk<>+12(SB)/4, $0xbfd9db23
DATA qgk<>+16(SB)/4, $0xbfd9db23
DATA qgk<>+20(SB)/4, $0xbfd9db23
DATA qgk<>+24(SB)/4, $0xbfd9db23
DATA qgk<>+28(SB)/4, $0xbfd9db23
GLOBL qgk<>(SB), RODATA|NOPTR, $32

// EXP sets Y0 = exp(Y0), clobbering Y1–Y3, to about 1 ulp: n = round(x·log2 e),
// r = x − n·ln 2 (in two parts, so r is exact), exp(r) by a degree-7
// polynomial on |r| ≤ ln2/2, times 2ⁿ added into the exponent bits. x is
// clamped to the range where 2ⁿ is a normal float, so that addition is valid;
// outside it the result is the clamp's exp, which callers treat as 0 or ∞.
#define EXP \
	VMINPS       exphi<>(SB), Y0, Y0  \
	VMAXPS       explo<>(SB), Y0, Y0  \
	VMULPS       log2e<>(SB), Y0, Y1  \
	VROUNDPS     $0, Y1, Y1           \
	VFNMADD231PS expc1<>(SB), Y1, Y0  \
	VFNMADD231PS expc2<>(SB), Y1, Y0  \
	VMOVUPS      expp0<>(SB), Y2      \
	VFMADD213PS  expp1<>(SB), Y0, Y2  \
	VFMADD213PS  expp2<>(SB), Y0, Y2  \
	VFMADD213PS  expp3<>(SB), Y0, Y2  \
	VFMADD213PS  expp4<>(SB), Y0, Y2  \
	VFMADD213PS  expp5<>(SB), Y0, Y2  \
	VMULPS       Y0, Y0, Y3           \
	VFMADD213PS  Y0, Y3, Y2           \
	VADDPS       one<>(SB), Y2, Y2    \
	VCVTPS2DQ    Y1, Y1               \
	VPSLLD       $23, Y1, Y1          \
	VPADDD       Y1, Y2, Y0

// func quickGELU(x *float32, n int)
//
// Sets x[i] = x[i]/(1+exp(−1.702·x[i])) for n floats, n a multiple of 8.
TEXT ·quickGELU(SB), NOSPLIT, $0-16
	MOVQ  x+0(FP), SI
	MOVQ  n+8(FP), CX
	TESTQ CX, CX
	JZ    done

loop:
	VMOVUPS (SI), Y4
	VMULPS  qgk<>(SB), Y4, Y0
	EXP
	VADDPS  one<>(SB), Y0, Y0
	VDIVPS  Y0, Y4, Y4
	VMOVUPS Y4, (SI)
	ADDQ    $32, SI
	SUBQ    $8, CX
	JNZ     loop

done:
	VZEROUPPER
	RET

// func expSub(x *float32, n int, sub float32) float32
//
// Sets x[i] = exp(x[i]−sub) for n floats, n a multiple of 8, and returns
// their sum: the exponentials of a softmax row.
TEXT ·expSub(SB), NOSPLIT, $0-28
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS sub+16(FP), Y5
	VXORPS       Y6, Y6, Y6
	TESTQ        CX, CX
	JZ           sum

eloop:
	VMOVUPS (SI), Y0
	VSUBPS  Y5, Y0, Y0
	EXP
	VMOVUPS Y0, (SI)
	VADDPS  Y0, Y6, Y6
	ADDQ    $32, SI
	SUBQ    $8, CX
	JNZ     eloop

sum:
	VEXTRACTF128 $1, Y6, X1
	VADDPS       X1, X6, X6
	VHADDPS      X6, X6, X6
	VHADDPS      X6, X6, X6
	VZEROUPPER
	MOVSS        X6, ret+24(FP)
	RET
