package console

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/stoa-rtc/stoa/internal/audit"
	"github.com/stoa-rtc/stoa/internal/store"
)

// Retention purge.
//
// A purge deletes, for each category of [store.Retention], the rows whose time is before now minus the
// category's period (a row exactly at the cutoff stays), and the expired sessions. Tables are emptied in
// batches of purgeBatch rows, each its own statement, so that a huge backlog never holds one long
// transaction or lock. The audit log is purged through [audit.Log.Purge], which keeps the chain verifiable
// and records its own "audit.purge" entry; it is called only when some entry is old enough, so that an idle
// log does not gain one such entry a day. Every purge then appends one "retention.purge" entry by "system"
// with the cutoffs and counts of all categories: it is also where GET /api/v1/retention finds the last run,
// so the answer survives restarts and is the same from every console process sharing the database.

const (
	// PurgeAction is the action of the audit entry recording each retention purge.
	PurgeAction = "retention.purge"
	// PurgeEvery is how often production consoles purge.
	PurgeEvery = 24 * time.Hour
	// purgeBatch is the most rows one DELETE statement removes.
	purgeBatch = 10000
)

// purgeTables are the SQL tables of the categories purged with plain deletes; the audit log is the fourth.
var purgeTables = []struct {
	category string // as in store.Retention.Categories
	table    string
	period   func(store.Retention) time.Duration
}{
	{"media_logs", "media_events", func(r store.Retention) time.Duration { return r.MediaLogs }},
	{"analytics", "quality_reports", func(r store.Retention) time.Duration { return r.Analytics }},
	{"access_log", "access_log", func(r store.Retention) time.Duration { return r.AccessLog }},
}

// PurgeReport describes one purge run. Its JSON form is the After of the run's audit entry.
type PurgeReport struct {
	// Time is when the purge ran, by the console's clock.
	Time time.Time `json:"time"`
	// Cutoffs holds, per category, the time before which rows were deleted.
	Cutoffs map[string]time.Time `json:"cutoffs"`
	// Deleted holds, per category, how many rows (or audit entries) were deleted.
	Deleted map[string]int64 `json:"deleted"`
	// ExpiredSessions is how many expired console sessions were deleted.
	ExpiredSessions int64 `json:"expired_sessions"`
	// ExpiredLinks is how many expired invitation and password reset links were deleted (not "tokens": the
	// audit log redacts keys named so).
	ExpiredLinks int64 `json:"expired_links"`
	// AuditPurgeSeq is the seq of the audit.purge entry recording the audit log's own purge; 0 if none was
	// needed.
	AuditPurgeSeq uint64 `json:"audit_purge_seq,omitempty"`
}

// Retention returns the retention the console purges with.
func (cs *Console) Retention() store.Retention { return cs.retain }

// Purge deletes the data older than the retention of its category, and the expired sessions, invitations and
// password reset tokens, and records
// the run in the audit log. A failure in one category does not stop the others: the error joins them all,
// and the report counts what was deleted anyway.
func (cs *Console) Purge(ctx context.Context) (PurgeReport, error) { return cs.purge(ctx, purgeBatch) }

func (cs *Console) purge(ctx context.Context, batch int) (PurgeReport, error) {
	now := cs.now().Truncate(time.Microsecond).UTC()
	rep := PurgeReport{Time: now, Cutoffs: map[string]time.Time{}, Deleted: map[string]int64{}}
	var errs []error
	for _, pt := range purgeTables {
		cutoff := now.Add(-pt.period(cs.retain))
		rep.Cutoffs[pt.category] = cutoff
		n, err := cs.deleteBatched(ctx, pt.table, "id", "time_us < ?", batch, cutoff.UnixMicro())
		rep.Deleted[pt.category] = n
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", pt.category, err))
		}
	}
	// Sessions, invitations and reset tokens are refused at their expiry time, so those are expired too.
	for _, ex := range []struct {
		table, key string
		count      *int64
	}{{"sessions", "id_hash", &rep.ExpiredSessions}, {"invitations", "id", &rep.ExpiredLinks}, {"password_resets", "id", &rep.ExpiredLinks}} {
		n, err := cs.deleteBatched(ctx, ex.table, ex.key, "expires_us <= ?", batch, now.UnixMicro())
		*ex.count += n
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ex.table, err))
		}
	}
	// Login and request counters whose window (an hour at most) and lockout are over count nothing any more.
	if _, err := cs.deleteBatched(ctx, "rate_counters", "counter_key", "window_start_us < ? AND locked_until_us < ?", batch,
		now.Add(-24*time.Hour).UnixMicro(), now.UnixMicro()); err != nil {
		errs = append(errs, fmt.Errorf("rate_counters: %w", err))
	}

	cutoff := now.Add(-cs.retain.AuditLog)
	rep.Cutoffs["audit_log"] = cutoff
	rep.Deleted["audit_log"] = 0
	// Entry times never decrease along the chain, so the first entry is the oldest.
	var oldest int64
	err := cs.db.QueryRowContext(ctx, "SELECT time_us FROM audit_log ORDER BY seq LIMIT 1").Scan(&oldest)
	if errors.Is(err, sql.ErrNoRows) {
		err = nil
	} else if err == nil && oldest < cutoff.UnixMicro() {
		var res audit.PurgeResult
		res, err = cs.audit.Purge(ctx, cutoff, "system")
		rep.Deleted["audit_log"], rep.AuditPurgeSeq = res.Deleted, res.Entry.Seq
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("audit_log: %w", err))
	}

	if _, err := cs.audit.Append(ctx, audit.Record{Actor: "system", Action: PurgeAction, Target: "retention", After: rep}); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return rep, fmt.Errorf("console: purge: %w", err)
	}
	return rep, nil
}

