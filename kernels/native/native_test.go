package native

import (
	"testing"

	"github.com/clipwasm/clipwasm/kernels/avx2"
)

func TestChoice(t *testing.T) {
	type choice struct {
		env, want string // want "": New must fail
	}
	cases := []choice{{"purego", "purego"}, {"cuda9", ""}}
	best := "purego"
	if b, err := avx2.New(1); err == nil {
		best = b.Name()
		cases = append(cases, choice{"avx2", "avx2"})
	}
	cases = append(cases, choice{"", best})
	if _, err := avx2.NewAVX512(1); err == nil {
		cases = append(cases, choice{"avx512", "avx512"})
	} else {
		t.Logf("no AVX-512 here, so CLIPWASM_BACKEND=avx512 must fail: %v", err)
		cases = append(cases, choice{"avx512", ""})
	}
	t.Logf("default backend here: %s", best)
	for _, c := range cases {
		t.Setenv("CLIPWASM_BACKEND", c.env)
		b, err := New(1)
		switch {
		case c.want == "" && err == nil:
			t.Errorf("CLIPWASM_BACKEND=%q: got %s, want an error", c.env, b.Name())
		case c.want == "":
		case err != nil:
			t.Errorf("CLIPWASM_BACKEND=%q: %v", c.env, err)
		case b.Name() != c.want:
			t.Errorf("CLIPWASM_BACKEND=%q chose %s, want %s", c.env, b.Name(), c.want)
		}
	}
}
