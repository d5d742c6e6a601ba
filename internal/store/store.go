// Package store opens the console's SQL database and keeps its schema up to date.
//
// A database is named by a "path or DSN": a postgres:// or postgresql:// URL opens PostgreSQL through pgx's
// database/sql driver; anything else is the path of a SQLite file, opened with the pure Go driver
// modernc.org/sqlite in WAL mode with foreign keys on, a busy timeout and IMMEDIATE transactions (so that
// writers queue on the database lock instead of failing when they upgrade a read lock). A new SQLite file is
// created with 0600 permissions.
//
// The schema is a numbered list of migrations (migrations/*.sql, embedded), each applied once in its own
// transaction and recorded in the schema_migrations table; opening an up-to-date database changes nothing.
// The two dialects share one SQL text: queries are written with ? placeholders and passed through
// [DB.Rebind]; times are stored as Unix microseconds in integer columns.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver
)

// Dialect is the SQL flavour of a database.
type Dialect int

const (
	SQLite Dialect = iota
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// busyTimeoutMillis is how long a SQLite connection waits for the database lock before failing.
const busyTimeoutMillis = 10000

// DB is an open database and its dialect. The embedded *sql.DB is safe for concurrent use.
type DB struct {
	*sql.DB
	Dialect Dialect
}

// IsDSN reports whether pathOrDSN names a PostgreSQL database rather than a SQLite file.
func IsDSN(pathOrDSN string) bool {
	return strings.HasPrefix(pathOrDSN, "postgres://") || strings.HasPrefix(pathOrDSN, "postgresql://")
}

// Open opens the database named by pathOrDSN and applies any pending migrations.
func Open(ctx context.Context, pathOrDSN string) (*DB, error) {
	db, err := OpenNoMigrate(ctx, pathOrDSN)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// OpenNoMigrate opens the database named by pathOrDSN without touching its schema, as a read-only tool
// such as "stoa audit verify" should.
func OpenNoMigrate(ctx context.Context, pathOrDSN string) (*DB, error) {
	if pathOrDSN == "" {
		return nil, errors.New("store: no database path or DSN")
	}
	var (
		sqldb   *sql.DB
		dialect Dialect
		err     error
	)
	if IsDSN(pathOrDSN) {
		dialect = Postgres
		sqldb, err = sql.Open("pgx", pathOrDSN)
	} else {
		dialect = SQLite
		sqldb, err = openSQLite(pathOrDSN)
	}
	if err != nil {
		return nil, err
	}
	if err := ping(ctx, sqldb); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("store: open %s database %s: %w", dialect, describe(pathOrDSN), err)
	}
	return &DB{DB: sqldb, Dialect: dialect}, nil
}

// ping opens a first connection. A new SQLite connection that finds another one switching the file to WAL gets
// SQLITE_BUSY without waiting for its busy timeout (SQLite does not wait there, to avoid deadlocks), so that
// case is retried for as long as the busy timeout.
func ping(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(busyTimeoutMillis * time.Millisecond)
	for {
		err := db.PingContext(ctx)
		var coded interface{ Code() int }
		if err == nil || !errors.As(err, &coded) || coded.Code()&0xff != sqliteBusy || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// sqliteBusy is SQLite's primary result code SQLITE_BUSY.
const sqliteBusy = 5

func openSQLite(path string) (*sql.DB, error) {
	if strings.HasPrefix(path, "file:") || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("store: SQLite path %q must be a plain file path", path)
	}
	// Create the file ourselves so that it gets 0600; SQLite gives its -wal and -shm files the same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	f.Close()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.Itoa(busyTimeoutMillis)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return db, nil
}

// describe names a database for error messages without its password.
func describe(pathOrDSN string) string {
	if !IsDSN(pathOrDSN) {
		return pathOrDSN
	}
	u, err := url.Parse(pathOrDSN)
	if err != nil {
		return "(unparsable DSN)"
	}
	u.User = nil
	u.RawQuery = ""
	return u.Redacted()
}

// Rebind rewrites the ? placeholders of query into the database's dialect ($1, $2, ... on PostgreSQL).
// Queries must not contain a literal question mark.
func (db *DB) Rebind(query string) string { return db.Dialect.Rebind(query) }

// Rebind rewrites the ? placeholders of query into d's placeholders.
func (d Dialect) Rebind(query string) string {
	if d != Postgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ForUpdate is the row-locking suffix for a SELECT inside a transaction: " FOR UPDATE" on PostgreSQL and
// empty on SQLite, whose IMMEDIATE transactions already hold the database's write lock.
func (db *DB) ForUpdate() string {
	if db.Dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// InTx runs fn in a transaction, committing if fn returns nil and rolling back otherwise.
func (db *DB) InTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}
