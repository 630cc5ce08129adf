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

// Cephes' erff/erfcf coefficients: erf(z) = z·T(z²) for |z| < 1, and
// erfc(a) = exp(−a²)/a·P(1/a²) for 1 ≤ a < 2, exp(−a²)/a·R(1/a²) above.
DATA erft0<>+0(SB)/4, $0x38a4b519
DATA erft0<>+4(SB)/4, $0x38a4b519
DATA erft0<>+8(SB)/4, $0x38a4b519
DATA erft0<>+12(SB)/4, $0x38a4b519
DATA erft0<>+16(SB)/4, $0x38a4b519
DATA erft0<>+20(SB)/4, $0x38a4b519
DATA erft0<>+24(SB)/4, $0x38a4b519
DATA erft0<>+28(SB)/4, $0x38a4b519
GLOBL erft0<>(SB), RODATA|NOPTR, $32
DATA erft1<>+0(SB)/4, $0xba51fb80
DATA erft1<>+4(SB)/4, $0xba51fb80
DATA erft1<>+8(SB)/4, $0xba51fb80
DATA erft1<>+12(SB)/4, $0xba51fb80
DATA erft1<>+16(SB)/4, $0xba51fb80
DATA erft1<>+20(SB)/4, $0xba51fb80
DATA erft1<>+24(SB)/4, $0xba51fb80
DATA erft1<>+28(SB)/4, $0xba51fb80
GLOBL erft1<>(SB), RODATA|NOPTR, $32
DATA erft2<>+0(SB)/4, $0x3baa02d9
DATA erft2<>+4(SB)/4, $0x3baa02d9
DATA erft2<>+8(SB)/4, $0x3baa02d9
DATA erft2<>+12(SB)/4, $0x3baa02d9
DATA erft2<>+16(SB)/4, $0x3baa02d9
DATA erft2<>+20(SB)/4, $0x3baa02d9
DATA erft2<>+24(SB)/4, $0x3baa02d9
DATA erft2<>+28(SB)/4, $0x3baa02d9
GLOBL erft2<>(SB), RODATA|NOPTR, $32
DATA erft3<>+0(SB)/4, $0xbcdbfc87
DATA erft3<>+4(SB)/4, $0xbcdbfc87
DATA erft3<>+8(SB)/4, $0xbcdbfc87
DATA erft3<>+12(SB)/4, $0xbcdbfc87
DATA erft3<>+16(SB)/4, $0xbcdbfc87
DATA erft3<>+20(SB)/4, $0xbcdbfc87
DATA erft3<>+24(SB)/4, $0xbcdbfc87
DATA erft3<>+28(SB)/4, $0xbcdbfc87
GLOBL erft3<>(SB), RODATA|NOPTR, $32
DATA erft4<>+0(SB)/4, $0x3de7167c
DATA erft4<>+4(SB)/4, $0x3de7167c
DATA erft4<>+8(SB)/4, $0x3de7167c
DATA erft4<>+12(SB)/4, $0x3de7167c
DATA erft4<>+16(SB)/4, $0x3de7167c
DATA erft4<>+20(SB)/4, $0x3de7167c
DATA erft4<>+24(SB)/4, $0x3de7167c
DATA erft4<>+28(SB)/4, $0x3de7167c
GLOBL erft4<>(SB), RODATA|NOPTR, $32
DATA erft5<>+0(SB)/4, $0xbec0939f
DATA erft5<>+4(SB)/4, $0xbec0939f
DATA erft5<>+8(SB)/4, $0xbec0939f
DATA erft5<>+12(SB)/4, $0xbec0939f
DATA erft5<>+16(SB)/4, $0xbec0939f
DATA erft5<>+20(SB)/4, $0xbec0939f
DATA erft5<>+24(SB)/4, $0xbec0939f
DATA erft5<>+28(SB)/4, $0xbec0939f
GLOBL erft5<>(SB), RODATA|NOPTR, $32
DATA erft6<>+0(SB)/4, $0x3f906eba
DATA erft6<>+4(SB)/4, $0x3f906eba
DATA erft6<>+8(SB)/4, $0x3f906eba
DATA erft6<>+12(SB)/4, $0x3f906eba
DATA erft6<>+16(SB)/4, $0x3f906eba
DATA erft6<>+20(SB)/4, $0x3f906eba
DATA erft6<>+24(SB)/4, $0x3f906eba
DATA erft6<>+28(SB)/4, $0x3f906eba
GLOBL erft6<>(SB), RODATA|NOPTR, $32
DATA erfp0<>+0(SB)/4, $0x3cbe9cf4
DATA erfp0<>+4(SB)/4, $0x3cbe9cf4
DATA erfp0<>+8(SB)/4, $0x3cbe9cf4
DATA erfp0<>+12(SB)/4, $0x3cbe9cf4
DATA erfp0<>+16(SB)/4, $0x3cbe9cf4
DATA erfp0<>+20(SB)/4, $0x3cbe9cf4
DATA erfp0<>+24(SB)/4, $0x3cbe9cf4
DATA erfp0<>+28(SB)/4, $0x3cbe9cf4
GLOBL erfp0<>(SB), RODATA|NOPTR, $32
DATA erfp1<>+0(SB)/4, $0xbe0e0868
DATA erfp1<>+4(SB)/4, $0xbe0e0868
DATA erfp1<>+8(SB)/4, $0xbe0e0868
DATA erfp1<>+12(SB)/4, $0xbe0e0868
DATA erfp1<>+16(SB)/4, $0xbe0e0868
DATA erfp1<>+20(SB)/4, $0xbe0e0868
DATA erfp1<>+24(SB)/4, $0xbe0e0868
DATA erfp1<>+28(SB)/4, $0xbe0e0868
GLOBL erfp1<>(SB), RODATA|NOPTR, $32
DATA erfp2<>+0(SB)/4, $0x3ebccbd0
DATA erfp2<>+4(SB)/4, $0x3ebccbd0
DATA erfp2<>+8(SB)/4, $0x3ebccbd0
DATA erfp2<>+12(SB)/4, $0x3ebccbd0
DATA erfp2<>+16(SB)/4, $0x3ebccbd0
DATA erfp2<>+20(SB)/4, $0x3ebccbd0
DATA erfp2<>+24(SB)/4, $0x3ebccbd0
DATA erfp2<>+28(SB)/4, $0x3ebccbd0
GLOBL erfp2<>(SB), RODATA|NOPTR, $32
DATA erfp3<>+0(SB)/4, $0xbf151cf8
DATA erfp3<>+4(SB)/4, $0xbf151cf8
DATA erfp3<>+8(SB)/4, $0xbf151cf8
DATA erfp3<>+12(SB)/4, $0xbf151cf8
DATA erfp3<>+16(SB)/4, $0xbf151cf8
DATA erfp3<>+20(SB)/4, $0xbf151cf8
DATA erfp3<>+24(SB)/4, $0xbf151cf8
DATA erfp3<>+28(SB)/4, $0xbf151cf8
GLOBL erfp3<>(SB), RODATA|NOPTR, $32
DATA erfp4<>+0(SB)/4, $0x3f1ef9e3
DATA erfp4<>+4(SB)/4, $0x3f1ef9e3
DATA erfp4<>+8(SB)/4, $0x3f1ef9e3
DATA erfp4<>+12(SB)/4, $0x3f1ef9e3
DATA erfp4<>+16(SB)/4, $0x3f1ef9e3
DATA erfp4<>+20(SB)/4, $0x3f1ef9e3
DATA erfp4<>+24(SB)/4, $0x3f1ef9e3
DATA erfp4<>+28(SB)/4, $0x3f1ef9e3
GLOBL erfp4<>(SB), RODATA|NOPTR, $32
DATA erfp5<>+0(SB)/4, $0xbefd28c0
DATA erfp5<>+4(SB)/4, $0xbefd28c0
DATA erfp5<>+8(SB)/4, $0xbefd28c0
DATA erfp5<>+12(SB)/4, $0xbefd28c0
DATA erfp5<>+16(SB)/4, $0xbefd28c0
DATA erfp5<>+20(SB)/4, $0xbefd28c0
DATA erfp5<>+24(SB)/4, $0xbefd28c0
DATA erfp5<>+28(SB)/4, $0xbefd28c0
GLOBL erfp5<>(SB), RODATA|NOPTR, $32
DATA erfp6<>+0(SB)/4, $0x3eae5471
DATA erfp6<>+4(SB)/4, $0x3eae5471
DATA erfp6<>+8(SB)/4, $0x3eae5471
DATA erfp6<>+12(SB)/4, $0x3eae5471
DATA erfp6<>+16(SB)/4, $0x3eae5471
DATA erfp6<>+20(SB)/4, $0x3eae5471
DATA erfp6<>+24(SB)/4, $0x3eae5471
DATA erfp6<>+28(SB)/4, $0x3eae5471
GLOBL erfp6<>(SB), RODATA|NOPTR, $32
DATA erfp7<>+0(SB)/4, $0xbe8c5880
DATA erfp7<>+4(SB)/4, $0xbe8c5880
DATA erfp7<>+8(SB)/4, $0xbe8c5880
DATA erfp7<>+12(SB)/4, $0xbe8c5880
DATA erfp7<>+16(SB)/4, $0xbe8c5880
DATA erfp7<>+20(SB)/4, $0xbe8c5880
DATA erfp7<>+24(SB)/4, $0xbe8c5880
DATA erfp7<>+28(SB)/4, $0xbe8c5880
GLOBL erfp7<>(SB), RODATA|NOPTR, $32
DATA erfp8<>+0(SB)/4, $0x3f1056e6
DATA erfp8<>+4(SB)/4, $0x3f1056e6
DATA erfp8<>+8(SB)/4, $0x3f1056e6
DATA erfp8<>+12(SB)/4, $0x3f1056e6
DATA erfp8<>+16(SB)/4, $0x3f1056e6
DATA erfp8<>+20(SB)/4, $0x3f1056e6
DATA erfp8<>+24(SB)/4, $0x3f1056e6
DATA erfp8<>+28(SB)/4, $0x3f1056e6
GLOBL erfp8<>(SB), RODATA|NOPTR, $32
DATA erfr0<>+0(SB)/4, $0xc127a483
DATA erfr0<>+4(SB)/4, $0xc127a483
DATA erfr0<>+8(SB)/4, $0xc127a483
DATA erfr0<>+12(SB)/4, $0xc127a483
DATA erfr0<>+16(SB)/4, $0xc127a483
DATA erfr0<>+20(SB)/4, $0xc127a483
DATA erfr0<>+24(SB)/4, $0xc127a483
DATA erfr0<>+28(SB)/4, $0xc127a483
GLOBL erfr0<>(SB), RODATA|NOPTR, $32
DATA erfr1<>+0(SB)/4, $0x414fa29c
DATA erfr1<>+4(SB)/4, $0x414fa29c
DATA erfr1<>+8(SB)/4, $0x414fa29c
DATA erfr1<>+12(SB)/4, $0x414fa29c
DATA erfr1<>+16(SB)/4, $0x414fa29c
DATA erfr1<>+20(SB)/4, $0x414fa29c
DATA erfr1<>+24(SB)/4, $0x414fa29c
DATA erfr1<>+28(SB)/4, $0x414fa29c
GLOBL erfr1<>(SB), RODATA|NOPTR, $32
DATA erfr2<>+0(SB)/4, $0xc0efdb4a
DATA erfr2<>+4(SB)/4, $0xc0efdb4a
DATA erfr2<>+8(SB)/4, $0xc0efdb4a
DATA erfr2<>+12(SB)/4, $0xc0efdb4a
DATA erfr2<>+16(SB)/4, $0xc0efdb4a
DATA erfr2<>+20(SB)/4, $0xc0efdb4a
DATA erfr2<>+24(SB)/4, $0xc0efdb4a
DATA erfr2<>+28(SB)/4, $0xc0efdb4a
GLOBL erfr2<>(SB), RODATA|NOPTR, $32
DATA erfr3<>+0(SB)/4, $0x403af1fa
DATA erfr3<>+4(SB)/4, $0x403af1fa
DATA erfr3<>+8(SB)/4, $0x403af1fa
DATA erfr3<>+12(SB)/4, $0x403af1fa
DATA erfr3<>+16(SB)/4, $0x403af1fa
DATA erfr3<>+20(SB)/4, $0x403af1fa
DATA erfr3<>+24(SB)/4, $0x403af1fa
DATA erfr3<>+28(SB)/4, $0x403af1fa
GLOBL erfr3<>(SB), RODATA|NOPTR, $32
DATA erfr4<>+0(SB)/4, $0xbf81f436
DATA erfr4<>+4(SB)/4, $0xbf81f436
DATA erfr4<>+8(SB)/4, $0xbf81f436
DATA erfr4<>+12(SB)/4, $0xbf81f436
DATA erfr4<>+16(SB)/4, $0xbf81f436
DATA erfr4<>+20(SB)/4, $0xbf81f436
DATA erfr4<>+24(SB)/4, $0xbf81f436
DATA erfr4<>+28(SB)/4, $0xbf81f436
GLOBL erfr4<>(SB), RODATA|NOPTR, $32
DATA erfr5<>+0(SB)/4, $0x3ed7fc3e
DATA erfr5<>+4(SB)/4, $0x3ed7fc3e
DATA erfr5<>+8(SB)/4, $0x3ed7fc3e
DATA erfr5<>+12(SB)/4, $0x3ed7fc3e
DATA erfr5<>+16(SB)/4, $0x3ed7fc3e
DATA erfr5<>+20(SB)/4, $0x3ed7fc3e
DATA erfr5<>+24(SB)/4, $0x3ed7fc3e
DATA erfr5<>+28(SB)/4, $0x3ed7fc3e
GLOBL erfr5<>(SB), RODATA|NOPTR, $32
DATA erfr6<>+0(SB)/4, $0xbe906c5d
DATA erfr6<>+4(SB)/4, $0xbe906c5d
DATA erfr6<>+8(SB)/4, $0xbe906c5d
DATA erfr6<>+12(SB)/4, $0xbe906c5d
DATA erfr6<>+16(SB)/4, $0xbe906c5d
DATA erfr6<>+20(SB)/4, $0xbe906c5d
DATA erfr6<>+24(SB)/4, $0xbe906c5d
DATA erfr6<>+28(SB)/4, $0xbe906c5d
GLOBL erfr6<>(SB), RODATA|NOPTR, $32
DATA erfr7<>+0(SB)/4, $0x3f106eb9
DATA erfr7<>+4(SB)/4, $0x3f106eb9
DATA erfr7<>+8(SB)/4, $0x3f106eb9
DATA erfr7<>+12(SB)/4, $0x3f106eb9
DATA erfr7<>+16(SB)/4, $0x3f106eb9
DATA erfr7<>+20(SB)/4, $0x3f106eb9
DATA erfr7<>+24(SB)/4, $0x3f106eb9
DATA erfr7<>+28(SB)/4, $0x3f106eb9
GLOBL erfr7<>(SB), RODATA|NOPTR, $32
DATA two<>+0(SB)/4, $0x40000000
DATA two<>+4(SB)/4, $0x40000000
DATA two<>+8(SB)/4, $0x40000000
DATA two<>+12(SB)/4, $0x40000000
DATA two<>+16(SB)/4, $0x40000000
DATA two<>+20(SB)/4, $0x40000000
DATA two<>+24(SB)/4, $0x40000000
DATA two<>+28(SB)/4, $0x40000000
GLOBL two<>(SB), RODATA|NOPTR, $32
DATA half<>+0(SB)/4, $0x3f000000
DATA half<>+4(SB)/4, $0x3f000000
DATA half<>+8(SB)/4, $0x3f000000
DATA half<>+12(SB)/4, $0x3f000000
DATA half<>+16(SB)/4, $0x3f000000
DATA half<>+20(SB)/4, $0x3f000000
DATA half<>+24(SB)/4, $0x3f000000
DATA half<>+28(SB)/4, $0x3f000000
GLOBL half<>(SB), RODATA|NOPTR, $32
DATA rsqrt2<>+0(SB)/4, $0x3f3504f3
DATA rsqrt2<>+4(SB)/4, $0x3f3504f3
DATA rsqrt2<>+8(SB)/4, $0x3f3504f3
DATA rsqrt2<>+12(SB)/4, $0x3f3504f3
DATA rsqrt2<>+16(SB)/4, $0x3f3504f3
DATA rsqrt2<>+20(SB)/4, $0x3f3504f3
DATA rsqrt2<>+24(SB)/4, $0x3f3504f3
DATA rsqrt2<>+28(SB)/4, $0x3f3504f3
GLOBL rsqrt2<>(SB), RODATA|NOPTR, $32
DATA absmask<>+0(SB)/8, $0x7fffffff7fffffff
DATA absmask<>+8(SB)/8, $0x7fffffff7fffffff
DATA absmask<>+16(SB)/8, $0x7fffffff7fffffff
DATA absmask<>+24(SB)/8, $0x7fffffff7fffffff
GLOBL absmask<>(SB), RODATA|NOPTR, $32

