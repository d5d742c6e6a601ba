// Package storetest runs a test against every database dialect the store supports: SQLite in a temporary
// directory always, and PostgreSQL when the STOA_TEST_PG environment variable holds a DSN
// (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable). Each PostgreSQL test gets a fresh schema,
// selected through search_path in the DSN and dropped when the test ends.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// EnvPG names the environment variable holding the PostgreSQL DSN for tests.
const EnvPG = "STOA_TEST_PG"

// Target is one database to test against.
type Target struct {
	Name string // "sqlite" or "postgres"
	// New returns the path or DSN of a fresh, empty database, removed when the test ends.
	New func(t testing.TB) string
}

// Targets returns SQLite and, when STOA_TEST_PG is set, PostgreSQL.
func Targets() []Target {
	ts := []Target{{Name: "sqlite", New: func(t testing.TB) string {
		return filepath.Join(t.TempDir(), "stoa.db")
	}}}
	if dsn := os.Getenv(EnvPG); dsn != "" {
		ts = append(ts, Target{Name: "postgres", New: func(t testing.TB) string { return freshSchema(t, dsn) }})
	}
	return ts
}

// Run runs fn as a subtest once per target.
func Run(t *testing.T, fn func(t *testing.T, pathOrDSN string)) {
	t.Helper()
	for _, tg := range Targets() {
		t.Run(tg.Name, func(t *testing.T) { fn(t, tg.New(t)) })
	}
}

func freshSchema(t testing.TB, dsn string) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	schema := "stoatest_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ExecContext(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("storetest: create schema: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("storetest: drop schema: %v", err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
