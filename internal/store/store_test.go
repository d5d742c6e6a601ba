package store_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/store"
	"github.com/stoa-rtc/stoa/internal/store/storetest"
)

func TestMigrateAndReopen(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		for range 2 { // the second open must find everything applied and change nothing
			db, err := store.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			checkSchema(t, db)
			db.Close()
		}
	})
}

// checkSchema checks that every migration was applied exactly once: the version is the last one, each is
// recorded once, the one-row tables have one row, and the tables exist.
func checkSchema(t *testing.T, db *store.DB) {
	t.Helper()
	ctx := context.Background()
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	v, err := db.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v != len(ms) {
		t.Errorf("version = %d, want %d", v, len(ms))
	}
	var n, distinct int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*), COUNT(DISTINCT version) FROM schema_migrations").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || distinct != len(ms) {
		t.Errorf("schema_migrations has %d rows of %d versions, want %d once each", n, distinct, len(ms))
	}
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM audit_head").Scan(&n); err != nil || n != 1 {
		t.Errorf("audit_head rows = %d, %v; want 1", n, err)
	}
	for _, table := range []string{"accounts", "organisations", "memberships", "projects", "media_events", "access_log", "audit_log", "audit_checkpoints"} {
		if _, err := db.ExecContext(ctx, "SELECT COUNT(*) FROM "+table); err != nil {
			t.Errorf("table %s: %v", table, err)
		}
	}
}

// Four processes open a new database at once: one applies the migrations, the others wait for it, and the result
// is the schema of one migration run.
func TestConcurrentMigrate(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Go(func() {
				db, err := store.Open(context.Background(), dsn)
				if err == nil {
					db.Close()
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		db, err := store.OpenNoMigrate(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		checkSchema(t, db)
	})
}

func TestSQLiteFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	var mode string
	if err := db.QueryRowContext(context.Background(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var fk int
	if err := db.QueryRowContext(context.Background(), "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d, %v; want 1", fk, err)
	}
}

func TestOpenErrorHidesPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := store.Open(ctx, "postgres://user:hunter2@127.0.0.1:1/db?sslmode=disable&password=hunter3")
	if err == nil {
		t.Fatal("open of a closed port succeeded")
	}
	if strings.Contains(err.Error(), "hunter") || !strings.HasPrefix(err.Error(), "store: ") {
		t.Errorf("error %q leaks the password or lacks the prefix", err)
	}
}

func TestRebind(t *testing.T) {
	q := "SELECT a FROM t WHERE b = ? AND c = ?"
	if got := store.SQLite.Rebind(q); got != q {
		t.Errorf("sqlite rebind = %q", got)
	}
	if got, want := store.Postgres.Rebind(q), "SELECT a FROM t WHERE b = $1 AND c = $2"; got != want {
		t.Errorf("postgres rebind = %q, want %q", got, want)
	}
}

func TestRetentionValidate(t *testing.T) {
	day := 24 * time.Hour
	if err := store.DefaultRetention().Validate(); err != nil {
		t.Errorf("default: %v", err)
	}
	r := store.DefaultRetention()
	r.AuditLog = store.MaxRetention
	if err := r.Validate(); err != nil {
		t.Errorf("exactly two years refused: %v", err)
	}
	r.AuditLog = 731 * day
	r.MediaLogs = 3 * 365 * day
	err := r.Validate()
	if err == nil {
		t.Fatal("retention above two years accepted")
	}
	for _, want := range []string{"store: ", "audit_log is 731 days", "media_logs is 1095 days", "maximum is 730 days"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "analytics") {
		t.Errorf("error %q names a valid category", err)
	}
	r = store.DefaultRetention()
	r.Analytics = 0
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "analytics must be positive") {
		t.Errorf("zero retention: %v", err)
	}
}
