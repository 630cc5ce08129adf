package tokenizer_test

import (
	"fmt"
	"log"

	"github.com/clipwasm/clipwasm/internal/fixtures"
	"github.com/clipwasm/clipwasm/tokenizer"
)

func ExampleTokenizer_Tokenize() {
	tok, err := tokenizer.Load(fixtures.VocabPath()) // bpe_simple_vocab_16e6.txt.gz
	if err != nil {
		log.Fatal(err)
	}
	row := tok.Tokenize("A photo of a dog.", tokenizer.ContextLength)
	fmt.Println(len(row), row[:8])
	fmt.Println("pooled at", tokenizer.EOTIndex(row))
	fmt.Printf("%q\n", tok.Decode(row[1:7]))
	// Output:
	// 77 [49406 320 1125 539 320 1929 269 49407]
	// pooled at 7
	// "a photo of a dog . "
}
