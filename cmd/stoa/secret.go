package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// secretFlag is a secret that may come from a flag, a file or an environment variable, so that it need not appear
// in shell history or in the process list. Precedence: --NAME, then --NAME-file, then $ENV.
type secretFlag struct {
	name, env   string
	value, file string
}

func newSecretFlag(fs *flag.FlagSet, name, env, what string) *secretFlag {
	s := &secretFlag{name: name, env: env}
	fs.StringVar(&s.value, name, "", what+" (visible in the process list; prefer --"+name+"-file or $"+env+")")
	fs.StringVar(&s.file, name+"-file", "", "read the "+what+" from this file")
	return s
}

// get returns the secret, or "" if no source gives one. Errors never contain the secret.
func (s *secretFlag) get() (string, error) {
	if s.value != "" {
		return s.value, nil
	}
	if s.file != "" {
		b, err := os.ReadFile(s.file)
		if err != nil {
			return "", fmt.Errorf("--%s-file: %w", s.name, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return strings.TrimSpace(os.Getenv(s.env)), nil
}

// require is get, with a usage error when no source gives the secret.
func (s *secretFlag) require() (string, error) {
	v, err := s.get()
	if err == nil && v == "" {
		err = usagef("missing --%s (or --%s-file, or $%s)", s.name, s.name, s.env)
	}
	return v, err
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
