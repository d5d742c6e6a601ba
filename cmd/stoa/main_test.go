package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// stoa runs the CLI in process and returns its exit code, stdout and stderr.
func stoa(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runMain(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelpAndUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"help"}, 0, "token"},
		{[]string{"--help"}, 0, "sframe"},
		{[]string{}, 2, "missing command"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"token"}, 2, "stoa: token: missing command"},
		{[]string{"token", "build", "-h"}, 0, "--role publisher|subscriber"},
		{[]string{"help", "token", "verify"}, 0, "--now UNIX"},
		{[]string{"token", "build", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"version"}, 0, "stoa"},
		{[]string{"edge", "--join-timeout", "0s"}, 2, "--join-timeout must be 1s..1m"},
		{[]string{"dispatch", "--max-conns-per-addr", "0"}, 2, "--max-conns-per-addr, --read-timeout and --idle-timeout must be positive"},
		{[]string{"console", "--db", "x.db", "--read-timeout", "0s"}, 2, "must be positive"},
	} {
		code, out, errOut := stoa(t, tc.args...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) || strings.Contains(errOut, "stoa: stoa") {
			t.Errorf("stoa %q = %d, %q %q; want %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
}
