// Package avx2 is the amd64 SIMD backend of package kernels, for CPUs with
// AVX2 and FMA3, written in Go assembly, with AVX-512 forms of its GEMM
// kernels chosen at run time where the CPU has them.
//
// Linear and Conv2D (im2col, then Linear) run on a float32 GEMM with a 6×16
// register tile over weights packed once into 16-wide panels, or, for int8
// and q4 weights, on an integer GEMM that multiplies them with activations
// quantized per row (token) to int16 on the fly. Attention runs both of its
// products on the float32 GEMM with a vectorised softmax; QuickGELU and
// GELU run on a vectorised exp and erf, LayerNorm on float64 vectors. Add,
// AvgPool2D and ReLU are those of the portable backend, package purego,
// which this one embeds: memory-bound, they gain little from assembly.
//
// On CPUs with AVX-512 F/BW/VL/DQ (and an OS that saves the ZMM state), New
// runs Linear and Conv2D on 6×32 ZMM tiles over pairs of the same panels:
// float32 FMA, and, with AVX512_VNNI, the integer GEMM on VPDPWSSD (the
// int16 pair product and its accumulation in one instruction), keeping the
// int16 activations: 8-bit ones (VPDPBUSD) would double the instructions'
// work but lose fidelity (see int_amd64.go). Both kernel sets do the same
// arithmetic per output, so their results are equal bit for bit. NewAVX2
// and NewAVX512 force one set; the backend's Name says which runs.
//
// Prepared weights are cached in Matrix.Prepared: a packed float32 copy of
// an f32 matrix (as purego keeps), an int8 copy of an int8 matrix, and an
// int8 unpacking of a q4 matrix (1 byte per weight, twice the q4 storage).
// Both kernel sets share these forms.
//
// New fails on other architectures and on CPUs without AVX2/FMA, so callers
// can fall back to purego.
package avx2