// func gelu(x *float32, n int)
//
// Sets x[i] = 0.5·x[i]·(1+erf(x[i]/√2)) for n floats, n a multiple of 8.
// Both branches of erf are computed and blended per lane; for z < 0 the
// sum 1+erf(z) is erfc(|z|) itself, so tiny results keep their relative
// precision instead of cancelling.
TEXT ·gelu(SB), NOSPLIT, $0-16
	MOVQ  x+0(FP), SI
	MOVQ  n+8(FP), CX
	TESTQ CX, CX
	JZ    gdone

gloop:
	VMOVUPS (SI), Y4
	VMULPS rsqrt2<>(SB), Y4, Y5       // z = x/√2
	VANDPS absmask<>(SB), Y5, Y6      // a = |z|
	VMULPS Y5, Y5, Y7                 // z²
	// |z| < 1: 1 + erf(z) = 1 + z·T(z²)
	VMOVUPS erft0<>(SB), Y8
	VFMADD213PS erft1<>(SB), Y7, Y8
	VFMADD213PS erft2<>(SB), Y7, Y8
	VFMADD213PS erft3<>(SB), Y7, Y8
	VFMADD213PS erft4<>(SB), Y7, Y8
	VFMADD213PS erft5<>(SB), Y7, Y8
	VFMADD213PS erft6<>(SB), Y7, Y8
	VFMADD213PS one<>(SB), Y5, Y8
	// |z| ≥ 1: erfc(a) by the P or R polynomial in 1/a²
	VMOVUPS one<>(SB), Y9
	VDIVPS Y6, Y9, Y9                 // 1/a
	VMULPS Y9, Y9, Y10                // 1/a²
	VMOVUPS erfp0<>(SB), Y11
	VFMADD213PS erfp1<>(SB), Y10, Y11
	VFMADD213PS erfp2<>(SB), Y10, Y11
	VFMADD213PS erfp3<>(SB), Y10, Y11
	VFMADD213PS erfp4<>(SB), Y10, Y11
	VFMADD213PS erfp5<>(SB), Y10, Y11
	VFMADD213PS erfp6<>(SB), Y10, Y11
	VFMADD213PS erfp7<>(SB), Y10, Y11
	VFMADD213PS erfp8<>(SB), Y10, Y11
	VMOVUPS erfr0<>(SB), Y12
	VFMADD213PS erfr1<>(SB), Y10, Y12
	VFMADD213PS erfr2<>(SB), Y10, Y12
	VFMADD213PS erfr3<>(SB), Y10, Y12
	VFMADD213PS erfr4<>(SB), Y10, Y12
	VFMADD213PS erfr5<>(SB), Y10, Y12
	VFMADD213PS erfr6<>(SB), Y10, Y12
	VFMADD213PS erfr7<>(SB), Y10, Y12
	VCMPPS $1, two<>(SB), Y6, Y13      // a < 2
	VBLENDVPS Y13, Y11, Y12, Y11
	VMULPS Y9, Y11, Y11
	VXORPS Y0, Y0, Y0
	VSUBPS Y7, Y0, Y0                 // −z²
	EXP
	VMULPS Y0, Y11, Y11               // erfc(a)
	// 1 + erf(z) is 2 − erfc(a) for z > 0, erfc(a) for z < 0
	VMOVUPS two<>(SB), Y12
	VSUBPS Y11, Y12, Y12
	VXORPS Y13, Y13, Y13
	VCMPPS $0x0e, Y13, Y5, Y13      // z > 0
	VBLENDVPS Y13, Y12, Y11, Y11
	VCMPPS $1, one<>(SB), Y6, Y13      // a < 1
	VBLENDVPS Y13, Y8, Y11, Y8
	VMULPS half<>(SB), Y4, Y4
	VMULPS Y8, Y4, Y4
	VMOVUPS Y4, (SI)
	ADDQ $32, SI
	SUBQ $8, CX
	JNZ  gloop

gdone:
	VZEROUPPER
	RET
