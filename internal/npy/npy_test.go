package npy

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		shape []int
		data  any
	}{
		{[]int{2, 3}, []float32{1, 2, 3, 4, 5, 6}},
		{[]int{4}, []int64{-1, 0, 49406, 49407}},
		{[]int{1, 2, 2}, []uint8{0, 1, 254, 255}},
		{[]int{0, 5}, []float32{}},
	}
	for _, c := range cases {
		path := filepath.Join(t.TempDir(), "a.npy")
		if err := WriteFile(path, c.shape, c.data); err != nil {
			t.Fatal(err)
		}
		a, err := ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a.Shape, c.shape) {
			t.Errorf("shape %v, want %v", a.Shape, c.shape)
		}
		switch d := c.data.(type) {
		case []float32:
			if !slices.Equal(a.F32, d) {
				t.Errorf("got %v want %v", a.F32, d)
			}
		case []int64:
			if !slices.Equal(a.I64, d) {
				t.Errorf("got %v want %v", a.I64, d)
			}
		case []uint8:
			if !slices.Equal(a.U8, d) {
				t.Errorf("got %v want %v", a.U8, d)
			}
		}
	}
}

func TestFortranOrder(t *testing.T) {
	// [[1,2,3],[4,5,6]] stored column-major is 1,4,2,5,3,6.
	var buf bytes.Buffer
	h := "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }"
	h += strings.Repeat(" ", 128-10-len(h)-1) + "\n"
	buf.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&buf, binary.LittleEndian, uint16(len(h)))
	buf.WriteString(h)
	binary.Write(&buf, binary.LittleEndian, []float32{1, 4, 2, 5, 3, 6})
	a, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{1, 2, 3, 4, 5, 6}; !slices.Equal(a.F32, want) {
		t.Errorf("got %v, want %v", a.F32, want)
	}
}

func TestBadInput(t *testing.T) {
	for name, data := range map[string]string{
		"empty":     "",
		"magic":     "NOTNUMPY00",
		"truncated": "\x93NUMPY\x01\x00\x40\x00{'descr': '<f4'",
		"dtype":     "\x93NUMPY\x01\x00\x3c\x00{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }    \n",
		"short":     "\x93NUMPY\x01\x00\x3c\x00{'descr': '<f4', 'fortran_order': False, 'shape': (9,), }    \n\x00\x00",
		"huge":      "\x93NUMPY\x01\x00\x3c\x00{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999,), }\n",
	} {
		if _, err := Read(strings.NewReader(data)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestTokenRows(t *testing.T) {
	tests := []struct {
		name    string
		in      Array
		want    [][]int
		wantErr bool
	}{
		{"2x3", Array{DType: "<i8", Shape: []int{2, 3}, I64: []int64{49406, 1, 49407, 49406, 49407, 0}},
			[][]int{{49406, 1, 49407}, {49406, 49407, 0}}, false},
		{"float", Array{DType: "<f4", Shape: []int{1, 2}, F32: []float32{1, 2}}, nil, true},
		{"1-D", Array{DType: "<i8", Shape: []int{3}, I64: []int64{1, 2, 3}}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.TokenRows()
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
