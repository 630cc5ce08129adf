package main

import (
	"fmt"
	"strconv"
	"strings"
)

// args is a parsed command line: flags with values, repeatable, and
// positional arguments. Flags named in lists take every following argument
// up to the next flag ("--image a.jpg b.jpg"); boolean flags take none.
type args struct {
	values     map[string][]string
	positional []string
}

// parseArgs reads argv against the flags a command accepts. Both "--flag v"
// and "--flag=v" work; "--" ends the flags.
func parseArgs(argv []string, single, lists, bools []string) (*args, error) {
	kind := map[string]byte{}
	for _, f := range single {
		kind[f] = 's'
	}
	for _, f := range lists {
		kind[f] = 'l'
	}
	for _, f := range bools {
		kind[f] = 'b'
	}
	a := &args{values: map[string][]string{}}
	for i := 0; i < len(argv); i++ {
		arg := argv[i]
		if arg == "--" {
			a.positional = append(a.positional, argv[i+1:]...)
			break
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			a.positional = append(a.positional, arg)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		k, ok := kind[name]
		if !ok {
			return nil, fmt.Errorf("unknown flag %s", arg)
		}
		switch {
		case k == 'b':
			if hasVal {
				return nil, fmt.Errorf("flag --%s takes no value", name)
			}
			a.values[name] = append(a.values[name], "true")
		case hasVal:
			a.values[name] = append(a.values[name], val)
		case k == 's':
			if i+1 >= len(argv) {
				return nil, fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			a.values[name] = append(a.values[name], argv[i])
		default: // a list: everything up to the next flag
			n := 0
			for i+1 < len(argv) && !isFlag(argv[i+1]) {
				i++
				n++
				a.values[name] = append(a.values[name], argv[i])
			}
			if n == 0 {
				return nil, fmt.Errorf("flag --%s needs at least one value", name)
			}
		}
	}
	return a, nil
}

func isFlag(s string) bool { return strings.HasPrefix(s, "--") }

func (a *args) has(name string) bool { return len(a.values[name]) > 0 }

// str returns the last value of a flag, or def.
func (a *args) str(name, def string) string {
	if v := a.values[name]; len(v) > 0 {
		return v[len(v)-1]
	}
	return def
}

func (a *args) list(name string) []string { return a.values[name] }

func (a *args) int(name string, def int) (int, error) {
	s := a.str(name, "")
	if s == "" {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("flag --%s: %q is not a whole number", name, s)
	}
	return v, nil
}
