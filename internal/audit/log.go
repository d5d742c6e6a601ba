// Package audit implements the console's tamper-evident, append-only audit log, stored in SQL through
// internal/store.
//
// Every administrative change is one [Entry]: who (actor), what (action), on what (target), when, and the
// state before and after as JSON. Entries form a hash chain: each holds the SHA-256 of the previous entry's
// canonical encoding ([Entry.Encode]), so editing, deleting, inserting or reordering an entry breaks the
// chain at that entry, and [Verify] names the first entry where it breaks and how. Every append signs the
// head of the chain (the last entry's seq and hash) with the console's Ed25519 audit key, so that a chain
// rewritten from some entry on with recomputed hashes, or cut short, no longer matches a head the key signed.
// Periodically, and before every purge, the log also writes a checkpoint, the same statement about an entry
// kept for good: checkpoints anchor the chain after old entries are purged ([Log.Purge]). [Verify] accepts
// signatures only by the keys it is told to trust. What a database writer can still do undetected is written
// down in docs/audit.md ("Threat model").
//
// Callers must never put secrets (passwords, tokens, App Certificates, keys, TOTP seeds) in Before or After.
// As a second line of defence the log replaces the values of well-known secret keys with [Redacted].
//
// The byte layout of entries and checkpoints is documented in docs/audit.md.
package audit

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/stoa-rtc/stoa/internal/store"
)

// PurgeAction is the action of the entries that record purges; their After holds {"cutoff", "deleted",
// "through_seq"}. [Verify] accepts a log that starts after entry 1 only if such an entry deleted up to the
// checkpoint that anchors it. Append refuses it.
const PurgeAction = "audit.purge"

// DefaultCheckpointEvery is how many entries apart the log writes checkpoints unless configured otherwise.
const DefaultCheckpointEvery = 1000

// Config configures a [Log].
type Config struct {
	// DB is the database holding the audit tables (migrated by store.Open).
	DB *store.DB
	// Key signs the head and checkpoints: the console's Ed25519 audit key, named in them by [KeyID] of its
	// public half. The log appends only to a head this key signed. It never appears in errors or logs.
	Key ed25519.PrivateKey
	// CheckpointEvery writes a checkpoint after every entry whose seq is a multiple of it; 0 means
	// DefaultCheckpointEvery.
	CheckpointEvery uint64
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Log appends to the audit log. It is safe for concurrent use, and several Logs, in one process or many,
// may append to the same database: appends are serialised by the database.
type Log struct {
	db    *store.DB
	key   ed25519.PrivateKey
	keyID string
	ring  keyring // the key's public half: the head the log appends to must be signed by it
	every uint64
	now   func() time.Time
}

// New returns a Log for c.
func New(c Config) (*Log, error) {
	if c.DB == nil {
		return nil, errors.New("audit: no database")
	}
	if len(c.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("audit: the audit key is not an Ed25519 private key")
	}
	pub := c.Key.Public().(ed25519.PublicKey)
	l := &Log{db: c.DB, key: c.Key, keyID: KeyID(pub), ring: keyring{KeyID(pub): pub}, every: c.CheckpointEvery, now: c.Now}
	if l.every == 0 {
		l.every = DefaultCheckpointEvery
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l, nil
}

// PublicKey returns the public half of the log's key: what [Verify] must trust.
func (l *Log) PublicKey() ed25519.PublicKey { return l.key.Public().(ed25519.PublicKey) }

// LogValue keeps the key out of structured logs.
func (l *Log) LogValue() slog.Value {
	return slog.GroupValue(slog.String("key_id", l.keyID), slog.Uint64("checkpoint_every", l.every))
}

// Record is a change to be appended. Before and After are JSON-encoded (a json.RawMessage or []byte is
// taken as JSON text); nil means "no state", such as Before of a creation. They must never hold secrets.
type Record struct {
	Actor  string
	Action string
	Target string
	Before any
	After  any
	// Organisation is the organisation whose members may read the entry; 0 for none (changes to an account,
	// which spans organisations, and system entries). It is stored beside the entry, not covered by its hash:
	// it decides who reads the entry, not what the entry says.
	Organisation int64
}

// Checkpoint is a signed statement that entry Seq had hash Hash. PublicKey is stored for the reader's
// information only: [Verify] checks Signature with the trusted key named KeyID.
type Checkpoint struct {
	Seq       uint64
	Hash      Hash
	Time      time.Time
	KeyID     string
	PublicKey ed25519.PublicKey
	Signature []byte
}

// Append appends r as the next entry and returns it. It writes a checkpoint when the entry's seq is a
// multiple of the configured interval.
func (l *Log) Append(ctx context.Context, r Record) (Entry, error) {
	var e Entry
	err := l.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		e, err = l.AppendTx(ctx, tx, r)
		return err
	})
	return e, err
}

