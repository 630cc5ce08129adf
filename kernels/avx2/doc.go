// Package avx2 is the amd64 SIMD backend of package kernels, for CPUs with
// AVX2 and FMA3, written in Go assembly.
//
// Linear and Conv2D (im2col, then Linear) run on a float32 GEMM with a 6×16
// register tile over weights packed once into 16-wide panels, or, for int8
// and q4 weights, on an integer GEMM that multiplies them with activations
// quantized per row (token) to int16 on the fly. Attention runs both of its
// products on the float32 GEMM with a vectorised softmax, and QuickGELU on
// a vectorised exp. LayerNorm, Add, AvgPool2D and the other activations are
// those of the portable backend, package purego, which this one embeds:
// measured at ViT-B/32 batch 1 they take a few percent of a layer.
//
// Prepared weights are cached in Matrix.Prepared: a packed float32 copy of
// an f32 matrix (as purego keeps), an int8 copy of an int8 matrix, and an
// int8 unpacking of a q4 matrix (1 byte per weight, twice the q4 storage).
//
// New fails on other architectures and on CPUs without AVX2/FMA, so callers
// can fall back to purego.
package avx2
