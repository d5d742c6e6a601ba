package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestConsoleCommand(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		code := runMain(ctx, []string{"console", "--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "stoa.db"),
			"--data", filepath.Join(dir, "data"), "--log-level", "warn"}, pw, &errOut)
		pw.Close()
		done <- code
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("stoa console exited %d: %s", code, errOut.String())
		}
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no ready line: %v %s", err, errOut.String())
	}
	go io.Copy(io.Discard, pr)
	m := regexp.MustCompile(`ready: url=(http://\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("ready line %q", line)
	}
	res, err := http.Get(m[1] + "openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	err = json.NewDecoder(res.Body).Decode(&doc)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || doc["paths"] == nil {
		t.Fatalf("openapi.json: %d %v", res.StatusCode, err)
	}
	res, err = http.Post(m[1]+"signup", "application/json", strings.NewReader(`{"email":"a@example.com","password":"a long password"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Errorf("signup = %d", res.StatusCode)
	}
	for _, name := range []string{"console.key", "audit.key"} {
		st, err := os.Stat(filepath.Join(dir, "data", name))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", name, st, err)
		}
	}
}
