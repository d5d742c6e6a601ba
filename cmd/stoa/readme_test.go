package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeBlock returns the shell code of README.md between <!-- name --> and <!-- /name -->: one ```sh block.
func readmeBlock(t *testing.T, readme, name string) string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "<!-- "+name+" -->\n")
	block, _, ok2 := strings.Cut(rest, "<!-- /"+name+" -->")
	code, found := strings.CutPrefix(strings.TrimSpace(block), "```sh\n")
	code, found2 := strings.CutSuffix(code, "\n```")
	if !ok || !ok2 || !found || !found2 {
		t.Fatalf("README.md has no ```sh block between <!-- %s --> and <!-- /%s -->", name, name)
	}
	return code
}

// TestREADMEFirstSetUp: the README's first screen sets up with exactly two commands, before the first call.
func TestREADMEFirstSetUp(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	_, rest, _ := strings.Cut(readme, "```sh\n")
	first, _, _ := strings.Cut(rest, "```")
	var commands []string
	for _, l := range strings.Split(strings.TrimSpace(first), "\n") {
		cmd, _, _ := strings.Cut(l, "#")
		commands = append(commands, strings.TrimSpace(cmd))
	}
	want := []string{"GOTOOLCHAIN=go1.27.3 go run ./cmd/stoa dev", "bash .ci/run"}
	if strings.Join(commands, "\n") != strings.Join(want, "\n") {
		t.Errorf("the README's first block runs %q, want %q", commands, want)
	}
	if strings.Index(readme, first) > strings.Index(readme, "<!-- first-call -->") {
		t.Error("the first call comes before the set-up")
	}
}

// TestREADMEFirstCall runs the README's first-call block as written, with bash in the repository's root, against
// a stoa dev on a free port: as the README says, with another --data the block reads DIR/dev.env. Both members
// must receive and decrypt frames from the other.
func TestREADMEFirstCall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds stoa with go run and makes a 10 s call")
	}
	for _, tool := range []string{"bash", "openssl", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the README's first call needs %s: %v", tool, err)
		}
	}
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	code := readmeBlock(t, string(b), "first-call")
	if !strings.Contains(code, ". .stoa-dev/dev.env") {
		t.Fatalf("the first call does not read .stoa-dev/dev.env:\n%s", code)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// go run builds stoa first: let it build once, with a deadline of its own, so that the two members of the
	// block start together.
	build, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	warm := exec.CommandContext(build, "go", "run", "./cmd/stoa", "version")
	warm.Dir = root
	if out, err := warm.CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "stoa ") {
		t.Fatalf("go run ./cmd/stoa version: %v\n%s", err, out)
	}

	d := startDev(t)
	code = strings.ReplaceAll(code, ".stoa-dev/", d.dataDir+"/")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", code)
	cmd.Dir = root
	// Its own process group: on the deadline, the members in the background end with the shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stderr syncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the README's first call: %v\n%s\n%s", err, out, stderr.String())
	}
	summary := regexp.MustCompile(`(?m)^sent (\d+) frames, received (\d+), decrypted (\d+), failed to decrypt (\d+)$`)
	members := summary.FindAllStringSubmatch(string(out), -1)
	if len(members) != 2 {
		t.Fatalf("want the summaries of two members, got:\n%s\n%s", out, stderr.String())
	}
	for _, m := range members {
		n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
		if n(1) == 0 || n(2) == 0 || n(3) == 0 || n(4) != 0 {
			t.Errorf("a member: %s\n%s", m[0], stderr.String())
		}
	}
}
