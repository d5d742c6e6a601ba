package audit_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/audit"
	"github.com/stoa-rtc/stoa/internal/store"
	"github.com/stoa-rtc/stoa/internal/store/storetest"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// clock is a fake time source that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

func testKey(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

func open(t testing.TB, dsn string, every uint64, now func() time.Time) (*store.DB, *audit.Log) {
	t.Helper()
	db, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := audit.New(audit.Config{DB: db, Key: testKey(1), CheckpointEvery: every, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return db, l
}

func appendN(t testing.TB, l *audit.Log, n int) {
	t.Helper()
	for i := range n {
		_, err := l.Append(context.Background(), audit.Record{
			Actor: "alice@example.com", Action: "project.update", Target: fmt.Sprintf("project/%d", i),
			Before: map[string]any{"name": fmt.Sprintf("p%d", i)}, After: map[string]any{"name": fmt.Sprintf("p%d-new", i)},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// mustVerify verifies the log trusting the key of the logs that open returns.
func mustVerify(t *testing.T, db *store.DB) audit.Report {
	t.Helper()
	rep, err := audit.Verify(context.Background(), db, pub(testKey(1)))
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func exec(t *testing.T, db *store.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), db.Rebind(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func entry(t *testing.T, db *store.DB, seq uint64) audit.Entry {
	t.Helper()
	es, err := audit.List(context.Background(), db, seq, 1)
	if err != nil || len(es) != 1 || es[0].Seq != seq {
		t.Fatalf("entry %d: %v %v", seq, es, err)
	}
	return es[0]
}

func insert(t *testing.T, db *store.DB, e audit.Entry) {
	t.Helper()
	exec(t, db, `INSERT INTO audit_log (seq, time_us, actor, action, target, before_json, after_json, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		int64(e.Seq), e.Time.UnixMicro(), e.Actor, e.Action, e.Target, string(e.Before), string(e.After), e.PrevHash[:], e.Hash[:])
}

func TestHonestLog(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		db, l := open(t, dsn, 3, nil)
		if rep := mustVerify(t, db); !rep.OK() || rep.Entries != 0 {
			t.Fatalf("empty log: %+v", rep)
		}
		appendN(t, l, 10)
		rep := mustVerify(t, db)
		if !rep.OK() || rep.Entries != 10 || rep.First != 1 || rep.Last != 10 || rep.Checkpoints != 3 {
			t.Fatalf("report = %+v %v", rep, rep.Problem)
		}
		if len(rep.KeyIDs) != 1 || rep.KeyIDs[0] != audit.KeyID(pub(testKey(1))) {
			t.Errorf("key ids = %q", rep.KeyIDs)
		}
		if _, ok, err := l.Checkpoint(context.Background()); err != nil || !ok {
			t.Fatalf("checkpoint: %v %v", ok, err)
		}
		if rep := mustVerify(t, db); !rep.OK() || rep.Checkpoints != 4 {
			t.Fatalf("after checkpoint: %+v", rep)
		}
		rep, err := audit.Verify(context.Background(), db, pub(testKey(2)))
		if err != nil || rep.OK() || rep.Problem.Kind != audit.BadCheckpoint || rep.Problem.Seq != 3 {
			t.Errorf("untrusted key: %+v %v", rep.Problem, err)
		}
		rep, err = audit.Verify(context.Background(), db, pub(testKey(2)), pub(testKey(1)))
		if err != nil || !rep.OK() {
			t.Errorf("trusted keys: %+v %v", rep.Problem, err)
		}
		if _, err := audit.Verify(context.Background(), db); err == nil || !strings.Contains(err.Error(), "no trusted key") {
			t.Errorf("no trusted key: %v", err)
		}
		if _, err := audit.Verify(context.Background(), db, pub(testKey(1))[:31]); err == nil {
			t.Error("a short trusted key was accepted")
		}
	})
}

func TestRedaction(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		db, l := open(t, dsn, 0, nil)
		e, err := l.Append(context.Background(), audit.Record{
			Actor: "alice", Action: "project.create", Target: "project/1",
			After: map[string]any{
				"name": "demo", "app_certificate": "c0ffee-cert", "nested": map[string]any{"Password": "hunter2"},
				"list": []any{map[string]any{"apiKey": "k-secret-1", "count": 3}}, "TOTP-Seed": "seed-x",
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		stored := entry(t, db, e.Seq)
		for _, leak := range []string{"c0ffee", "hunter2", "k-secret-1", "seed-x"} {
			if strings.Contains(string(stored.After), leak) {
				t.Errorf("after %s holds %q", stored.After, leak)
			}
		}
		if !strings.Contains(string(stored.After), `"name":"demo"`) || !strings.Contains(string(stored.After), `"count":3`) {
			t.Errorf("after %s lost harmless fields", stored.After)
		}
		if string(stored.Before) != "null" {
			t.Errorf("before = %s, want null", stored.Before)
		}
	})
}

// forge signs (seq, hash, time, keyID) as a checkpoint or head with an attacker's key, as someone who can write
// the database but does not hold the console's audit key would.
func forge(domain string, seq uint64, h audit.Hash, tm time.Time, keyID string) []byte {
	return ed25519.Sign(testKey(66), audit.SignedMessage(domain, seq, h, tm, keyID))
}

// rechain makes the entries from seq on consistent again after an edit, as an attacker who can write the
// database would, and returns the new hash of the last entry.
func rechain(t *testing.T, db *store.DB, from, to uint64) audit.Hash {
	t.Helper()
	prev := entry(t, db, from-1).Hash
	for s := from; s <= to; s++ {
		e := entry(t, db, s)
		e.PrevHash = prev
		e.Hash = e.ComputeHash()
		prev = e.Hash
		exec(t, db, "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", e.PrevHash[:], e.Hash[:], int64(s))
	}
	return prev
}

// realKeyID is the id of the log's key, which an attacker can copy from any checkpoint.
var realKeyID = audit.KeyID(pub(testKey(1)))

func TestTampering(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, db *store.DB)
		seq    uint64
		kind   audit.Kind
	}{
		{"edit actor", func(t *testing.T, db *store.DB) {
			exec(t, db, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 4")
		}, 4, audit.Modified},
		{"edit after", func(t *testing.T, db *store.DB) {
			exec(t, db, `UPDATE audit_log SET after_json = '{"name":"evil"}' WHERE seq = 9`)
		}, 9, audit.Modified},
		{"edit time", func(t *testing.T, db *store.DB) {
			exec(t, db, "UPDATE audit_log SET time_us = time_us + 1 WHERE seq = 6")
		}, 6, audit.Modified},
		{"edit hash", func(t *testing.T, db *store.DB) {
			exec(t, db, "UPDATE audit_log SET hash = prev_hash WHERE seq = 2")
		}, 2, audit.Modified},
		{"rewrite chain from 3 with recomputed hashes", func(t *testing.T, db *store.DB) {
			prev := entry(t, db, 2).Hash
			for s := uint64(3); s <= 10; s++ {
				e := entry(t, db, s)
				e.Actor, e.PrevHash = "mallory", prev
				e.Hash = e.ComputeHash()
				prev = e.Hash
				exec(t, db, "UPDATE audit_log SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?", e.Actor, e.PrevHash[:], e.Hash[:], int64(s))
			}
			exec(t, db, "UPDATE audit_head SET hash = ?", prev[:])
		}, 4, audit.Modified}, // the checkpoint at 4 no longer matches
		{"delete middle", func(t *testing.T, db *store.DB) {
			exec(t, db, "DELETE FROM audit_log WHERE seq = 5")
		}, 5, audit.Deleted},
		{"delete first", func(t *testing.T, db *store.DB) {
			exec(t, db, "DELETE FROM audit_log WHERE seq = 1")
		}, 1, audit.Deleted},
		{"delete up to a periodic checkpoint, as if purged", func(t *testing.T, db *store.DB) {
			exec(t, db, "DELETE FROM audit_log WHERE seq <= 4")
		}, 1, audit.Deleted},
		{"delete last", func(t *testing.T, db *store.DB) {
			exec(t, db, "DELETE FROM audit_log WHERE seq = 10")
		}, 10, audit.Deleted},
		{"delete the tail and fix the head", func(t *testing.T, db *store.DB) {
			h := entry(t, db, 7).Hash
			exec(t, db, "DELETE FROM audit_log WHERE seq >= 8")
			exec(t, db, "UPDATE audit_head SET seq = 7, hash = ?", h[:])
		}, 8, audit.Deleted}, // caught by the checkpoint of entry 8
		{"insert duplicate seq", func(t *testing.T, db *store.DB) {
			e := entry(t, db, 3)
			e.Actor = "mallory"
			e.Hash = e.ComputeHash()
			insert(t, db, e)
		}, 3, audit.Inserted},
		{"insert at the end", func(t *testing.T, db *store.DB) {
			last := entry(t, db, 10)
			e := last
			e.Seq, e.PrevHash, e.Actor = 11, last.Hash, "mallory"
			e.Hash = e.ComputeHash()
			insert(t, db, e)
		}, 11, audit.Inserted},
		{"insert unlinked and fix the head", func(t *testing.T, db *store.DB) {
			e := entry(t, db, 10)
			e.Seq, e.PrevHash, e.Actor = 11, audit.Hash{1}, "mallory"
			e.Hash = e.ComputeHash()
			insert(t, db, e)
			exec(t, db, "UPDATE audit_head SET seq = 11, hash = ?", e.Hash[:])
		}, 11, audit.Inserted},
		{"swap seq", func(t *testing.T, db *store.DB) {
			exec(t, db, "UPDATE audit_log SET seq = -1 WHERE seq = 4")
			exec(t, db, "UPDATE audit_log SET seq = 4 WHERE seq = 7")
			exec(t, db, "UPDATE audit_log SET seq = 7 WHERE seq = -1")
		}, 4, audit.Reordered},
		{"forge checkpoint signature", func(t *testing.T, db *store.DB) {
			exec(t, db, "UPDATE audit_checkpoints SET signature = ? WHERE seq = 4", make([]byte, ed25519.SignatureSize))
		}, 4, audit.BadCheckpoint},
		// Finding 5: checkpoints only every N entries let an edit after the newest one, re-chained, pass.
		{"edit after the newest checkpoint, re-chain and fix the head", func(t *testing.T, db *store.DB) {
			exec(t, db, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 9")
			h := rechain(t, db, 9, 10)
			exec(t, db, "UPDATE audit_head SET hash = ?", h[:])
		}, 10, audit.BadHead},
		// Finding 5: verify trusted any key and took the key id on trust.
		{"rewrite everything and forge checkpoints and head under the real key id", func(t *testing.T, db *store.DB) {
			exec(t, db, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
			h := rechain(t, db, 2, 10)
			exec(t, db, "DELETE FROM audit_checkpoints")
			for _, s := range []uint64{4, 8} {
				e := entry(t, db, s)
				exec(t, db, "INSERT INTO audit_checkpoints (seq, hash, time_us, key_id, public_key, signature) VALUES (?, ?, ?, ?, ?, ?)",
					int64(s), e.Hash[:], e.Time.UnixMicro(), realKeyID, []byte(pub(testKey(66))), forge("stoa.audit.checkpoint.v1", s, e.Hash, e.Time, realKeyID))
			}
			last := entry(t, db, 10)
			exec(t, db, "UPDATE audit_head SET hash = ?, signature = ?", h[:], forge("stoa.audit.head.v1", 10, h, last.Time, realKeyID))
		}, 4, audit.BadCheckpoint},
		{"re-sign the head with another key under its own id", func(t *testing.T, db *store.DB) {
			last := entry(t, db, 10)
			id := audit.KeyID(pub(testKey(66)))
			exec(t, db, "UPDATE audit_head SET key_id = ?, signature = ?", id, forge("stoa.audit.head.v1", 10, last.Hash, last.Time, id))
		}, 10, audit.BadHead},
		{"corrupt the head", func(t *testing.T, db *store.DB) {
			exec(t, db, "UPDATE audit_head SET hash = ?", []byte("short"))
		}, 0, audit.BadHead},
		{"strip the head signature", func(t *testing.T, db *store.DB) {
			exec(t, db, "UPDATE audit_head SET signature = NULL")
		}, 10, audit.BadHead},
		{"pass a checkpoint off as the head", func(t *testing.T, db *store.DB) {
			exec(t, db, "DELETE FROM audit_log WHERE seq > 8")
			exec(t, db, `UPDATE audit_head SET seq = 8, hash = (SELECT hash FROM audit_checkpoints WHERE seq = 8),
				time_us = (SELECT time_us FROM audit_checkpoints WHERE seq = 8), signature = (SELECT signature FROM audit_checkpoints WHERE seq = 8)`)
		}, 8, audit.BadHead},
		// Finding 5: truncating the tail, head included, is caught by the head's signature.
		{"delete the tail after the newest checkpoint and fix the head", func(t *testing.T, db *store.DB) {
			e := entry(t, db, 9)
			exec(t, db, "DELETE FROM audit_log WHERE seq = 10")
			exec(t, db, "UPDATE audit_head SET seq = 9, hash = ?, time_us = ?", e.Hash[:], e.Time.UnixMicro())
		}, 9, audit.BadHead},
	}
	for _, tg := range storetest.Targets() {
		for _, tc := range cases {
			t.Run(tg.Name+"/"+strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
				db, l := open(t, tg.New(t), 4, nil)
				appendN(t, l, 10)
				if rep := mustVerify(t, db); !rep.OK() {
					t.Fatalf("before tampering: %v", rep.Problem)
				}
				tc.tamper(t, db)
				rep := mustVerify(t, db)
				if rep.OK() {
					t.Fatalf("tampering not detected: %+v", rep)
				}
				if rep.Problem.Seq != tc.seq || rep.Problem.Kind != tc.kind {
					t.Errorf("problem = %v; want entry %d %v", rep.Problem, tc.seq, tc.kind)
				}
			})
		}
	}
}

// Finding 5: a log extended on top of a head the console did not sign would sign whatever the database holds.
func TestAppendNeedsSignedHead(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db, l := open(t, dsn, 4, nil)
		appendN(t, l, 6)
		exec(t, db, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 6")
		h := rechain(t, db, 6, 6)
		exec(t, db, "UPDATE audit_head SET hash = ?", h[:])
		if err := l.CheckHead(ctx); !errors.Is(err, audit.ErrUntrustedHead) {
			t.Fatalf("CheckHead of a forged head: %v", err)
		}
		_, err := l.Append(ctx, audit.Record{Actor: "alice", Action: "project.update"})
		if !errors.Is(err, audit.ErrUntrustedHead) {
			t.Fatalf("append on a forged head: %v", err)
		}
		if _, _, err := l.Checkpoint(ctx); !errors.Is(err, audit.ErrUntrustedHead) {
			t.Fatalf("checkpoint of a forged head: %v", err)
		}
		if _, err := l.Purge(ctx, time.Now(), "system"); err == nil {
			t.Fatal("purge of a log with a forged head")
		}
		if rep := mustVerify(t, db); rep.OK() || rep.Problem.Kind != audit.BadHead || rep.Problem.Seq != 6 {
			t.Fatalf("verify: %v", rep.Problem)
		}
		if err := l.SignHead(ctx); err != nil {
			t.Fatal(err) // whoever signs vouches for entries after the newest checkpoint: the limit docs/audit.md states
		}
		if err := l.CheckHead(ctx); err != nil {
			t.Fatalf("CheckHead after SignHead: %v", err)
		}
		appendN(t, l, 1)
		if rep := mustVerify(t, db); !rep.OK() || rep.Entries != 7 {
			t.Fatalf("after SignHead: %+v %v", rep, rep.Problem)
		}
		// SignHead refuses a log broken anywhere but at its head.
		exec(t, db, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
		if err := l.SignHead(ctx); err == nil || !strings.Contains(err.Error(), "entry 2 was modified") {
			t.Fatalf("SignHead of a modified log: %v", err)
		}
	})
}

// TestRollbackToSignedHead pins the limit docs/audit.md states: someone who kept an earlier signed head can
// cut the log back to it, and nothing in the database tells.
func TestRollbackToSignedHead(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		db, l := open(t, dsn, 4, nil)
		appendN(t, l, 6)
		var (
			seq, timeUS int64
			hash, sig   []byte
		)
		if err := db.QueryRow("SELECT seq, hash, time_us, signature FROM audit_head").Scan(&seq, &hash, &timeUS, &sig); err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 3)
		exec(t, db, "DELETE FROM audit_log WHERE seq > 6")
		exec(t, db, "DELETE FROM audit_checkpoints WHERE seq > 6")
		exec(t, db, "UPDATE audit_head SET seq = ?, hash = ?, time_us = ?, signature = ?", seq, hash, timeUS, sig)
		if rep := mustVerify(t, db); !rep.OK() || rep.Last != 6 {
			t.Fatalf("rollback: %+v %v", rep, rep.Problem)
		}
	})
}

func TestOrganisationStored(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		db, l := open(t, dsn, 0, nil)
		for _, org := range []int64{7, 0} {
			if _, err := l.Append(context.Background(), audit.Record{Actor: "a", Action: "b", Organisation: org}); err != nil {
				t.Fatal(err)
			}
		}
		var n7, nNull int
		if err := db.QueryRow("SELECT COUNT(CASE WHEN organisation_id = 7 THEN 1 END), COUNT(CASE WHEN organisation_id IS NULL THEN 1 END) FROM audit_log").Scan(&n7, &nNull); err != nil {
			t.Fatal(err)
		}
		if n7 != 1 || nNull != 1 {
			t.Errorf("organisation 7: %d entries, none: %d", n7, nNull)
		}
	})
}

func TestConcurrentAppenders(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		// Two Logs on two connection pools stand for two processes.
		db1, l1 := open(t, dsn, 7, nil)
		_, l2 := open(t, dsn, 7, nil)
		const workers, each = 4, 15
		var wg sync.WaitGroup
		errs := make(chan error, 2*workers)
		for _, l := range []*audit.Log{l1, l2} {
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						if _, err := l.Append(context.Background(), audit.Record{Actor: "w", Action: "test", Target: fmt.Sprint(w, "/", i)}); err != nil {
							errs <- err
							return
						}
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		rep := mustVerify(t, db1)
		if n := 2 * workers * each; !rep.OK() || rep.Entries != n || rep.Last != uint64(n) || rep.Checkpoints != n/7 {
			t.Fatalf("report = %+v, problem %v", rep, rep.Problem)
		}
	})
}

func TestPurge(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clk := &clock{}
		db, l := open(t, dsn, 4, clk.Now)
		for i := range 10 { // entry i+1 at t0 + i hours
			clk.Set(t0.Add(time.Duration(i) * time.Hour))
			appendN(t, l, 1)
		}
		clk.Set(t0.Add(24 * time.Hour))
		cutoff := t0.Add(4*time.Hour + time.Minute) // entries 1..5 are older
		res, err := l.Purge(ctx, cutoff, "system")
		if err != nil {
			t.Fatal(err)
		}
		if res.Deleted != 5 || res.ThroughSeq != 5 || res.Entry.Seq != 11 || res.Entry.Action != "audit.purge" {
			t.Fatalf("purge = %+v", res)
		}
		es, err := audit.List(ctx, db, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 6 || es[0].Seq != 6 {
			t.Fatalf("remaining entries: %d, first %d", len(es), es[0].Seq)
		}
		for _, e := range es {
			if e.Time.Before(cutoff) {
				t.Errorf("entry %d at %v survived the cutoff %v", e.Seq, e.Time, cutoff)
			}
		}
		rep := mustVerify(t, db)
		if !rep.OK() || rep.Entries != 6 || rep.First != 6 || rep.Anchor != 5 {
			t.Fatalf("after purge: %+v %v", rep, rep.Problem)
		}
		if !strings.Contains(string(res.Entry.After), `"deleted":5`) {
			t.Errorf("purge entry after = %s", res.Entry.After)
		}

		// Nothing older: deletes nothing, still audited and verifiable.
		res, err = l.Purge(ctx, cutoff, "system")
		if err != nil || res.Deleted != 0 || res.Entry.Seq != 12 {
			t.Fatalf("second purge = %+v, %v", res, err)
		}
		if rep := mustVerify(t, db); !rep.OK() || rep.Entries != 7 {
			t.Fatalf("after second purge: %+v %v", rep, rep.Problem)
		}

		if _, err := l.Append(ctx, audit.Record{Actor: "mallory", Action: audit.PurgeAction}); err == nil {
			t.Error("Append accepted the reserved purge action")
		}

		// Deleting the first remaining entry is still caught after a purge.
		exec(t, db, "DELETE FROM audit_log WHERE seq = 6")
		if rep := mustVerify(t, db); rep.OK() || rep.Problem.Seq != 6 || rep.Problem.Kind != audit.Deleted {
			t.Fatalf("delete after purge: %v", rep.Problem)
		}
		// A log that does not verify is not purged: that would destroy the evidence.
		if _, err := l.Purge(ctx, t0.Add(30*time.Hour), "system"); err == nil || !strings.Contains(err.Error(), "entry 6 was deleted") {
			t.Fatalf("purge of a tampered log: %v", err)
		}
	})
}

func TestNewRejectsBadConfig(t *testing.T) {
	db, _ := open(t, storetest.Targets()[0].New(t), 0, nil)
	for i, c := range []audit.Config{
		{Key: testKey(1)},
		{DB: db, Key: testKey(1)[:10]},
		{DB: db},
	} {
		if _, err := audit.New(c); err == nil || !strings.HasPrefix(err.Error(), "audit: ") {
			t.Errorf("config %d: %v", i, err)
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	for _, tg := range storetest.Targets() {
		b.Run(tg.Name, func(b *testing.B) {
			_, l := open(b, tg.New(b), 0, nil)
			r := audit.Record{Actor: "alice@example.com", Action: "project.update", Target: "project/1",
				Before: map[string]any{"name": "a"}, After: map[string]any{"name": "b"}}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := l.Append(context.Background(), r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
