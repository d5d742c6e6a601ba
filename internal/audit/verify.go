package audit

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/stoa-rtc/stoa/internal/store"
)

// Kind is the kind of tampering [Verify] found.
type Kind int

const (
	// Modified: the entry's stored hash does not match its contents, or the chain no longer matches the
	// hash that a signed checkpoint or the head row recorded for the entry.
	Modified Kind = iota + 1
	// Deleted: the entry is missing: a gap in seq, entries missing before the first remaining one without a
	// checkpoint anchoring it, or entries missing at the end.
	Deleted
	// Inserted: the entry was not appended by the log: a duplicate seq, a prev_hash that does not link it to
	// the entry before, or an entry beyond the recorded end of the log.
	Inserted
	// Reordered: the entry carries another position's seq (its hash verifies with that other seq).
	Reordered
	// BadCheckpoint: a checkpoint is not signed by a trusted key.
	BadCheckpoint
	// BadHead: the head row is not signed by a trusted key, so the end of the chain is not vouched for.
	BadHead
)

func (k Kind) String() string {
	switch k {
	case Modified:
		return "modified"
	case Deleted:
		return "deleted"
	case Inserted:
		return "inserted"
	case Reordered:
		return "reordered"
	case BadCheckpoint:
		return "bad checkpoint"
	case BadHead:
		return "bad head"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Problem is the first place where the log is not intact.
type Problem struct {
	Seq    uint64 // the entry (or, for BadCheckpoint and BadHead, the seq it signs)
	Kind   Kind
	Detail string
}

func (p *Problem) String() string {
	switch p.Kind {
	case BadCheckpoint:
		return fmt.Sprintf("checkpoint of entry %d is bad: %s", p.Seq, p.Detail)
	case BadHead:
		return fmt.Sprintf("the head of the log (entry %d) is bad: %s", p.Seq, p.Detail)
	}
	return fmt.Sprintf("entry %d was %s: %s", p.Seq, p.Kind, p.Detail)
}

// Report is the outcome of [Verify].
type Report struct {
	Entries     int      // entries checked
	First, Last uint64   // seq of the first and last entry checked; 0 if none
	Anchor      uint64   // seq of the checkpoint anchoring First after a purge; 0 if the chain starts at 1
	Checkpoints int      // checkpoints signed by a trusted key
	KeyIDs      []string // the trusted keys that signed them
	Problem     *Problem // nil if the log is intact

	lastHash      Hash
	purgedThrough uint64 // the highest through_seq of the purge entries seen
}

// OK reports whether the log verified.
func (r Report) OK() bool { return r.Problem == nil }

// Verify reads the whole audit log from db and checks the hash chain, the checkpoints and the head row. Only
// signatures by the trusted keys count, each checked with the trusted key whose [KeyID] it names: at least one
// key is required, normally the console's own ([Log.PublicKey]). It returns an error only if no key is given
// or the database cannot be read; tampering is reported in Report.Problem.
func Verify(ctx context.Context, db *store.DB, trusted ...ed25519.PublicKey) (Report, error) {
	ring, err := newKeyring(trusted)
	if err != nil {
		return Report{}, fmt.Errorf("audit: verify: %w", err)
	}
	rep, err := verify(ctx, db, ring)
	if err != nil {
		return rep, fmt.Errorf("audit: verify: %w", err)
	}
	return rep, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func verify(ctx context.Context, q querier, ring keyring) (Report, error) {
	var rep Report
	cps, err := loadCheckpoints(ctx, q)
	if err != nil {
		return rep, err
	}
	var problems []Problem
	valid := map[uint64][]Checkpoint{}
	var maxCP uint64
	keyIDs := map[string]bool{}
	for _, c := range cps {
		if p := ring.check(checkpointDomain, c.Seq, c.Hash, c.Time, c.KeyID, c.Signature); p != "" {
			problems = append(problems, Problem{c.Seq, BadCheckpoint, p})
			continue
		}
		rep.Checkpoints++
		valid[c.Seq] = append(valid[c.Seq], c)
		maxCP = max(maxCP, c.Seq)
		if !keyIDs[c.KeyID] {
			keyIDs[c.KeyID] = true
			rep.KeyIDs = append(rep.KeyIDs, c.KeyID)
		}
	}
	hd, err := readHead(ctx, q, headColumns)
	if errors.Is(err, errCorruptHead) {
		rep.Problem = &Problem{0, BadHead, "the head row is corrupt: a negative seq, or a hash that is not 32 bytes"}
		return rep, nil
	}
	if err != nil {
		return rep, err
	}

	entryProblem, err := walk(ctx, q, &rep, valid)
	if err != nil {
		return rep, err
	}
	if entryProblem == nil && rep.Anchor > rep.purgedThrough {
		// A periodic checkpoint anchors the start, but no purge deleted the entries before it.
		entryProblem = &Problem{rep.purgedThrough + 1, Deleted, fmt.Sprintf("entries %d to %d were deleted without a recorded purge", rep.purgedThrough+1, rep.Anchor)}
	}
	if entryProblem == nil {
		entryProblem = checkEnd(&rep, hd, maxCP)
	}
	if entryProblem != nil {
		problems = append(problems, *entryProblem)
	}
	// The head is checked last: it vouches for the end of a chain found intact otherwise.
	if p := hd.problem(ring); p != "" && len(problems) == 0 {
		problems = append(problems, Problem{hd.seq, BadHead, p})
	}
	// The first problem in chain order wins; at the same seq an entry problem beats a checkpoint problem.
	for i := range problems {
		p := &problems[i]
		if rep.Problem == nil || p.Seq < rep.Problem.Seq || (p.Seq == rep.Problem.Seq && p.Kind != BadCheckpoint) {
			rep.Problem = p
		}
	}
	return rep, nil
}

// walk checks the entries in seq order and returns the first problem.
func walk(ctx context.Context, q querier, rep *Report, cps map[uint64][]Checkpoint) (*Problem, error) {
	rows, err := q.QueryContext(ctx, `SELECT seq, time_us, actor, action, target, before_json, after_json, prev_hash, hash
		FROM audit_log ORDER BY seq, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		expSeq  uint64 = 1
		expPrev Hash
		started bool
		suspect *Entry // an entry whose hash does not match its contents: modified or reordered
		p       *Problem
	)
	for rows.Next() {
		e, wellFormed, err := scanEntry(rows)
		if err != nil {
			return nil, err
		}
		if !started {
			started = true
			rep.First = e.Seq
			// After a purge the chain starts at the newest checkpoint before the first remaining entry.
			for s, c := range cps {
				if s < e.Seq && s > rep.Anchor {
					rep.Anchor, expSeq, expPrev = s, s+1, c[0].Hash
				}
			}
		}
		switch {
		case e.Seq < expSeq:
			p = &Problem{e.Seq, Inserted, fmt.Sprintf("a second entry with seq %d", e.Seq)}
		case e.Seq > expSeq:
			p = &Problem{expSeq, Deleted, deletedDetail(expSeq, e.Seq, rep.Anchor)}
		case !wellFormed || e.ComputeHash() != e.Hash:
			suspect = &e
		case e.PrevHash != expPrev:
			p = &Problem{e.Seq, Inserted, fmt.Sprintf("its prev_hash does not link it to entry %d", e.Seq-1)}
		default:
			for _, c := range cps[e.Seq] {
				if c.Hash != e.Hash {
					p = &Problem{e.Seq, Modified, fmt.Sprintf("the chain does not match the checkpoint signed by %q: entries up to %d were rewritten", c.KeyID, e.Seq)}
					break
				}
			}
		}
		if p != nil || suspect != nil {
			break
		}
		if e.Action == PurgeAction {
			var after struct {
				ThroughSeq uint64 `json:"through_seq"`
			}
			if json.Unmarshal(e.After, &after) == nil {
				rep.purgedThrough = max(rep.purgedThrough, after.ThroughSeq)
			}
		}
		rep.Entries++
		rep.Last, rep.lastHash = e.Seq, e.Hash
		expSeq, expPrev = e.Seq+1, e.Hash
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if suspect != nil {
		rep.Entries++
		return classify(ctx, q, suspect)
	}
	if p != nil {
		rep.Entries++
	}
	return p, nil
}

func deletedDetail(exp, got, anchor uint64) string {
	if exp == 1 || exp == anchor+1 {
		return fmt.Sprintf("the log starts at entry %d and no checkpoint anchors it", got)
	}
	if got == exp+1 {
		return fmt.Sprintf("entry %d follows entry %d", got, exp-1)
	}
	return fmt.Sprintf("entries %d to %d are missing", exp, got-1)
}

// classify tells a reordered entry (its hash verifies with another entry's seq) from a modified one.
func classify(ctx context.Context, q querier, e *Entry) (*Problem, error) {
	rows, err := q.QueryContext(ctx, "SELECT DISTINCT seq FROM audit_log")
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return nil, err
		}
		seqs = append(seqs, uint64(s))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	moved := *e
	for _, s := range seqs {
		if s == e.Seq {
			continue
		}
		moved.Seq = s
		if moved.ComputeHash() == e.Hash {
			return &Problem{e.Seq, Reordered, fmt.Sprintf("it holds entry %d, moved out of its place in the chain", s)}, nil
		}
	}
	return &Problem{e.Seq, Modified, "its hash does not match its contents"}, nil
}

// checkEnd compares the end of an intact chain with the head row and the newest checkpoint, which catches
// entries deleted from, or forged onto, the end of the log.
func checkEnd(rep *Report, hd head, maxCP uint64) *Problem {
	last := rep.Last
	if rep.Entries == 0 {
		last = rep.Anchor
	}
	switch {
	case hd.seq > last:
		return &Problem{last + 1, Deleted, fmt.Sprintf("the log ends at entry %d but entries were appended up to %d", last, hd.seq)}
	case maxCP > last:
		return &Problem{last + 1, Deleted, fmt.Sprintf("the log ends at entry %d but entry %d was checkpointed", last, maxCP)}
	case hd.seq < last:
		return &Problem{hd.seq + 1, Inserted, fmt.Sprintf("entries after %d were never appended by the log", hd.seq)}
	case rep.Entries > 0 && hd.hash != rep.lastHash:
		return &Problem{last, Modified, "the chain does not match the hash recorded in the head row"}
	}
	return nil
}

// scanEntry reads an entry; wellFormed is false if a hash column does not hold exactly 32 bytes.
func scanEntry(rows *sql.Rows) (e Entry, wellFormed bool, err error) {
	var (
		seq, timeUS   int64
		before, after string
		prev, hash    []byte
	)
	if err := rows.Scan(&seq, &timeUS, &e.Actor, &e.Action, &e.Target, &before, &after, &prev, &hash); err != nil {
		return e, false, err
	}
	e.Seq, e.Time = uint64(seq), time.UnixMicro(timeUS).UTC()
	e.Before, e.After = []byte(before), []byte(after)
	copy(e.PrevHash[:], prev)
	copy(e.Hash[:], hash)
	return e, len(prev) == len(e.PrevHash) && len(hash) == len(e.Hash), nil
}

func loadCheckpoints(ctx context.Context, q querier) ([]Checkpoint, error) {
	rows, err := q.QueryContext(ctx, "SELECT seq, hash, time_us, key_id, public_key, signature FROM audit_checkpoints ORDER BY seq, id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cps []Checkpoint
	for rows.Next() {
		var (
			c           Checkpoint
			seq, timeUS int64
			hash        []byte
			pub         []byte
		)
		if err := rows.Scan(&seq, &hash, &timeUS, &c.KeyID, &pub, &c.Signature); err != nil {
			return nil, err
		}
		c.Seq, c.Time, c.PublicKey = uint64(seq), time.UnixMicro(timeUS).UTC(), ed25519.PublicKey(pub)
		copy(c.Hash[:], hash)
		cps = append(cps, c)
	}
	return cps, rows.Err()
}

// List returns up to limit entries with seq >= from, in seq order, as stored (unverified).
func List(ctx context.Context, db *store.DB, from uint64, limit int) ([]Entry, error) {
	rows, err := db.QueryContext(ctx, db.Rebind(`SELECT seq, time_us, actor, action, target, before_json, after_json, prev_hash, hash
		FROM audit_log WHERE seq >= ? ORDER BY seq, id LIMIT ?`), int64(from), limit)
	if err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	defer rows.Close()
	var es []Entry
	for rows.Next() {
		e, _, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("audit: list: %w", err)
		}
		es = append(es, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	return es, nil
}
