// Package avx2 is the amd64 SIMD backend of package kernels. Its Linear and
// Conv2D run on Go assembly micro-kernels for CPUs with AVX2 and FMA3: a
// float32 GEMM with a 6×16 register tile over weights packed once into
// panels, and an integer GEMM for int8 and q4 weights that multiplies them
// with activations quantized per row (token) on the fly. The other ops are
// those of the portable backend, package purego, which this one embeds.
//
// New fails on other architectures and on CPUs without AVX2/FMA, so callers
// can fall back to purego.
package avx2
