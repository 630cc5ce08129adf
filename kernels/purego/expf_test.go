package purego

import (
	"math"
	"testing"
)

func TestExpf(t *testing.T) {
	worst := 0.0
	for x := float32(-87.3); x < 88.37; x += 0.0007 {
		want := math.Exp(float64(x))
		rel := math.Abs(float64(expf(x))-want) / want
		worst = max(worst, rel)
	}
	t.Logf("worst relative error %g", worst)
	if worst > 3e-7 {
		t.Errorf("worst relative error %g, want ≤ 3e-7", worst)
	}
	for _, c := range []struct{ x, want float32 }{
		{0, 1}, {-200, 0}, {200, float32(math.Inf(1))}, {float32(math.Inf(-1)), 0}, {float32(math.Inf(1)), float32(math.Inf(1))},
	} {
		if got := expf(c.x); got != c.want {
			t.Errorf("expf(%v) = %v, want %v", c.x, got, c.want)
		}
	}
	if got := expf(float32(math.NaN())); got == got {
		t.Errorf("expf(NaN) = %v, want NaN", got)
	}
}
