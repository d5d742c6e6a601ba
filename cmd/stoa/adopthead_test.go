package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stoa-rtc/stoa/internal/audit"
	"github.com/stoa-rtc/stoa/internal/store"
)

// TestDevAdoptsUnsignedHead: a data directory from before signed audit heads keeps a working console under stoa
// dev (adoptHead signs the head once at start), while a production console leaves the head for the operator to
// check and sign, and its audited changes fail meanwhile.
func TestDevAdoptsUnsignedHead(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "console.db")
	// openLog opens the database and the audit log as the console does, with its key in dir.
	openLog := func() (*store.DB, *audit.Log) {
		db, err := store.Open(ctx, dbPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		key, err := loadKey(filepath.Join(dir, "audit.key"))
		if err != nil {
			t.Fatal(err)
		}
		al, err := audit.New(audit.Config{DB: db, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		return db, al
	}
	unsignHead := func() {
		db, al := openLog()
		if _, err := al.Append(ctx, audit.Record{Actor: "a@example.com", Action: "project.create", Target: "project:x"}); err != nil {
			t.Fatal(err)
		}
		// As a database written before migration 0007 has it: no key id, no signature.
		if _, err := db.ExecContext(ctx, "UPDATE audit_head SET key_id = '', signature = NULL"); err != nil {
			t.Fatal(err)
		}
		if err := al.CheckHead(ctx); !errors.Is(err, audit.ErrUntrustedHead) {
			t.Fatalf("unsigned head: CheckHead = %v, want ErrUntrustedHead", err)
		}
	}
	open := func(adopt bool) error {
		_, closeConsole, err := openConsole(ctx, consoleOptions{db: dbPath, dataDir: dir, adoptHead: adopt,
			log: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		closeConsole()
		_, al := openLog()
		return al.CheckHead(ctx)
	}
	unsignHead()
	if err := open(false); !errors.Is(err, audit.ErrUntrustedHead) {
		t.Errorf("a production console signed the head by itself: CheckHead after start = %v", err)
	}
	if err := open(true); err != nil {
		t.Errorf("stoa dev left the head unsigned: %v", err)
	}
}
