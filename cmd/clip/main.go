// Command clip is a terminal front end to the clipwasm engine: it tokenizes
// text, preprocesses images, embeds either, and classifies photos zero-shot.
//
//	clip tokenize TEXT...
//	clip preprocess --size N --out X.npy IMAGE...
//	clip embed --model PATH (--images-npy X.npy | --tokens-npy T.npy | --image FILE... | --text STR...) --out Y.npy [--normalize]
//	clip classify --model PATH --labels "a,b,c" [--template T]... [--template-file F] [--ensemble imagenet] [--top K] [--json] IMAGE...
//
// Common flags: --threads N (default: all cores), --vocab PATH (the BPE
// vocabulary; by default looked for beside the model, in $CLIPWASM_VOCAB,
// and in ../shared/reference).
//
// Errors go to stderr and the exit status is non-zero.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

const usage = `usage:
  clip tokenize [--vocab PATH] TEXT...
  clip preprocess --size N --out X.npy [--model PATH] IMAGE...
  clip embed --model PATH (--images-npy X.npy | --tokens-npy T.npy | --image FILE... | --text STR...) --out Y.npy [--normalize] [--threads N]
  clip classify --model PATH --labels "a,b,c" [--template T]... [--template-file F] [--ensemble imagenet] [--top K] [--json] [--threads N] IMAGE...
`

// errUsage marks errors that should be followed by the usage text.
var errUsage = errors.New("usage")

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "clip:", err)
		if errors.Is(err, errUsage) {
			fmt.Fprint(os.Stderr, usage)
		}
		os.Exit(1)
	}
}

func run(argv []string, stdout io.Writer) error {
	if len(argv) == 0 {
		return fmt.Errorf("no command: %w", errUsage)
	}
	cmds := map[string]func([]string, io.Writer) error{
		"tokenize":   cmdTokenize,
		"preprocess": cmdPreprocess,
		"embed":      cmdEmbed,
		"classify":   cmdClassify,
	}
	switch argv[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	cmd, ok := cmds[argv[0]]
	if !ok {
		return fmt.Errorf("unknown command %q: %w", argv[0], errUsage)
	}
	return cmd(argv[1:], stdout)
}
