package main

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stoa-rtc/stoa/internal/audit"
	"github.com/stoa-rtc/stoa/internal/store"
	"github.com/stoa-rtc/stoa/internal/store/storetest"
)

func TestAuditVerify(t *testing.T) {
	for _, tg := range storetest.Targets() { // SQLite, and PostgreSQL when STOA_TEST_PG is set
		t.Run(tg.Name, func(t *testing.T) { testAuditVerify(t, tg.New(t)) })
	}
}

func testAuditVerify(t *testing.T, path string) {
	ctx := context.Background()
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := audit.New(audit.Config{DB: db, Key: ed25519.NewKeyFromSeed(make([]byte, 32)), KeyID: "test", CheckpointEvery: 5})
	if err != nil {
		t.Fatal(err)
	}
	for range 12 {
		if _, err := l.Append(ctx, audit.Record{Actor: "alice", Action: "project.update", Target: "project/1"}); err != nil {
			t.Fatal(err)
		}
	}

	code, out, errOut := stoa(t, "audit", "verify", "--db", path)
	if code != 0 || out != "ok, 12 entries\n" {
		t.Fatalf("honest log: %d %q %q", code, out, errOut)
	}

	if _, err := db.ExecContext(ctx, "UPDATE audit_log SET target = 'project/2' WHERE seq = 7"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = stoa(t, "audit", "verify", "--db", path)
	if code != 1 || !strings.Contains(errOut, "entry 7 was modified") {
		t.Fatalf("tampered log: %d %q %q", code, out, errOut)
	}
}

func TestAuditVerifyUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.db")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"audit", "--help"}, 0, "verify"},
		{[]string{"help", "audit", "verify"}, 0, "--db PATH_OR_DSN"},
		{[]string{"audit", "verify"}, 2, "--db is required"},
		{[]string{"audit", "verify", "--db", missing}, 1, "no such file"},
	} {
		code, out, errOut := stoa(t, tc.args...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("stoa %q = %d, %q %q; want %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("verify created %s", missing)
	}
}
