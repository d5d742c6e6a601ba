package console

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/audit"
	"github.com/stoa-rtc/stoa/internal/store"
	"github.com/stoa-rtc/stoa/internal/store/storetest"
)

const day = 24 * time.Hour

func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// newPurgeEnv is newEnv with an audit log on the fake clock (so that entries can be made old) and a short
// retention with a different period per category.
func newPurgeEnv(t *testing.T, pathOrDSN string) *env {
	e := newEnv(t, pathOrDSN)
	al, err := audit.New(audit.Config{DB: e.db, Key: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)),
		CheckpointEvery: 3, Now: e.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	e.cs.audit = al // nothing was appended yet
	e.cs.retain = store.Retention{MediaLogs: 10 * day, Analytics: 20 * day, AccessLog: 30 * day, AuditLog: 40 * day}
	return e
}

// times returns the time_us of table's rows, in order.
func (e *env) times(table, column string) []int64 {
	e.t.Helper()
	rows, err := e.db.Query(fmt.Sprintf("SELECT %s FROM %s ORDER BY %s", column, table, column))
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func (e *env) exec(q string, args ...any) {
	e.t.Helper()
	if _, err := e.db.Exec(e.db.Rebind(q), args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

func (e *env) auditActions() []string {
	e.t.Helper()
	entries, err := audit.List(context.Background(), e.db, 0, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, en := range entries {
		out = append(out, en.Actor+" "+en.Action)
	}
	return out
}

func TestPurge(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		e := newPurgeEnv(t, dsn)
		now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
		us := func(t time.Time) int64 { return t.UnixMicro() }

		// Audit entries on both sides of the audit cutoff, appended in time order as the log requires.
		auditCut := now.Add(-e.cs.retain.AuditLog)
		for _, at := range []time.Time{auditCut.Add(-90 * day), auditCut.Add(-time.Second), auditCut.Add(-time.Microsecond),
			auditCut, auditCut.Add(time.Microsecond)} {
			e.clock.set(at)
			if _, err := e.cs.audit.Append(ctx, audit.Record{Actor: "alice", Action: "project.update", Target: "project/1"}); err != nil {
				t.Fatal(err)
			}
		}
		e.clock.set(now)
		ada := e.signup("ada@example.com") // an account, a session, recent audit and access log entries
		ada.createProject()

		// Rows of each table: five older than its cutoff (more than one batch of 2), three not.
		seq := 0
		want := map[string][]int64{}
		for _, tc := range []struct{ table, category string }{
			{"media_events", "media_logs"}, {"quality_reports", "analytics"}, {"access_log", "access_log"},
		} {
			var cut time.Time
			switch tc.category {
			case "media_logs":
				cut = now.Add(-e.cs.retain.MediaLogs)
			case "analytics":
				cut = now.Add(-e.cs.retain.Analytics)
			default:
				cut = now.Add(-e.cs.retain.AccessLog)
			}
			pre := e.times(tc.table, "time_us") // ada's login, if any: recent
			old := []int64{us(cut) - 1, us(cut) - 2, us(cut.Add(-day)), us(cut.Add(-300 * day)), 0}
			kept := []int64{us(cut), us(cut) + 1, us(now)}
			for _, ts := range slices.Concat(old, kept) {
				seq++
				switch tc.table {
				case "media_events":
					e.exec("INSERT INTO media_events (seq, time_us, app_id, event_type) VALUES (?, ?, 'app', 'join')", seq, ts)
				case "quality_reports":
					e.exec("INSERT INTO quality_reports (seq, time_us, app_id) VALUES (?, ?, 'app')", seq, ts)
				case "access_log":
					e.exec("INSERT INTO access_log (time_us, email, success) VALUES (?, 'x@example.com', 1)", ts)
				}
			}
			want[tc.table] = slices.Sorted(slices.Values(slices.Concat(pre, kept)))
		}

		// Sessions: the one at its expiry time is already refused, so it goes too.
		var accountID int64
		if err := e.db.QueryRow("SELECT id FROM accounts").Scan(&accountID); err != nil {
			t.Fatal(err)
		}
		for i, exp := range []int64{us(now) - 1, us(now), us(now) + 1} {
			e.exec("INSERT INTO sessions (id_hash, account_id, csrf_token, created_us, expires_us) VALUES (?, ?, 'x', 0, ?)",
				sha256Sum(fmt.Sprint(i)), accountID, exp)
		}
		wantSessions := []int64{us(now) + 1, us(now.Add(SessionLifetime))}
		// Counters: gone once their window is a day old and no lockout holds.
		for key, row := range map[string][2]int64{"old": {us(now.Add(-25 * time.Hour)), 0}, "locked": {us(now.Add(-25 * time.Hour)), us(now) + 1},
			"recent": {us(now.Add(-time.Hour)), 0}} {
			e.exec("INSERT INTO rate_counters (counter_key, window_start_us, count, locked_until_us) VALUES (?, ?, 1, ?)", key, row[0], row[1])
		}
		// Invitations and reset tokens likewise.
		for i, exp := range []int64{us(now) - 1, us(now), us(now) + 1} {
			e.exec("INSERT INTO invitations (organisation_id, email, role, token_hash, invited_by, created_us, expires_us) VALUES (1, 'x@example.com', 'member', ?, 'ada', 0, ?)",
				sha256Sum(fmt.Sprint("inv", i)), exp)
			e.exec("INSERT INTO password_resets (token_hash, account_id, created_us, expires_us) VALUES (?, ?, 0, ?)",
				sha256Sum(fmt.Sprint("reset", i)), accountID, exp)
		}
		projects := e.times("projects", "id")

		rep, err := e.cs.purge(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		wantDeleted := map[string]int64{"media_logs": 5, "analytics": 5, "access_log": 5, "audit_log": 3}
		if !maps(rep.Deleted, wantDeleted) || rep.ExpiredSessions != 2 || rep.ExpiredLinks != 4 || rep.AuditPurgeSeq == 0 || !rep.Time.Equal(now) {
			t.Errorf("report %+v; want deleted %v, 2 sessions and 4 tokens", rep, wantDeleted)
		}
		var left []string
		rows, err := e.db.Query("SELECT counter_key FROM rate_counters ORDER BY counter_key")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var k string
			rows.Scan(&k)
			left = append(left, k)
		}
		rows.Close()
		if !slices.Equal(left, []string{"locked", "recent"}) {
			t.Errorf("rate counters left: %v, want locked and recent", left)
		}
		for _, table := range []string{"invitations", "password_resets"} {
			if got := e.times(table, "expires_us"); !slices.Equal(got, []int64{us(now) + 1}) {
				t.Errorf("%s left: %v, want only the unexpired one", table, got)
			}
		}
		if c := rep.Cutoffs["audit_log"]; !c.Equal(auditCut) {
			t.Errorf("audit cutoff %v, want %v", c, auditCut)
		}
		for table, w := range want {
			if got := e.times(table, "time_us"); !slices.Equal(got, w) {
				t.Errorf("%s after purge: %v, want %v", table, got, w)
			}
		}
		if got := e.times("sessions", "expires_us"); !slices.Equal(got, wantSessions) {
			t.Errorf("sessions after purge: %v, want %v", got, wantSessions)
		}
		if got := e.times("projects", "id"); !slices.Equal(got, projects) {
			t.Errorf("projects changed: %v, want %v", got, projects)
		}
		ada.must(http.StatusOK, "GET", "/api/v1/session", nil) // a live session survives

		// The audit log lost exactly its old entries, still verifies, and records both purges.
		if got := e.times("audit_log", "time_us"); got[0] != us(auditCut) {
			t.Errorf("oldest audit entry at %d, want the one at the cutoff, %d", got[0], us(auditCut))
		}
		vr, err := audit.Verify(ctx, e.db, e.cs.audit.PublicKey())
		if err != nil || !vr.OK() {
			t.Fatalf("audit.Verify after purge: %+v %v", vr, err)
		}
		actions := e.auditActions()
		if n := len(actions); n < 2 || actions[n-2] != "system "+audit.PurgeAction || actions[n-1] != "system "+PurgeAction {
			t.Errorf("audit log ends with %q, want the audit purge then the retention purge", actions)
		}
		last, err := e.cs.lastPurge(ctx)
		if err != nil || last == nil || !maps(last.Deleted, wantDeleted) || last.ExpiredSessions != 2 || !last.Cutoffs["media_logs"].Equal(now.Add(-10*day)) {
			t.Errorf("retention.purge entry records %+v, %v", last, err)
		}

		// A second run finds nothing to delete: one more retention.purge entry, no audit.purge.
		rep, err = e.cs.Purge(ctx)
		if err != nil || !maps(rep.Deleted, map[string]int64{"media_logs": 0, "analytics": 0, "access_log": 0, "audit_log": 0}) || rep.AuditPurgeSeq != 0 {
			t.Errorf("second purge: %+v %v", rep, err)
		}
		counts := map[string]int{}
		for _, a := range e.auditActions() {
			counts[a]++
		}
		if counts["system "+audit.PurgeAction] != 1 || counts["system "+PurgeAction] != 2 {
			t.Errorf("audit actions after two purges: %v", counts)
		}
		if vr, err := audit.Verify(ctx, e.db, e.cs.audit.PublicKey()); err != nil || !vr.OK() {
			t.Fatalf("audit.Verify after second purge: %+v %v", vr, err)
		}
	})
}

func maps(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestRunPurge(t *testing.T) {
	e := newPurgeEnv(t, filepath.Join(t.TempDir(), "stoa.db"))
	ctx, cancel := context.WithCancel(context.Background())
	tick := make(chan time.Time)
	reports := make(chan PurgeReport)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		e.cs.runPurge(ctx, tick, func(rep PurgeReport, err error) {
			if err != nil {
				t.Error(err)
			}
			reports <- rep
		})
	}()
	if rep := <-reports; rep.Deleted["media_logs"] != 0 { // the run at start
		t.Errorf("first run: %+v", rep)
	}
	e.exec("INSERT INTO media_events (seq, time_us, app_id, event_type, uid) VALUES (1, ?, 'app', 'join', 'secret-uid')", e.clock.now().UnixMicro())
	e.clock.add(e.cs.retain.MediaLogs + time.Microsecond)
	tick <- e.clock.now()
	if rep := <-reports; rep.Deleted["media_logs"] != 1 {
		t.Errorf("run on tick: %+v", rep)
	}
	cancel()
	<-stopped
	e.logMu.Lock()
	logs := e.logs.String()
	e.logMu.Unlock()
	if strings.Count(logs, "retention purge") != 2 || !strings.Contains(logs, "media_logs:1") || strings.Contains(logs, "secret-uid") {
		t.Errorf("logs:\n%s", logs)
	}
}

func TestRetentionAPI(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn) // the default retention
		anon := &client{e: e}
		anon.must(http.StatusUnauthorized, "GET", "/api/v1/retention", nil)
		ada := e.signup("ada@example.com")
		r := ada.must(http.StatusOK, "GET", "/api/v1/retention", nil)
		var v struct {
			Retention map[string]struct {
				Days    float64 `json:"days"`
				Seconds int64   `json:"seconds"`
			} `json:"retention"`
			MaxDays   int             `json:"max_days"`
			LastPurge json.RawMessage `json:"last_purge"`
		}
		if err := json.Unmarshal([]byte(r.raw), &v); err != nil {
			t.Fatal(err)
		}
		wantDays := map[string]float64{"media_logs": 365, "analytics": 365, "access_log": 730, "audit_log": 730}
		if len(v.Retention) != len(wantDays) || v.MaxDays != 730 || string(v.LastPurge) != "null" {
			t.Fatalf("retention = %s", r.raw)
		}
		for name, d := range wantDays {
			if got := v.Retention[name]; got.Days != d || got.Seconds != int64(d)*86400 {
				t.Errorf("%s = %+v, want %v days", name, got, d)
			}
		}

		if _, err := e.cs.Purge(context.Background()); err != nil {
			t.Fatal(err)
		}
		r = ada.apiKey().must(http.StatusOK, "GET", "/api/v1/retention", nil) // API keys may read it too
		last, _ := r.body["last_purge"].(map[string]any)
		deleted, _ := last["deleted"].(map[string]any)
		if last["time"] != e.clock.now().Format(time.RFC3339Nano) || len(deleted) != 4 || deleted["media_logs"] != 0.0 ||
			last["cutoffs"].(map[string]any)["media_logs"] != e.clock.now().Add(-365*day).Format(time.RFC3339Nano) {
			t.Errorf("last_purge = %v", r.raw)
		}
		if r := ada.do("PUT", "/api/v1/retention", map[string]int{"media_logs": 1}); r.status < 400 {
			t.Errorf("PUT /api/v1/retention = %d, want refused: retention is read-only", r.status)
		}
	})
}

func TestNewRefusesInvalidRetention(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "stoa.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	al, err := audit.New(audit.Config{DB: db, Key: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))})
	if err != nil {
		t.Fatal(err)
	}
	r := store.DefaultRetention()
	r.Analytics = 731 * day
	_, err = New(Config{DB: db, Audit: al, KeyFile: filepath.Join(t.TempDir(), "k"), Retention: r})
	if err == nil || !strings.Contains(err.Error(), "analytics is 731 days") {
		t.Fatalf("New with 731 days of analytics: %v", err)
	}
	r.Analytics = store.MaxRetention
	cs, err := New(Config{DB: db, Audit: al, KeyFile: filepath.Join(t.TempDir(), "k"), Retention: r})
	if err != nil || cs.Retention() != r {
		t.Fatalf("New with 730 days: %v", err)
	}
}
