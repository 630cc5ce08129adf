package checkpoint

import (
	"testing"
)

// checkTensors asserts what every successful parse must guarantee.
func checkTensors(t *testing.T, tensors map[string]*Tensor) {
	for name, tt := range tensors {
		if tt.Name != name || tt.DType.Size() == 0 || len(tt.Bytes()) != tt.Numel()*tt.DType.Size() {
			t.Fatalf("tensor %q: name %q, %s %v with %d bytes", name, tt.Name, tt.DType, tt.Shape, len(tt.Bytes()))
		}
		if _, err := tt.Float32(); err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzSafetensors(f *testing.F) {
	f.Add(rawSafetensors(`{"__metadata__":{"format":"pt"},"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(rawSafetensors(`{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"b":{"dtype":"I64","shape":[1,1],"data_offsets":[4,12]}}`, make([]byte, 12)))
	f.Add(rawSafetensors(`{"w":{"dtype":"F16","shape":[3],"data_offsets":[2,8]}}`, make([]byte, 8)))
	f.Fuzz(func(t *testing.T, data []byte) {
		tensors, _, err := parseSafetensors(&byteSource{data: data})
		if err == nil {
			checkTensors(t, tensors)
		}
	})
}

// FuzzTorchZip mutates whole archives: mostly the zip structure, since a
// changed record fails its CRC before the pickle is read.
func FuzzTorchZip(f *testing.F) {
	strided, _, _ := stridedArchive(f)
	f.Add(strided)
	f.Add(scriptArchive(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, tensors, _, err := readTorchZip(&byteSource{data: data})
		if err == nil {
			checkTensors(t, tensors)
		}
	})
}

// FuzzTorchPickle mutates data.pkl inside a well-formed archive whose
// records exist, which reaches the unpickler and the tensor views.
func FuzzTorchPickle(f *testing.F) {
	records := map[string][]byte{"0": f32Bytes(0, 1, 2, 3, 4, 5), "1": make([]byte, 16), "2": make([]byte, 8)}
	f.Add(pickleOf(pODict{
		{"a", pTensor{storage: "FloatStorage", key: "0", numel: 6, offset: 1, shape: []int{2, 2}, stride: []int{1, 2}}},
		{"b", pTensor{storage: "HalfStorage", key: "1", numel: 8, shape: []int{8}, stride: []int{1}, param: true}},
		{"c", pTensor{storage: "UntypedStorage", key: "2", numel: 8, shape: []int{}, stride: []int{}, dtype: "float64"}},
	}))
	f.Add(pickleOf(pDict{{"epoch", 1}, {"state_dict", pODict{
		{"module.x", pTensor{storage: "LongStorage", key: "1", numel: 2, shape: []int{2}, stride: []int{1}}},
	}}}))
	f.Add(pickleOf(pObj{mod: "__torch__.m", name: "M", attrs: []kv{
		{"n", pTensor{storage: "LongStorage", key: "2", numel: 1, shape: []int{}, stride: []int{}}},
		{"sub", pObj{mod: "__torch__.m", name: "S", attrs: []kv{{"w", pTensor{storage: "BFloat16Storage", key: "1", numel: 8, shape: []int{2, 4}, stride: []int{4, 1}}}}}},
	}}))
	f.Fuzz(func(t *testing.T, pkl []byte) {
		_, tensors, _, err := readTorchZip(&byteSource{data: torchZipBytes(t, "f", pkl, records)})
		if err == nil {
			checkTensors(t, tensors)
		}
	})
}
