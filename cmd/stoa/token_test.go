package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/stoa-rtc/stoa/token"
)

const (
	refAppID   = "970CA35de60c44645bbae8a215061b33"
	refCert    = "5CFd2fd1755d40ecb72977518be15d3b"
	refChannel = "7d72365eb983485397e3e3f9d460bdda"
	refToken   = "007eJxSYBBbsMMnKq7p9Hf/HcIX5kce9b518kCiQgSr5Zrp4X1Tu6UUGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiVwMRhYWRsYmhkbmxoAAAAD//8JqJOM="
)

func TestTokenBuildReference(t *testing.T) {
	code, out, errOut := stoa(t, "token", "build", "--app-id", refAppID, "--app-cert", refCert, "--channel", refChannel,
		"--uid", "2882341273", "--role", "subscriber", "--expire", "600", "--issued-at", "1111111", "--salt", "1")
	if code != 0 {
		t.Fatalf("build = %d %q", code, errOut)
	}
	// The same token as the official builder's, but for the zlib writer's choice of compressed bytes.
	got, err := token.Parse(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	want, err := token.Parse(refToken)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("build = %+v\nwant    %+v", got, want)
	}
}

func TestTokenBuildDefaultsAndSecretSources(t *testing.T) {
	certFile := filepath.Join(t.TempDir(), "cert")
	if err := os.WriteFile(certFile, []byte(refCert+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(appCertEnv, "")
	code, out, errOut := stoa(t, "token", "build", "--app-id", refAppID, "--app-cert-file", certFile,
		"--channel", "c", "--account", "alice", "--issued-at", "1700000000")
	if code != 0 {
		t.Fatalf("build: %d %s", code, errOut)
	}
	tok := strings.TrimSpace(out)
	got := inspectJSON(t, tok)
	svc := got["services"].([]any)[0].(map[string]any)
	if got["expire"] != 3600.0 || svc["uid"] != "alice" || len(svc["privileges"].(map[string]any)) != 4 {
		t.Errorf("defaults: %v", got)
	}
	if salt := got["salt"].(float64); salt < 1 || salt > 99999999 {
		t.Errorf("random salt %v out of range", salt)
	}
	t.Setenv(appCertEnv, refCert)
	if code, out, errOut := stoa(t, "token", "verify", "--now", "1700000001", tok); code != 0 || out != "valid\n" {
		t.Errorf("verify with $%s: %d %q %q", appCertEnv, code, out, errOut)
	}
	for _, bad := range [][]string{
		{"--uid", "1", "--account", "a"}, // both
		{},                               // neither
		{"--uid", "-1"},
		{"--uid", "4294967296"},
		{"--uid", "1", "--role", "admin"},
		{"--uid", "1", "--expire", "4294967296"},
	} {
		args := append([]string{"token", "build", "--app-id", refAppID, "--app-cert", refCert, "--channel", "c"}, bad...)
		if code, _, errOut := stoa(t, args...); code != 2 || errOut == "" {
			t.Errorf("build %q = %d %q, want a usage error", bad, code, errOut)
		}
	}
	if code, _, errOut := stoa(t, "token", "build", "--app-id", "short", "--app-cert", refCert, "--channel", "c", "--uid", "1"); code != 1 || !strings.Contains(errOut, "32 hexadecimal") {
		t.Errorf("short app id: %d %q", code, errOut)
	}
}

func inspectJSON(t *testing.T, tok string) map[string]any {
	t.Helper()
	code, out, errOut := stoa(t, "token", "inspect", tok)
	if code != 0 {
		t.Fatalf("inspect: %d %s", code, errOut)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("inspect printed %q: %v", out, err)
	}
	return m
}

// Every published token: inspect prints exactly the decoded fields of the vector file, and verify agrees with it.
func TestTokenPublishedVectors(t *testing.T) {
	b, err := os.ReadFile("../../token/testdata/accesstoken2-published.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c["source"].(string), func(t *testing.T) {
			tok := c["token"].(string)
			code, out, errOut := stoa(t, "token", "inspect", tok)
			if code != 0 {
				t.Fatalf("inspect: %d %s", code, errOut)
			}
			var got map[string]any
			d := json.NewDecoder(strings.NewReader(out))
			d.UseNumber()
			if err := d.Decode(&got); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{"version": "007"}
			for _, k := range []string{"app_id", "issue_ts", "expire", "salt", "services"} {
				want[k] = c[k]
			}
			if g, w := canonical(t, got), canonical(t, want); g != w {
				t.Errorf("inspect:\n got %s\nwant %s", g, w)
			}

			issue, _ := c["issue_ts"].(json.Number).Int64()
			code, out, errOut = stoa(t, "token", "verify", "--app-cert", c["app_cert"].(string), "--app-id", c["app_id"].(string),
				"--now", strconv.FormatInt(issue+1, 10), tok)
			if valid := c["valid"].(bool); valid != (code == 0) {
				t.Errorf("verify = %d %q %q, want valid=%v", code, out, errOut, valid)
			}
			if code != 0 && !strings.Contains(errOut, "signature") {
				t.Errorf("verify gave %q, want a bad signature", errOut)
			}
		})
	}
}

func canonical(t *testing.T, v any) string {
	b, err := json.Marshal(v) // maps marshal with sorted keys
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTokenVerifyReasons(t *testing.T) {
	build := func(extra ...string) string {
		args := append([]string{"token", "build", "--app-id", refAppID, "--app-cert", refCert, "--channel", "room",
			"--uid", "42", "--issued-at", "1700000000"}, extra...)
		code, out, errOut := stoa(t, args...)
		if code != 0 {
			t.Fatalf("build: %s", errOut)
		}
		return strings.TrimSpace(out)
	}
	tok, short := build("--expire", "600"), build("--expire", "600", "--privilege-expire", "60")
	for _, tc := range []struct {
		args   []string
		code   int
		reason string
	}{
		{[]string{"--channel", "room", "--uid", "42", "--now", "1700000001", tok}, 0, ""},
		{[]string{tok, "--now", "1700000001", "--channel", "room"}, 0, ""}, // flags after the token
		{[]string{"--channel", "hall", "--now", "1700000001", tok}, 1, "channel mismatch"},
		{[]string{"--uid", "7", "--now", "1700000001", tok}, 1, "uid mismatch"},
		{[]string{"--app-id", strings.Repeat("a", 32), "--now", "1700000001", tok}, 1, "app id mismatch"},
		{[]string{"--now", "1700000600", tok}, 1, "token expired"},
		{[]string{"--now", "1700000060", short}, 1, "privilege expired"},
		{[]string{"--now", "1700000001", tok[:len(tok)-8]}, 1, "malformed"},
		{[]string{"--now", "1700000001", "007" + strings.Repeat("A", 5000)}, 1, "longer than the limit"},
		{[]string{}, 2, "expected one TOKEN"},
	} {
		args := append([]string{"token", "verify", "--app-cert", refCert}, tc.args...)
		code, out, errOut := stoa(t, args...)
		if code != tc.code || !strings.Contains(errOut, tc.reason) || (code == 0) != (out == "valid\n") {
			t.Errorf("verify %q = %d %q %q; want %d %q", tc.args, code, out, errOut, tc.code, tc.reason)
		}
		if strings.Contains(errOut, refCert) {
			t.Errorf("the certificate appears in the error output")
		}
	}
	if code, _, errOut := stoa(t, "token", "verify", "--app-cert", strings.ToLower(refCert), tok); code != 1 || !strings.Contains(errOut, "bad signature") {
		t.Errorf("wrong certificate: %d %q", code, errOut)
	}
}