// AppendTx is Append within tx, a transaction of the log's database: the entry exists if and only if tx commits,
// so that a change and its record are made together. It locks the head of the chain until tx ends.
func (l *Log) AppendTx(ctx context.Context, tx *sql.Tx, r Record) (Entry, error) {
	if r.Actor == "" || r.Action == "" {
		return Entry{}, errors.New("audit: an entry needs an actor and an action")
	}
	if r.Action == PurgeAction {
		return Entry{}, errors.New("audit: action " + PurgeAction + " is reserved for Purge")
	}
	before, err := marshalRedacted(r.Before)
	if err != nil {
		return Entry{}, err
	}
	after, err := marshalRedacted(r.After)
	if err != nil {
		return Entry{}, err
	}
	e, err := l.appendTx(ctx, tx, r.Organisation, r.Actor, r.Action, r.Target, before, after)
	if err != nil {
		return Entry{}, fmt.Errorf("audit: append: %w", err)
	}
	return e, nil
}

// head is the head row: the last entry's seq, hash and time, signed.
type head struct {
	seq   uint64
	hash  Hash
	time  time.Time
	keyID string
	sig   []byte
}

// problem returns why h is not a head signed by a key of r, or "" if it is. The head of the empty log, as the
// migration wrote it, needs no signature.
func (h *head) problem(r keyring) string {
	switch {
	case h.seq == 0 && h.hash == Hash{} && len(h.sig) == 0:
		return ""
	case len(h.sig) == 0:
		return "it is not signed (written before signed heads, or its signature was removed)"
	}
	return r.check(headDomain, h.seq, h.hash, h.time, h.keyID, h.sig)
}

// errCorruptHead: the head row's seq is negative or its hash is not 32 bytes.
var errCorruptHead = errors.New("head row is corrupt")

const headColumns = "SELECT seq, hash, time_us, key_id, signature FROM audit_head WHERE id = 1"

// readHead reads the head row; the query is headColumns, with a lock clause for appenders.
func readHead(ctx context.Context, q querier, query string) (head, error) {
	var (
		h      head
		seq    int64
		hash   []byte
		timeUS int64
	)
	if err := q.QueryRowContext(ctx, query).Scan(&seq, &hash, &timeUS, &h.keyID, &h.sig); err != nil {
		return h, fmt.Errorf("read head: %w", err)
	}
	if len(hash) != len(h.hash) || seq < 0 {
		return h, errCorruptHead
	}
	h.seq, h.time = uint64(seq), time.UnixMicro(timeUS).UTC()
	copy(h.hash[:], hash)
	return h, nil
}

// lockHead reads the head row, locking it until tx ends.
func (l *Log) lockHead(ctx context.Context, tx *sql.Tx) (head, error) {
	return readHead(ctx, tx, headColumns+l.db.ForUpdate())
}

// ErrUntrustedHead is returned by appends when the head of the log is not signed by the log's key: the log was
// tampered with, or written before signed heads (see [Log.SignHead]). Extending it would sign whatever the
// database now holds.
var ErrUntrustedHead = errors.New("audit: the head of the log is not signed by this console's audit key; check the log with stoa audit verify")

// trust returns an error wrapping ErrUntrustedHead unless h is signed by the log's key.
func (l *Log) trust(h head) error {
	if p := h.problem(l.ring); p != "" {
		return fmt.Errorf("%w (entry %d: %s)", ErrUntrustedHead, h.seq, p)
	}
	return nil
}

