package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one node of the CLI tree: either a group of subcommands or a runnable leaf.
type command struct {
	name    string
	summary string // one line, shown in the parent's list
	usage   string // synopsis lines, a blank line, then a description: shown by -h on a leaf
	// flags declares the leaf's flags on fs; values are read by run through the closure.
	flags       func(fs *flag.FlagSet)
	run         func(ctx context.Context, args []string, env *cmdEnv) error
	subcommands []*command
}

// cmdEnv carries what a leaf needs besides its arguments.
type cmdEnv struct {
	fs             *flag.FlagSet
	stdout, stderr io.Writer
}

// usageError marks an error in how the command was called; it exits with status 2 and prints the usage hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{msg: fmt.Sprintf(format, a...)} }

// parse parses the leaf's flags, allowing flags after positional arguments ("verify TOKEN --app-cert X"),
// and returns the positional arguments. "--" ends flag parsing.
func (env *cmdEnv) parse(args []string) ([]string, error) {
	var positional []string
	for {
		if err := env.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{msg: err.Error()}
		}
		rest := env.fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		// Parse stops at the first positional argument, or just after a "--" that it consumed.
		if i := len(args) - len(rest); i > 0 && args[i-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// parseNoArgs parses the leaf's flags for a command that takes no positional arguments.
func (env *cmdEnv) parseNoArgs(args []string) error {
	rest, err := env.parse(args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	return nil
}

func (c *command) execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := c.dispatch(ctx, []string{c.name}, args, stdout, stderr)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "stoa: %v\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "stoa: %v\n", err)
	return 1
}

func (c *command) dispatch(ctx context.Context, path, args []string, stdout, stderr io.Writer) error {
	full := strings.Join(path, " ")
	if c.run != nil {
		fs := flag.NewFlagSet(full, flag.ContinueOnError)
		fs.SetOutput(stderr)
		if c.flags != nil {
			c.flags(fs)
		}
		fs.Usage = func() {
			synopsis, description, _ := strings.Cut(c.usage, "\n\n")
			fmt.Fprintf(stderr, "%s\n\nUsage:\n  %s\n", c.summary, strings.ReplaceAll(synopsis, "\n", "\n  "))
			if description != "" {
				fmt.Fprintf(stderr, "\n%s\n", description)
			}
			var hasFlags bool
			fs.VisitAll(func(*flag.Flag) { hasFlags = true })
			if hasFlags {
				fmt.Fprintln(stderr, "\nFlags:")
				fs.PrintDefaults()
			}
		}
		return c.run(ctx, args, &cmdEnv{fs: fs, stdout: stdout, stderr: stderr})
	}
	// Errors name the command below the root ("token: "): execute prefixes them with "stoa: ".
	where := ""
	if len(path) > 1 {
		where = strings.Join(path[1:], " ") + ": "
	}
	if len(args) == 0 {
		c.printList(stderr, full)
		return usagef("%smissing command: give one of those listed above", where)
	}
	name := args[0]
	if name == "-h" || name == "-help" || name == "--help" || name == "help" {
		if name == "help" && len(args) > 1 {
			// "stoa help token build" shows the help of that command.
			return c.dispatch(ctx, path, append(args[1:], "-h"), stdout, stderr)
		}
		c.printList(stdout, full)
		return nil
	}
	for _, sub := range c.subcommands {
		if sub.name == name {
			return sub.dispatch(ctx, append(path, name), args[1:], stdout, stderr)
		}
	}
	c.printList(stderr, full)
	return usagef("%sunknown command %q: give one of those listed above", where, name)
}

func (c *command) printList(w io.Writer, full string) {
	fmt.Fprintf(w, "%s\n\nUsage:\n  %s <command> [flags] [args]\n\nCommands:\n", c.summary, full)
	for _, sub := range c.subcommands {
		fmt.Fprintf(w, "  %-10s %s\n", sub.name, sub.summary)
	}
	fmt.Fprintf(w, "\nRun '%s <command> -h' for the help of a command.\n", full)
}
