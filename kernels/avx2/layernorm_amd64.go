package avx2

// LayerNorm normalises each row of x [m, n] into dst (which may equal x),
// with float64 mean and variance like purego, whose scalar float64 loop
// took about as long as the attention at ViT-B/32 batch 1. Widths that are
// not a multiple of 8 go to purego.
func (b *backend) LayerNorm(dst, x []float32, m, n int, gamma, beta []float32, eps float32) {
	if n%8 != 0 || n == 0 {
		b.Backend.LayerNorm(dst, x, m, n, gamma, beta, eps)
		return
	}
	if len(x) < m*n || len(dst) < m*n || len(gamma) < n || len(beta) < n {
		panic("avx2: LayerNorm slice too short for its shape")
	}
	rowsPerTask := max(1, activateChunk/n)
	b.pool.Run((m+rowsPerTask-1)/rowsPerTask, func(t int) {
		for r := t * rowsPerTask; r < min(m, (t+1)*rowsPerTask); r++ {
			layerNormRow(&dst[r*n], &x[r*n], &gamma[0], &beta[0], n, eps)
		}
	})
}
