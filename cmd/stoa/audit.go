package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stoa-rtc/stoa/internal/audit"
	"github.com/stoa-rtc/stoa/internal/store"
)

func auditCommand() *command {
	return &command{
		name:    "audit",
		summary: "check the console's tamper-evident audit log",
		subcommands: []*command{
			auditVerifyCommand(),
			auditSignHeadCommand(),
		},
	}
}

func auditVerifyCommand() *command {
	var (
		db      string
		trusted trustedKeys
	)
	return &command{
		name:    "verify",
		summary: "verify the audit log's hash chain and its signatures by the console's audit key",
		usage: `stoa audit verify --db PATH_OR_DSN [--trusted-key HEX]...

Reads the audit log directly from the console's database (a SQLite file, or a postgres:// DSN) without
changing it, and checks every entry's hash, the chain of hashes, and that the head of the chain and every
checkpoint are signed by a trusted key. The trusted key is the console's audit key: by default the public half
of audit.key beside a SQLite database (stoa dev keeps it there; stoa console keeps it in --data, and logs its
public half at start); with a PostgreSQL DSN, or another layout, give it as --trusted-key (64 hex digits,
repeatable). Prints "ok, N entries" and exits 0 if the log is intact; otherwise names the first entry that was
modified, deleted, inserted or reordered, or the signature that a trusted key did not make, and exits 1.
docs/audit.md says what a database writer can still do undetected.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&db, "db", "", "SQLite database file, or postgres:// DSN")
			fs.Var(&trusted, "trusted-key", "the console's audit public key in hex (default: from audit.key beside a SQLite database)")
		},
		run: func(ctx context.Context, args []string, env *cmdEnv) error {
			if err := checkAuditDB(args, env, &db); err != nil {
				return err
			}
			keys := []ed25519.PublicKey(trusted)
			if len(keys) == 0 {
				key, err := besideKey(db, "--trusted-key HEX, the console's audit public key")
				if err != nil {
					return err
				}
				keys = append(keys, key.Public().(ed25519.PublicKey))
			}
			d, err := store.OpenNoMigrate(ctx, db)
			if err != nil {
				return err
			}
			defer d.Close()
			rep, err := audit.Verify(ctx, d, keys...)
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

func auditSignHeadCommand() *command {
	var db, keyFile string
	return &command{
		name:    "sign-head",
		summary: "sign the head of an audit log written before signed heads",
		usage: `stoa audit sign-head --db PATH_OR_DSN [--key FILE]

For a log written before the console signed the head of the chain on every append (or after its audit key
was replaced): the console refuses to append to such a log. Verifies the log with the key in --key (default:
audit.key beside a SQLite database), refuses if anything but the head is wrong, and signs the head. Whoever
runs it vouches for the entries after the newest checkpoint, which nothing else signed: check them first.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&db, "db", "", "SQLite database file, or postgres:// DSN")
			fs.StringVar(&keyFile, "key", "", "the console's audit.key (default: beside a SQLite database)")
		},
		run: func(ctx context.Context, args []string, env *cmdEnv) error {
			if err := checkAuditDB(args, env, &db); err != nil {
				return err
			}
			var (
				key ed25519.PrivateKey
				err error
			)
			if keyFile != "" {
				key, err = readKey(keyFile)
			} else {
				key, err = besideKey(db, "--key FILE, the console's audit.key")
			}
			if err != nil {
				return err
			}
			d, err := store.OpenNoMigrate(ctx, db)
			if err != nil {
				return err
			}
			defer d.Close()
			l, err := audit.New(audit.Config{DB: d, Key: key})
			if err != nil {
				return err
			}
			if err := l.SignHead(ctx); err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "signed the head with %s\n", audit.KeyID(l.PublicKey()))
			return nil
		},
	}
}

// checkAuditDB parses a stoa audit command's flags and checks that its --db, which parsing sets, names a
// database.
func checkAuditDB(args []string, env *cmdEnv, db *string) error {
	if err := env.parseNoArgs(args); err != nil {
		return err
	}
	if *db == "" {
		return usagef("--db is required")
	}
	if !store.IsDSN(*db) {
		// Do not create an empty database where the operator mistyped a path.
		return requireFile(*db)
	}
	return nil
}

// besideKey reads the console's audit key from audit.key beside the SQLite database db; a PostgreSQL DSN has no
// such place, so the caller must pass instead.
func besideKey(db, instead string) (ed25519.PrivateKey, error) {
	if store.IsDSN(db) {
		return nil, usagef("a PostgreSQL database has no audit.key beside it: pass %s", instead)
	}
	path := filepath.Join(filepath.Dir(db), "audit.key")
	key, err := readKey(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, usagef("no audit key beside the database (%s): pass %s", path, instead)
	}
	return key, err
}

// trustedKeys is the repeatable --trusted-key flag: Ed25519 public keys in hex.
type trustedKeys []ed25519.PublicKey

func (k *trustedKeys) String() string {
	var s []string
	for _, p := range *k {
		s = append(s, hex.EncodeToString(p))
	}
	return strings.Join(s, ",")
}

func (k *trustedKeys) Set(s string) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return fmt.Errorf("want an Ed25519 public key: %d hex digits", 2*ed25519.PublicKeySize)
	}
	*k = append(*k, ed25519.PublicKey(b))
	return nil
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
