package shards

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// jsonSeeds are documents for the manifest's types that exercise the
// reader: escapes, surrogates, invalid UTF-8, numbers at the edges of
// their types, nulls, repeated keys, case-folded keys, nesting and
// syntax errors.
var jsonSeeds = []string{
	`{"format":"clipwasm-bundle","version":1,"quant":"int8"}`,
	`{"tokenizer":{"merges":["a b","\u00e9 \ud83d\ude00","\ud800 x","\udc00","\"\\\/\b\f\n\r\t"],"vocab":{"a":1,"é":2,"\u0000":3}}}`,
	"{\"format\":\"\xff\xfe bad utf-8 \xc3\"}",
	`{"config":{"embed_dim":512,"layer_norm_eps":1e-5,"mean":[0.48145466,0.4578275,0.40821073],"std":[1,2],"activation":"quick_gelu","vision_layers":[1,2,3]}}`,
	`{"config":{"activation":"swish"}}`,
	`{"config":{"activation":3}}`,
	`{"config":{"activation":null}}`,
	`{"config":{"mean":[1,2,3,4,5]}}`,
	`{"config":{"layer_norm_eps":1e39}}`,
	`{"version":9223372036854775807}`,
	`{"version":9223372036854775808}`,
	`{"version":1.0}`,
	`{"version":-0}`,
	`{"version":"1"}`,
	`{"version":01}`,
	`{"version":1.}`,
	`{"version":-}`,
	`{"version":1e}`,
	`{"VERSION":2,"Format":"x"}`,
	`{"version":1,"version":2}`,
	`{"tensors":[{"name":"a","shape":[1,2],"parts":[{"shard":"s","rows":[0,1],"data":{"key":"k","offsets":[0,4]},"scales":{"key":"k#scales","offsets":[4,8]}}]}],"tensors":[{"kind":"matrix"}]}`,
	`{"tensors":[{"parts":[{"scales":null}]}],"shards":null,"tokenizer":{"vocab":null}}`,
	`{"tensors":[],"shards":[{"file":"a","size":-1,"sha256":"00"}]}`,
	`{"unknown":{"deep":[[[[{"x":[true,false,null,-1.5e+3]}]]]]}}`,
	`{"format":true}`,
	`{"tensors":{}}`,
	`{"config":[]}`,
	`null`,
	`[]`,
	` {"format" : "x" } `,
	`{"format":"x"} x`,
	`{"format":"x",}`,
	`{,}`,
	`{"a" 1}`,
	`{"format":"\x01"}`,
	`{"format":"\u12"}`,
	`{"format":"\q"}`,
	`{"format":"abc`,
	`{"tensors":[{"name":"a"},]}`,
	`[` + strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001) + `]`,
	``,
}

// FuzzUnmarshalJSON holds unmarshalJSON to encoding/json on the manifest's
// types: both accept or both refuse a document, and decode an accepted one
// to the same value.
func FuzzUnmarshalJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	m, _ := validManifest(f)
	m.Tokenizer.Merges = m.Tokenizer.Merges[:10]
	raw, _ := json.Marshal(m)
	f.Add(raw)
	f.Fuzz(func(t *testing.T, data []byte) {
		var got, want Manifest
		errGot := unmarshalJSON(data, &got)
		errWant := json.Unmarshal(data, &want)
		if (errGot == nil) != (errWant == nil) {
			t.Fatalf("%q: unmarshalJSON error %v, encoding/json error %v", data, errGot, errWant)
		}
		if errGot == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: unmarshalJSON %+v, encoding/json %+v", data, got, want)
		}
	})
}

// TestUnmarshalJSONErrors: errors name the offset and the field.
func TestUnmarshalJSONErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"tensors":[{"shape":[1,2.5]}]}`, `JSON at offset 24: tensors[0].shape[1]: want an integer, got 2.5`},
		{`{"config":{"mean":"x"}}`, `offset 18: config.mean: want an array, got a string`},
		{`{"config":{"activation":"swish"}}`, `config.activation: `},
		{`{"format":"x"`, `offset 13: unexpected end of input in an object`},
		{`{"format":"\ud800\u00zz"}`, `offset 19: format: invalid \u escape "00zz"`},
		{`{"format":"x"} {}`, `offset 15: data after the top-level value`},
		{`[` + strings.Repeat(`[`, maxJSONDepth) + strings.Repeat(`]`, maxJSONDepth+1), `nested over 10000 levels`},
	} {
		var m Manifest
		err := unmarshalJSON([]byte(tc.in), &m)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.40q: error %v, want it to contain %q", tc.in, err, tc.want)
		}
	}
}