// deleteBatched deletes the rows of table matching where (with a ? for each of args), at most batch per statement,
// and returns how many it deleted. table, key and where are constants of this file, never input. The
// DELETE ... WHERE key IN (SELECT ... LIMIT n) form works on both SQLite and PostgreSQL, neither of which
// portably supports DELETE ... LIMIT.
func (cs *Console) deleteBatched(ctx context.Context, table, key, where string, batch int, args ...any) (int64, error) {
	q := cs.db.Rebind(fmt.Sprintf("DELETE FROM %s WHERE %s IN (SELECT %s FROM %s WHERE %s LIMIT ?)", table, key, key, table, where))
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		res, err := cs.db.ExecContext(ctx, q, append(args, batch)...)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
}

// RunPurge purges at once and then every interval (PurgeEvery if not positive) until ctx ends, logging the
// counts of each run. It returns when ctx ends, with no purge running.
func (cs *Console) RunPurge(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = PurgeEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	cs.runPurge(ctx, t.C, nil)
}

// runPurge purges at once and on every tick until ctx ends, calling done, if not nil, after each run.
func (cs *Console) runPurge(ctx context.Context, tick <-chan time.Time, done func(PurgeReport, error)) {
	for {
		rep, err := cs.Purge(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			// Stopping: the next run picks up where this one was interrupted.
		case err != nil:
			cs.log.Error("retention purge failed", "err", err, "deleted", rep.Deleted, "expired_sessions", rep.ExpiredSessions)
		default:
			cs.log.Info("retention purge", "deleted", rep.Deleted, "expired_sessions", rep.ExpiredSessions)
		}
		if done != nil {
			done(rep, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}

// retentionRoutes are the endpoints for the retention settings and purge runs.
func (cs *Console) retentionRoutes() []route {
	return []route{
		{"GET", "/api/v1/retention", "How long each category of data is kept, and the last purge run", authAny, nil, cs.getRetention},
	}
}

// retentionPeriod is one category's retention in the API.
type retentionPeriod struct {
	Days    float64 `json:"days"`
	Seconds int64   `json:"seconds"`
}

// retentionView is GET /api/v1/retention's answer.
type retentionView struct {
	Retention map[string]retentionPeriod `json:"retention"`
	MaxDays   int                        `json:"max_days"`
	LastPurge *PurgeReport               `json:"last_purge"` // null before the first purge
}

func (cs *Console) getRetention(w http.ResponseWriter, r *http.Request, _ *principal) {
	v := retentionView{Retention: map[string]retentionPeriod{}, MaxDays: int(store.MaxRetention / (24 * time.Hour))}
	for _, c := range cs.retain.Categories() {
		v.Retention[c.Name] = retentionPeriod{Days: c.Period.Hours() / 24, Seconds: int64(c.Period / time.Second)}
	}
	last, err := cs.lastPurge(r.Context())
	if err != nil {
		cs.fail(w, err)
		return
	}
	v.LastPurge = last
	writeJSON(w, http.StatusOK, v)
}

// lastPurge reads the report of the last purge from its audit entry; nil if there was none. Walking the
// log backwards by seq finds it within about a day of entries, purges being daily.
func (cs *Console) lastPurge(ctx context.Context) (*PurgeReport, error) {
	var after string
	err := cs.db.QueryRowContext(ctx, cs.db.Rebind("SELECT after_json FROM audit_log WHERE action = ? ORDER BY seq DESC LIMIT 1"),
		PurgeAction).Scan(&after)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rep PurgeReport
	if err := json.Unmarshal([]byte(after), &rep); err != nil {
		return nil, fmt.Errorf("console: last purge entry: %w", err)
	}
	return &rep, nil
}
