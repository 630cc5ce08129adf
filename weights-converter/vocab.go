package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/clipwasm/clipwasm/tokenizer"
)

// defaultVocab is CLIP's merges file, relative to the working folder, as
// the project's shared data lays it out.
var defaultVocab = filepath.Join("..", "shared", "reference", tokenizer.OpenAIVocabFile)

// loadTokenizer finds the tokenizer for the checkpoint at in: flagPath if
// given; else the vocabulary files beside the weights; else
// $CLIPWASM_VOCAB; else defaultVocab. It returns where it came from.
func loadTokenizer(flagPath, in string) (*tokenizer.Tokenizer, string, error) {
	load := func(p string) (*tokenizer.Tokenizer, string, error) {
		t, err := tokenizer.Load(p)
		return t, p, err
	}
	if flagPath != "" {
		return load(flagPath)
	}
	dir := in
	if st, err := os.Stat(in); err == nil && !st.IsDir() {
		dir = filepath.Dir(in)
	}
	hf := exists(filepath.Join(dir, tokenizer.HFVocabFile)) && exists(filepath.Join(dir, tokenizer.HFMergesFile))
	if hf || exists(filepath.Join(dir, tokenizer.OpenAIVocabFile)) {
		return load(dir)
	}
	if env := os.Getenv("CLIPWASM_VOCAB"); env != "" {
		return load(env)
	}
	if exists(defaultVocab) {
		return load(defaultVocab)
	}
	return nil, "", fmt.Errorf("no tokenizer: the checkpoint has no %s and %s beside it; give --vocab PATH (%s) or set $CLIPWASM_VOCAB",
		tokenizer.HFVocabFile, tokenizer.HFMergesFile, tokenizer.OpenAIVocabFile)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
