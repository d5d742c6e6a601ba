package main

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stoa-rtc/stoa/internal/audit"
	"github.com/stoa-rtc/stoa/internal/store"
	"github.com/stoa-rtc/stoa/internal/store/storetest"
)

// auditFixture is a database holding 12 audit entries, checkpointed every 5, signed with the key in audit.key
// beside a SQLite database as stoa dev keeps it.
type auditFixture struct {
	path string
	db   *store.DB
	key  ed25519.PrivateKey
	// args are the stoa audit verify arguments that trust the fixture's key: none beyond --db for SQLite,
	// --trusted-key for PostgreSQL, which has no file beside it.
	args []string
}

func newAuditFixture(t *testing.T, path string) *auditFixture {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &auditFixture{path: path, db: db, args: []string{"audit", "verify", "--db", path}}
	if store.IsDSN(path) {
		f.key = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
		f.args = append(f.args, "--trusted-key", hex.EncodeToString(f.key.Public().(ed25519.PublicKey)))
	} else if f.key, err = loadKey(filepath.Join(filepath.Dir(path), "audit.key")); err != nil {
		t.Fatal(err)
	}
	l, err := audit.New(audit.Config{DB: db, Key: f.key, CheckpointEvery: 5})
	if err != nil {
		t.Fatal(err)
	}
	for range 12 {
		if _, err := l.Append(ctx, audit.Record{Actor: "alice", Action: "project.update", Target: "project/1"}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *auditFixture) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := f.db.ExecContext(context.Background(), f.db.Rebind(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (f *auditFixture) entry(t *testing.T, seq uint64) audit.Entry {
	t.Helper()
	es, err := audit.List(context.Background(), f.db, seq, 1)
	if err != nil || len(es) != 1 {
		t.Fatalf("entry %d: %v %v", seq, es, err)
	}
	return es[0]
}

// rechain recomputes the hash of every entry from seq on, as someone who edited entry seq in the database
// would, and points the head at the new last hash.
func (f *auditFixture) rechain(t *testing.T, from uint64) {
	t.Helper()
	prev := f.entry(t, from-1).Hash
	for s := from; s <= 12; s++ {
		e := f.entry(t, s)
		e.PrevHash = prev
		e.Hash = e.ComputeHash()
		prev = e.Hash
		f.exec(t, "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", e.PrevHash[:], e.Hash[:], int64(s))
	}
	f.exec(t, "UPDATE audit_head SET hash = ?", prev[:])
}

// attackerCheckpoint signs a checkpoint of entry e with key, under keyID, in the layout docs/audit.md gives.
func attackerCheckpoint(key ed25519.PrivateKey, e audit.Entry, keyID string) []byte {
	var msg []byte
	for _, field := range [][]byte{
		[]byte("stoa.audit.checkpoint.v1"),
		binary.BigEndian.AppendUint64(nil, e.Seq),
		e.Hash[:],
		binary.BigEndian.AppendUint64(nil, uint64(e.Time.UnixMicro())),
		[]byte(keyID),
	} {
		msg = binary.BigEndian.AppendUint32(msg, uint32(len(field)))
		msg = append(msg, field...)
	}
	return ed25519.Sign(key, msg)
}

func TestAuditVerify(t *testing.T) {
	attacker := ed25519.NewKeyFromSeed([]byte("an attacker's key, not the one!!"))
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, f *auditFixture)
		want   string
	}{
		{"honest", func(*testing.T, *auditFixture) {}, ""},
		{"edit an entry", func(t *testing.T, f *auditFixture) {
			f.exec(t, "UPDATE audit_log SET target = 'project/2' WHERE seq = 7")
		}, "entry 7 was modified"},
		// Finding 5: an entry edited after the newest checkpoint, every later hash recomputed, used to pass.
		{"edit an entry and re-chain", func(t *testing.T, f *auditFixture) {
			f.exec(t, "UPDATE audit_log SET target = 'project/2' WHERE seq = 11")
			f.rechain(t, 11)
		}, "the head of the log (entry 12) is bad: its signature does not verify"},
		// Finding 5: verify trusted any key, and a key id said nothing about the key.
		{"edit, re-chain and forge a checkpoint under the real key id", func(t *testing.T, f *auditFixture) {
			f.exec(t, "UPDATE audit_log SET target = 'project/2' WHERE seq = 11")
			f.rechain(t, 11)
			e := f.entry(t, 12)
			id := audit.KeyID(f.key.Public().(ed25519.PublicKey))
			f.exec(t, "INSERT INTO audit_checkpoints (seq, hash, time_us, key_id, public_key, signature) VALUES (?, ?, ?, ?, ?, ?)",
				12, e.Hash[:], e.Time.UnixMicro(), id, []byte(attacker.Public().(ed25519.PublicKey)), attackerCheckpoint(attacker, e, id))
		}, "checkpoint of entry 12 is bad: its signature does not verify with trusted key"},
		{"a checkpoint by an untrusted key", func(t *testing.T, f *auditFixture) {
			e := f.entry(t, 12)
			id := audit.KeyID(attacker.Public().(ed25519.PublicKey))
			f.exec(t, "INSERT INTO audit_checkpoints (seq, hash, time_us, key_id, public_key, signature) VALUES (?, ?, ?, ?, ?, ?)",
				12, e.Hash[:], e.Time.UnixMicro(), id, []byte(attacker.Public().(ed25519.PublicKey)), attackerCheckpoint(attacker, e, id))
		}, "checkpoint of entry 12 is bad: signed by untrusted key"},
		// Finding 5: the latest entries deleted and the head pointed at the new last one.
		{"truncate the tail", func(t *testing.T, f *auditFixture) {
			e := f.entry(t, 11)
			f.exec(t, "DELETE FROM audit_log WHERE seq = 12")
			f.exec(t, "UPDATE audit_head SET seq = 11, hash = ?, time_us = ?", e.Hash[:], e.Time.UnixMicro())
		}, "the head of the log (entry 11) is bad"},
	} {
		for _, tg := range storetest.Targets() { // SQLite, and PostgreSQL when STOA_TEST_PG is set
			t.Run(tg.Name+"/"+strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
				f := newAuditFixture(t, tg.New(t))
				tc.tamper(t, f)
				code, out, errOut := stoa(t, f.args...)
				if tc.want == "" {
					if code != 0 || out != "ok, 12 entries\n" {
						t.Fatalf("honest log: %d %q %q", code, out, errOut)
					}
					return
				}
				if code != 1 || !strings.Contains(errOut, tc.want) {
					t.Fatalf("got %d %q %q, want exit 1 and %q", code, out, errOut, tc.want)
				}
			})
		}
	}
}

func TestAuditVerifyTrustedKey(t *testing.T) {
	f := newAuditFixture(t, storetest.Targets()[0].New(t))
	pubHex := hex.EncodeToString(f.key.Public().(ed25519.PublicKey))
	other := hex.EncodeToString(make([]byte, ed25519.PublicKeySize))
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--trusted-key", pubHex}, 0, "ok, 12 entries"},
		{[]string{"--trusted-key", other, "--trusted-key", pubHex}, 0, "ok, 12 entries"},
		{[]string{"--trusted-key", other}, 1, "checkpoint of entry 5 is bad: signed by untrusted key"},
		{[]string{"--trusted-key", "abcd"}, 2, "want an Ed25519 public key"},
	} {
		code, out, errOut := stoa(t, append([]string{"audit", "verify", "--db", f.path}, tc.args...)...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%q: %d %q %q; want %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
	// Without audit.key beside the database, verify asks for the key rather than trusting none.
	if err := os.Remove(filepath.Join(filepath.Dir(f.path), "audit.key")); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := stoa(t, "audit", "verify", "--db", f.path)
	if code != 2 || !strings.Contains(errOut, "no audit key beside the database") || !strings.Contains(errOut, "--trusted-key HEX") {
		t.Errorf("no key: %d %q %q", code, out, errOut)
	}
	code, out, errOut = stoa(t, "audit", "verify", "--db", "postgres://stoa@127.0.0.1:1/none")
	if code != 2 || !strings.Contains(errOut, "PostgreSQL database has no audit.key beside it: pass --trusted-key") {
		t.Errorf("DSN without key: %d %q %q", code, out, errOut)
	}
}

func TestAuditSignHead(t *testing.T) {
	f := newAuditFixture(t, storetest.Targets()[0].New(t))
	// A head as written before signed heads.
	f.exec(t, "UPDATE audit_head SET key_id = '', signature = NULL")
	if code, _, errOut := stoa(t, f.args...); code != 1 || !strings.Contains(errOut, "is not signed") {
		t.Fatalf("unsigned head: %d %q", code, errOut)
	}
	code, out, errOut := stoa(t, "audit", "sign-head", "--db", f.path)
	if code != 0 || !strings.HasPrefix(out, "signed the head with console-") {
		t.Fatalf("sign-head: %d %q %q", code, out, errOut)
	}
	if code, out, errOut := stoa(t, f.args...); code != 0 || out != "ok, 12 entries\n" {
		t.Fatalf("after sign-head: %d %q %q", code, out, errOut)
	}
	// It does not bless a log modified elsewhere than at its head.
	f.exec(t, "UPDATE audit_log SET target = 'project/2' WHERE seq = 3")
	f.exec(t, "UPDATE audit_head SET signature = NULL")
	if code, _, errOut := stoa(t, "audit", "sign-head", "--db", f.path); code != 1 || !strings.Contains(errOut, "entry 3 was modified") {
		t.Fatalf("sign-head of a modified log: %d %q", code, errOut)
	}
}

func TestAuditVerifyUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.db")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"audit", "--help"}, 0, "sign-head"},
		{[]string{"help", "audit", "verify"}, 0, "--db PATH_OR_DSN [--trusted-key HEX]"},
		{[]string{"audit", "verify"}, 2, "--db is required"},
		{[]string{"audit", "verify", "--db", missing}, 1, "no such file"},
		{[]string{"audit", "sign-head", "--db", missing}, 1, "no such file"},
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

// FuzzTrustedKeyFlag: --trusted-key accepts exactly the hex of a 32-byte key, and keeps those bytes.
func FuzzTrustedKeyFlag(f *testing.F) {
	f.Add(strings.Repeat("ab", ed25519.PublicKeySize))
	f.Add("abcd")
	f.Add(strings.Repeat("zz", ed25519.PublicKeySize))
	f.Fuzz(func(t *testing.T, s string) {
		var k trustedKeys
		err := k.Set(s)
		b, herr := hex.DecodeString(s)
		if valid := herr == nil && len(b) == ed25519.PublicKeySize; valid != (err == nil) {
			t.Fatalf("Set(%q) = %v", s, err)
		}
		if err == nil && (len(k) != 1 || !k[0].Equal(ed25519.PublicKey(b))) {
			t.Fatalf("Set(%q) kept %x", s, k)
		}
	})
}
