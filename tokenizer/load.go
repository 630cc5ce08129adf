package tokenizer

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// File names Load looks for in a directory.
const (
	OpenAIVocabFile = "bpe_simple_vocab_16e6.txt.gz"
	HFVocabFile     = "vocab.json"
	HFMergesFile    = "merges.txt"
)

// Load reads a tokenizer from path: an OpenAI merges file (gzip-compressed
// or plain text, see LoadOpenAI), or a directory holding either Hugging
// Face's vocab.json and merges.txt (preferred when both are there) or
// bpe_simple_vocab_16e6.txt.gz.
func Load(path string) (*Tokenizer, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if !info.IsDir() {
		return loadOpenAIFile(path)
	}
	vocabPath := filepath.Join(path, HFVocabFile)
	mergesPath := filepath.Join(path, HFMergesFile)
	if exists(vocabPath) && exists(mergesPath) {
		return loadHFFiles(vocabPath, mergesPath)
	}
	if p := filepath.Join(path, OpenAIVocabFile); exists(p) {
		return loadOpenAIFile(p)
	}
	return nil, fmt.Errorf("tokenizer: %s holds neither %s and %s nor %s", path, HFVocabFile, HFMergesFile, OpenAIVocabFile)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func loadOpenAIFile(path string) (*Tokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	t, err := LoadOpenAI(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

func loadHFFiles(vocabPath, mergesPath string) (*Tokenizer, error) {
	vf, err := os.Open(vocabPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer vf.Close()
	mf, err := os.Open(mergesPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer mf.Close()
	t, err := LoadHF(vf, mf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Dir(vocabPath), err)
	}
	return t, nil
}

// LoadOpenAI reads CLIP's bpe_simple_vocab_16e6.txt.gz, compressed or not
// (gzip is recognised by its magic bytes). Like SimpleTokenizer it skips the
// first line, a header, and takes the next OpenAIMerges lines as merges,
// ignoring the rest of the file; the vocabulary is the layout New builds
// without one, so the special tokens get ids SOT and EOT.
func LoadOpenAI(r io.Reader) (*Tokenizer, error) {
	br := bufio.NewReader(r)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: opening gzip stream: %w", err)
		}
		defer zr.Close()
		br = bufio.NewReader(zr)
	}
	lines := bufio.NewScanner(br)
	if !lines.Scan() {
		return nil, fmt.Errorf("tokenizer: reading merges header: %w", scanErr(lines))
	}
	merges := make([][2]string, 0, OpenAIMerges)
	for len(merges) < OpenAIMerges && lines.Scan() {
		m, err := parseMerge(lines.Text())
		if err != nil {
			return nil, fmt.Errorf("tokenizer: merges line %d: %w", len(merges)+2, err)
		}
		merges = append(merges, m)
	}
	if err := lines.Err(); err != nil {
		return nil, fmt.Errorf("tokenizer: reading merges: %w", err)
	}
	if len(merges) < OpenAIMerges {
		return nil, fmt.Errorf("tokenizer: merges file has %d merges, CLIP needs %d", len(merges), OpenAIMerges)
	}
	return New(merges, nil)
}

// scanErr is the scanner's error, or io.ErrUnexpectedEOF if it only ran out
// of input.
func scanErr(s *bufio.Scanner) error {
	if err := s.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

// parseMerge splits a merges line into its two symbols. Python splits on any
// whitespace; a line without exactly two symbols would give a merge that can
// never apply, so it is reported as the corruption it is.
func parseMerge(line string) ([2]string, error) {
	f := strings.Fields(line)
	if len(f) != 2 {
		return [2]string{}, fmt.Errorf("want two symbols, got %q", line)
	}
	return [2]string{f[0], f[1]}, nil
}

// LoadHF reads a Hugging Face CLIP tokenizer: vocab.json (a JSON object,
// token → id) and merges.txt (an optional "#version" header line, then one
// merge per line; blank lines are ignored). Hugging Face's CLIP vocab.json
// is exactly the vocabulary LoadOpenAI builds, so both give the same ids.
func LoadHF(vocabJSON, mergesTxt io.Reader) (*Tokenizer, error) {
	var vocab map[string]int
	dec := json.NewDecoder(vocabJSON)
	if err := dec.Decode(&vocab); err != nil {
		return nil, fmt.Errorf("tokenizer: parsing %s: %w", HFVocabFile, err)
	}
	if vocab == nil {
		return nil, fmt.Errorf("tokenizer: %s is null, want an object", HFVocabFile)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("tokenizer: %s: trailing data after the object", HFVocabFile)
	}
	var merges [][2]string
	lines := bufio.NewScanner(mergesTxt)
	for n := 1; lines.Scan(); n++ {
		line := lines.Text()
		if n == 1 && strings.HasPrefix(line, "#version") || strings.TrimSpace(line) == "" {
			continue
		}
		m, err := parseMerge(line)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %s line %d: %w", HFMergesFile, n, err)
		}
		merges = append(merges, m)
	}
	if err := lines.Err(); err != nil {
		return nil, fmt.Errorf("tokenizer: reading %s: %w", HFMergesFile, err)
	}
	return New(merges, vocab)
}
