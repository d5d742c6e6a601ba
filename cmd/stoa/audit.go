package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/stoa-rtc/stoa/internal/audit"
	"github.com/stoa-rtc/stoa/internal/store"
)

func auditCommand() *command {
	return &command{
		name:    "audit",
		summary: "check the console's tamper-evident audit log",
		subcommands: []*command{
			auditVerifyCommand(),
		},
	}
}

func auditVerifyCommand() *command {
	var db string
	return &command{
		name:    "verify",
		summary: "verify the audit log's hash chain and signed checkpoints",
		usage: `stoa audit verify --db PATH_OR_DSN

Reads the audit log directly from the console's database (a SQLite file, or a postgres:// DSN) without
changing it, and checks every entry's hash, the chain of hashes, and the Ed25519 signature of every
checkpoint. Prints "ok, N entries" and exits 0 if the log is intact; otherwise names the first entry that
was modified, deleted, inserted or reordered, and exits 1.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&db, "db", "", "SQLite database file, or postgres:// DSN")
		},
		run: func(ctx context.Context, args []string, env *cmdEnv) error {
			if err := env.parseNoArgs(args); err != nil {
				return err
			}
			if db == "" {
				return usagef("--db is required")
			}
			if !store.IsDSN(db) {
				// Do not create an empty database where the operator mistyped a path.
				if err := requireFile(db); err != nil {
					return err
				}
			}
			d, err := store.OpenNoMigrate(ctx, db)
			if err != nil {
				return err
			}
			defer d.Close()
			rep, err := audit.Verify(ctx, d)
			if err != nil {
				return err
			}
			if rep.Problem != nil {
				return errors.New(rep.Problem.String())
			}
			fmt.Fprintf(env.stdout, "ok, %d entries\n", rep.Entries)
			return nil
		},
	}
}

// requireFile fails unless path is an existing regular file.
func requireFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a database file", path)
	}
	return nil
}
