package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/stoa-rtc/stoa/sframe"
)

// sframeCommand is the `stoa sframe` group.
func sframeCommand() *command {
	return &command{
		name:    "sframe",
		summary: "check SFrame (RFC 9605) end-to-end encryption",
		subcommands: []*command{
			{
				name:    "vectors",
				summary: "check every case of an RFC 9605 JSON test-vector file",
				usage: "stoa sframe vectors FILE\n\n" +
					"Checks the \"header\", \"aes_ctr_hmac\" and \"sframe\" sections of FILE (RFC 9605 Appendix C layout;\n" +
					"\"-\" reads standard input). Prints one line per failing case and a last line \"N passed, M failed\";\n" +
					"exits 0 only if every case passed.",
				run: runSFrameVectors,
			},
		},
	}
}

func runSFrameVectors(_ context.Context, args []string, env *cmdEnv) error {
	pos, err := env.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("sframe vectors: want one FILE argument, got %d", len(pos))
	}
	var in io.Reader = os.Stdin
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	rep, err := sframe.CheckVectors(in)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	for _, key := range rep.Ignored {
		fmt.Fprintf(env.stderr, "stoa: %s: ignoring unknown section %q\n", pos[0], key)
	}
	for _, f := range rep.Failures {
		fmt.Fprintf(env.stdout, "FAIL %v\n", f)
	}
	fmt.Fprintf(env.stdout, "%d passed, %d failed\n", rep.Passed, rep.Failed())
	if rep.Failed() > 0 {
		return fmt.Errorf("sframe vectors: %d of %d cases failed", rep.Failed(), rep.Passed+rep.Failed())
	}
	return nil
}
