// Package avx2 is the amd64 SIMD backend of package kernels, for CPUs with
// AVX2 and FMA3, written in Go assembly.
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
// Prepared weights are cached in Matrix.Prepared: a packed float32 copy of
// an f32 matrix (as purego keeps), an int8 copy of an int8 matrix, and an
// int8 unpacking of a q4 matrix (1 byte per weight, twice the q4 storage).
//
// New fails on other architectures and on CPUs without AVX2/FMA, so callers
// can fall back to purego.
package avx2
