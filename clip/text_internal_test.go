package clip

import (
	"reflect"
	"testing"
)

func TestLengthGroups(t *testing.T) {
	long := make([]int, 70)
	for i := range long {
		long[i] = 5 // all pooled at 5: one group per maxGroupRows rows
	}
	tests := []struct {
		name   string
		pooled []int
		want   [][]int
	}{
		{"one row", []int{7}, [][]int{{0}}},
		{"similar lengths stay together", []int{9, 7, 8}, [][]int{{1, 2, 0}}},
		{"a long row gets its own group", []int{5, 76, 6, 7}, [][]int{{0, 2, 3}, {1}}},
		{"stable among equal lengths", []int{3, 3, 3}, [][]int{{0, 1, 2}}},
		{"at most maxGroupRows a group", long, [][]int{seq(0, 64), seq(64, 70)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lengthGroups(tt.pooled); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("lengthGroups(%v) = %v, want %v", tt.pooled, got, tt.want)
			}
		})
	}
}

func seq(from, to int) []int {
	s := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}
