package native

import (
	"testing"

	"github.com/clipwasm/clipwasm/kernels/avx2"
)

func TestChoice(t *testing.T) {
	cases := []struct{ env, want string }{{"purego", "purego"}, {"", ""}}
	if _, err := avx2.New(1); err == nil {
		cases = append(cases, struct{ env, want string }{"avx2", "avx2"})
	}
	for _, c := range cases {
		t.Setenv("CLIPWASM_BACKEND", c.env)
		b, err := New(1)
		if err != nil {
			t.Fatalf("%q: %v", c.env, err)
		}
		if c.want != "" && b.Name() != c.want {
			t.Errorf("CLIPWASM_BACKEND=%q chose %s", c.env, b.Name())
		}
	}
	t.Setenv("CLIPWASM_BACKEND", "cuda9")
	if _, err := New(1); err == nil {
		t.Error("unknown backend name: no error")
	}
}
