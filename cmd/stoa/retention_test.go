package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/audit"
	"github.com/stoa-rtc/stoa/internal/console"
	"github.com/stoa-rtc/stoa/internal/store"
)

func TestRetentionFlagsRefused(t *testing.T) {
	for _, cmd := range []string{"console", "dev"} {
		for _, tc := range []struct {
			flags []string
			want  []string
		}{
			{[]string{"--retain-media-logs", "731d"}, []string{"--retain-media-logs 731d: more than the maximum of 730 days (two years)"}},
			{ // every problem at once
				[]string{"--retain-analytics", "17521h", "--retain-access-log", "0d", "--retain-audit-log", "1000d"},
				[]string{"--retain-analytics 17521h0m0s: more than the maximum", "--retain-access-log 0s: must be positive", "--retain-audit-log 1000d: more than"},
			},
			{[]string{"--retain-audit-log", "two years"}, []string{`invalid value "two years" for flag -retain-audit-log`, "90d"}},
		} {
			dir := t.TempDir()
			args := append([]string{cmd, "--db", filepath.Join(dir, "stoa.db"), "--data", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0"}, tc.flags...)
			if cmd == "dev" {
				args = append([]string{cmd, "--data", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0"}, tc.flags...)
			}
			code, out, errOut := stoa(t, args...)
			if code != 2 || out != "" {
				t.Errorf("stoa %s %q = %d %q %q; want exit 2 and nothing started", cmd, tc.flags, code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stoa %s %q: stderr %q lacks %q", cmd, tc.flags, errOut, w)
				}
			}
			// Refused before anything was created, let alone listened.
			entries, _ := os.ReadDir(dir)
			if len(entries) != 0 {
				t.Errorf("stoa %s %q created %v", cmd, tc.flags, entries)
			}
		}
	}
}

func TestRetentionFlagsHelp(t *testing.T) {
	for _, cmd := range []string{"console", "dev"} {
		code, out, errOut := stoa(t, cmd, "-h")
		for _, want := range []string{"-retain-media-logs", "(default 365d)", "-retain-audit-log", "(default 730d)", "at most 730d"} {
			if code != 0 || !strings.Contains(out+errOut, want) {
				t.Errorf("stoa %s -h = %d, lacks %q: %s", cmd, code, want, out+errOut)
			}
		}
	}
}

// retentionOf signs up on the console at base (".../api/v1/") and returns a function that GETs retention.
func retentionOf(t *testing.T, base string) func() map[string]any {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	res, err := c.Post(base+"signup", "application/json", strings.NewReader(`{"email":"a@example.com","password":"a long password"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("signup = %d", res.StatusCode)
	}
	return func() map[string]any {
		t.Helper()
		res, err := c.Get(base + "retention")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var v map[string]any
		if err := json.NewDecoder(res.Body).Decode(&v); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET retention = %d %v", res.StatusCode, err)
		}
		return v
	}
}

func days(v map[string]any, category string) any {
	r, _ := v["retention"].(map[string]any)
	c, _ := r[category].(map[string]any)
	return c["days"]
}

// TestRetentionConsole starts stoa console with 730 days (the maximum) and 720h, checks the API reports them
// and that the purge at start is in an audit log that still verifies.
func TestRetentionConsole(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "stoa.db")
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runMain(ctx, []string{"console", "--listen", "127.0.0.1:0", "--db", db, "--data", filepath.Join(dir, "data"),
			"--log-level", "warn", "--retain-media-logs", "730d", "--retain-analytics", "720h"}, &out, &errOut)
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("stoa console exited %d: %s", code, errOut.String())
			}
		}
	}
	defer stop()
	var base string
	for deadline := time.Now().Add(10 * time.Second); base == ""; time.Sleep(10 * time.Millisecond) {
		if m := regexp.MustCompile(`ready: url=(http://\S+)`).FindStringSubmatch(out.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("stoa console not ready: %s %s", out.String(), errOut.String())
		}
	}
	get := retentionOf(t, base)
	v := get()
	if days(v, "media_logs") != 730.0 || days(v, "analytics") != 30.0 || days(v, "access_log") != 730.0 || days(v, "audit_log") != 730.0 {
		t.Errorf("retention = %v", v)
	}
	// The purge at start runs beside the server; wait until the API reports it.
	for deadline := time.Now().Add(10 * time.Second); v["last_purge"] == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no purge reported: %v", v)
		}
		v = get()
	}
	stop()

	key, err := readKey(filepath.Join(dir, "data", "audit.key")) // in --data, not beside the database
	if err != nil {
		t.Fatal(err)
	}
	code, vout, verr := stoa(t, "audit", "verify", "--db", db, "--trusted-key", hex.EncodeToString(key.Public().(ed25519.PublicKey)))
	if code != 0 || !strings.HasPrefix(vout, "ok, ") {
		t.Fatalf("audit verify after purge: %d %q %q", code, vout, verr)
	}
	sdb, err := store.OpenNoMigrate(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	entries, err := audit.List(context.Background(), sdb, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var purge *audit.Entry
	for i := range entries {
		if entries[i].Action == console.PurgeAction {
			purge = &entries[i]
		}
	}
	if purge == nil || purge.Actor != "system" || !strings.Contains(string(purge.After), `"media_logs":0`) {
		t.Errorf("no retention purge in the audit log: %+v", entries)
	}
}

// TestRetentionDev checks that stoa dev accepts the maximum and passes the flags to its console.
func TestRetentionDev(t *testing.T) {
	d := startDev(t, "--retain-access-log", "730d", "--retain-media-logs", "90d")
	v := retentionOf(t, d.url+"/api/v1/")()
	if days(v, "media_logs") != 90.0 || days(v, "access_log") != 730.0 || days(v, "analytics") != 365.0 {
		t.Errorf("retention = %v", v)
	}
}