// CheckHead returns an error wrapping [ErrUntrustedHead] if appends will fail because the head is not signed by
// the log's key, so that a console can say so when it starts rather than at the first change.
func (l *Log) CheckHead(ctx context.Context) error {
	h, err := readHead(ctx, l.db, headColumns)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return l.trust(h)
}

func (l *Log) appendTx(ctx context.Context, tx *sql.Tx, org int64, actor, action, target string, before, after []byte) (Entry, error) {
	h, err := l.lockHead(ctx, tx)
	if err != nil {
		return Entry{}, err
	}
	if err := l.trust(h); err != nil {
		return Entry{}, err
	}
	t := l.now().Truncate(time.Microsecond).UTC()
	if t.Before(h.time) {
		t = h.time // times never go backwards along the chain, so "older than" is a prefix of it
	}
	e := Entry{Seq: h.seq + 1, Time: t, Actor: actor, Action: action, Target: target, Before: before, After: after, PrevHash: h.hash}
	e.Hash = e.ComputeHash()
	orgID := sql.NullInt64{Int64: org, Valid: org != 0}
	_, err = tx.ExecContext(ctx, l.db.Rebind(`INSERT INTO audit_log
		(seq, time_us, actor, action, target, before_json, after_json, prev_hash, hash, organisation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		int64(e.Seq), e.Time.UnixMicro(), e.Actor, e.Action, e.Target, string(e.Before), string(e.After), e.PrevHash[:], e.Hash[:], orgID)
	if err != nil {
		return Entry{}, fmt.Errorf("insert entry: %w", err)
	}
	if err := l.signHeadTx(ctx, tx, head{seq: e.Seq, hash: e.Hash, time: e.Time}); err != nil {
		return Entry{}, err
	}
	if e.Seq%l.every == 0 {
		if _, err := l.checkpointTx(ctx, tx, e.Seq, e.Hash); err != nil {
			return Entry{}, err
		}
	}
	return e, nil
}

// signHeadTx makes h, signed by the log's key, the head.
func (l *Log) signHeadTx(ctx context.Context, tx *sql.Tx, h head) error {
	h.keyID = l.keyID
	h.sig = ed25519.Sign(l.key, signedMessage(headDomain, h.seq, h.hash, h.time, h.keyID))
	_, err := tx.ExecContext(ctx, l.db.Rebind("UPDATE audit_head SET seq = ?, hash = ?, time_us = ?, key_id = ?, signature = ? WHERE id = 1"),
		int64(h.seq), h.hash[:], h.time.UnixMicro(), h.keyID, h.sig)
	if err != nil {
		return fmt.Errorf("update head: %w", err)
	}
	return nil
}

// SignHead signs the current head with the log's key, for a log whose head is not signed by it: one written
// before signed heads, or by a console whose audit key was replaced. It first verifies the log with the log's
// key and refuses if anything but the head is wrong. Whoever calls it vouches for the entries after the newest
// checkpoint, which nothing else signed: run it once, after checking them, never to make a failing log pass.
func (l *Log) SignHead(ctx context.Context) error {
	err := l.db.InTx(ctx, func(tx *sql.Tx) error {
		h, err := l.lockHead(ctx, tx)
		if err != nil {
			return err
		}
		rep, err := verify(ctx, tx, l.ring)
		if err != nil {
			return err
		}
		if rep.Problem != nil && rep.Problem.Kind != BadHead {
			return fmt.Errorf("refusing to sign the head of a log that does not verify: %v", rep.Problem)
		}
		return l.signHeadTx(ctx, tx, h)
	})
	if err != nil {
		return fmt.Errorf("audit: sign head: %w", err)
	}
	return nil
}

func (l *Log) checkpointTx(ctx context.Context, tx *sql.Tx, seq uint64, h Hash) (Checkpoint, error) {
	c := Checkpoint{
		Seq:       seq,
		Hash:      h,
		Time:      l.now().Truncate(time.Microsecond).UTC(),
		KeyID:     l.keyID,
		PublicKey: l.key.Public().(ed25519.PublicKey),
	}
	c.Signature = ed25519.Sign(l.key, signedMessage(checkpointDomain, c.Seq, c.Hash, c.Time, c.KeyID))
	_, err := tx.ExecContext(ctx, l.db.Rebind(`INSERT INTO audit_checkpoints
		(seq, hash, time_us, key_id, public_key, signature) VALUES (?, ?, ?, ?, ?, ?)`),
		int64(c.Seq), c.Hash[:], c.Time.UnixMicro(), c.KeyID, []byte(c.PublicKey), c.Signature)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("insert checkpoint: %w", err)
	}
	return c, nil
}

// Checkpoint signs the last entry now, whatever the interval. It returns false if the log is empty, and
// [ErrUntrustedHead] if the head is not signed by the log's key.
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, bool, error) {
	var (
		c  Checkpoint
		ok bool
	)
	err := l.db.InTx(ctx, func(tx *sql.Tx) error {
		h, err := l.lockHead(ctx, tx)
		if err != nil || h.seq == 0 {
			return err
		}
		if err := l.trust(h); err != nil {
			return err
		}
		c, err = l.checkpointTx(ctx, tx, h.seq, h.hash)
		ok = err == nil
		return err
	})
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("audit: checkpoint: %w", err)
	}
	return c, ok, nil
}

// PurgeResult describes a purge.
type PurgeResult struct {
	Deleted    int64  // entries deleted
	ThroughSeq uint64 // the last deleted entry, anchored by a new checkpoint; 0 if nothing was deleted
	Entry      Entry  // the entry recording the purge
}

// Purge deletes every entry older than cutoff, keeping the chain verifiable, and records the purge as a new
// entry by actor. In one transaction it verifies the log (refusing to purge a log that does not verify,
// which would destroy the evidence), signs a checkpoint of the last entry to be deleted, so that it anchors
// the first remaining one, deletes the entries, and appends an "audit.purge" entry.
//
// Entry times never decrease along the chain, so the deleted entries are exactly a prefix of it.
func (l *Log) Purge(ctx context.Context, cutoff time.Time, actor string) (PurgeResult, error) {
	var res PurgeResult
	err := l.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := l.lockHead(ctx, tx); err != nil {
			return err
		}
		rep, err := verify(ctx, tx, l.ring)
		if err != nil {
			return err
		}
		if rep.Problem != nil {
			return fmt.Errorf("refusing to purge a log that does not verify: %v", rep.Problem)
		}
		cutoffUS := cutoff.UnixMicro()
		var through sql.NullInt64
		if err := tx.QueryRowContext(ctx, l.db.Rebind("SELECT MAX(seq) FROM audit_log WHERE time_us < ?"), cutoffUS).Scan(&through); err != nil {
			return err
		}
		if through.Valid {
			res.ThroughSeq = uint64(through.Int64)
			var hash []byte
			if err := tx.QueryRowContext(ctx, l.db.Rebind("SELECT hash FROM audit_log WHERE seq = ?"), through.Int64).Scan(&hash); err != nil {
				return err
			}
			var h Hash
			copy(h[:], hash)
			if _, err := l.checkpointTx(ctx, tx, res.ThroughSeq, h); err != nil {
				return err
			}
			r, err := tx.ExecContext(ctx, l.db.Rebind("DELETE FROM audit_log WHERE seq <= ?"), through.Int64)
			if err != nil {
				return err
			}
			if res.Deleted, err = r.RowsAffected(); err != nil {
				return err
			}
		}
		after, err := json.Marshal(map[string]any{
			"cutoff":      cutoff.UTC().Format(time.RFC3339Nano),
			"deleted":     res.Deleted,
			"through_seq": res.ThroughSeq,
		})
		if err != nil {
			return err
		}
		res.Entry, err = l.appendTx(ctx, tx, 0, actor, PurgeAction, "audit_log", []byte("null"), after)
		return err
	})
	if err != nil {
		return PurgeResult{}, fmt.Errorf("audit: purge: %w", err)
	}
	return res, nil
}
