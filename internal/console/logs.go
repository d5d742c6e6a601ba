package console

// Media server logs (issue 6, item 5): the cluster's edge and guard events, ingested into media_events and
// searched per project. Only who, where, when and why is kept: never media, message content, tokens or secrets,
// and every value is length-limited.

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/protocol"
	"github.com/stoa-rtc/stoa/internal/store"
)

// IngestDurable names the console's durable consumer of the cluster's events.
const IngestDurable = "console"

// Maximum lengths, in bytes, of the stored values; longer values are cut (at a character boundary).
const (
	maxLogField  = 128 // channel, uid, edge, region, session, track_id, kind, app_id
	maxLogUA     = 256
	maxLogReason = 128
)

// logEventTypes are the event types stored: the edge's, and the guard's blocks.
var logEventTypes = map[string]bool{
	"join": true, "join_failed": true, "leave": true, "publish": true, "unpublish": true, "error": true, "block": true,
	"quality": true,
}

// EventSource delivers the cluster's events in batches: *cluster.Cluster.
type EventSource interface {
	ConsumeEventBatches(ctx context.Context, durable string, max int, fn func([]cluster.Event) error) error
}

// ingestBatch is the most events stored in one transaction.
const ingestBatch = 200

// IngestStats counts the events an [Ingester] has seen.
type IngestStats struct {
	Stored    uint64 // inserted (redeliveries included: they are ignored by the database)
	Ignored   uint64 // of a type the logs do not keep (guard summaries, unblocks, ...)
	Malformed uint64 // undecodable or invalid: skipped
}

// Ingester writes the cluster's events into media_events. It is safe for concurrent use.
type Ingester struct {
	db                         *store.DB
	log                        *slog.Logger
	stored, ignored, malformed atomic.Uint64
}

// NewIngester returns an Ingester writing into db; log may be nil.
func NewIngester(db *store.DB, log *slog.Logger) *Ingester {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Ingester{db: db, log: log.With("component", "console-ingest")}
}

// Stats returns the ingester's counters.
func (in *Ingester) Stats() IngestStats {
	return IngestStats{Stored: in.stored.Load(), Ignored: in.ignored.Load(), Malformed: in.malformed.Load()}
}

// Run ingests src's events through the durable consumer "console" until ctx ends.
func (in *Ingester) Run(ctx context.Context, src EventSource) error {
	return src.ConsumeEventBatches(ctx, IngestDurable, ingestBatch, func(evs []cluster.Event) error { return in.IngestBatch(ctx, evs) })
}

// RunIngest ingests c's events into the console's database until ctx ends (or c closes).
func (cs *Console) RunIngest(ctx context.Context, c *cluster.Cluster) error {
	return NewIngester(cs.db, cs.log).Run(ctx, c)
}

// IngestEvent stores one event (see [Ingester.Ingest]).
func (cs *Console) IngestEvent(ctx context.Context, ev cluster.Event) error {
	return NewIngester(cs.db, cs.log).Ingest(ctx, ev)
}

// edgeEvent is the JSON of internal/edge.Event, decoded loosely.
type edgeEvent struct {
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	Edge      string    `json:"edge"`
	Region    string    `json:"region"`
	AppID     string    `json:"app_id"`
	Channel   string    `json:"channel"`
	UID       string    `json:"uid"`
	Session   string    `json:"session"`
	TrackID   string    `json:"track_id"`
	Kind      string    `json:"kind"`
	Reason    string    `json:"reason"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"user_agent"`

	ClaimedAppID string `json:"claimed_app_id"`
}

// unverifiedJoinFailures are the reasons of the join failures that happen before the token verified with a
// certificate of its App ID: a wrong protocol version and every token error.
var unverifiedJoinFailures = map[protocol.Code]bool{
	protocol.CodeUnsupportedVersion: true, protocol.CodeInvalidToken: true, protocol.CodeUnknownApp: true,
	protocol.CodeTokenExpired: true, protocol.CodePrivilegeExpired: true, protocol.CodeChannelMismatch: true,
	protocol.CodeUIDMismatch: true, protocol.CodeAppMismatch: true, protocol.CodeNoPrivilege: true,
	protocol.CodeToken006Refused: true, protocol.CodeToken006Ambiguous: true,
}

// attribute takes an unverified join failure away from the project it names: anyone who knows an App ID can
// fail to join under it, and would write into that project's logs and analytics. The edge names no project for
// those (it gives the claim as claimed_app_id); edges before it named the claimed App ID as the project, hence
// the check of the reason here too. The failure is kept under no project, with the claimed App ID in its
// detail, for operators.
func attribute(e *logEntry, x edgeEvent) {
	if e.Type != "join_failed" || x.ClaimedAppID == "" && !unverifiedJoinFailures[protocol.Code(e.Reason)] {
		return
	}
	if claimed := cmp.Or(x.ClaimedAppID, x.AppID); claimed != "" {
		e.Detail = "claimed app_id " + clean(claimed, maxLogField)
	}
	e.AppID = ""
}

// guardEvent is the JSON of internal/guard.Event, the fields kept.
type guardEvent struct {
	Time   time.Time `json:"time"`
	Node   string    `json:"node"`
	Prefix string    `json:"prefix"`
	Reason string    `json:"reason"`
}

// logEntry is one stored event, as the API returns it.
type logEntry struct {
	ID        int64     `json:"id"`
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	AppID     string    `json:"app_id"`
	Channel   string    `json:"channel"`
	UID       string    `json:"uid"`
	Edge      string    `json:"edge"`
	Region    string    `json:"region"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"user_agent"`
	OS        string    `json:"os"`
	Reason    string    `json:"reason"`
	Session   string    `json:"session"`
	TrackID   string    `json:"track_id"`
	Kind      string    `json:"kind"`
	// Detail is a short human-readable summary (quality events: "loss 0.0% jitter 2.1 ms 512 kbps ...").
	Detail string `json:"detail"`
}

// Ingest stores ev. Events of other types are ignored and malformed ones skipped, both counted and never
// returned as errors (they would be redelivered forever); an error means the database failed and ev should be
// offered again. Storing an event twice (same Seq) keeps one row. Quality events also go to quality_reports
// (quality.go).
func (in *Ingester) Ingest(ctx context.Context, ev cluster.Event) error {
	return in.IngestBatch(ctx, []cluster.Event{ev})
}

// IngestBatch stores evs as Ingest does, in one transaction: a backlog costs a commit per batch, not per event.
// On an error nothing is stored and the batch should be offered again.
func (in *Ingester) IngestBatch(ctx context.Context, evs []cluster.Event) error {
	var n [3]uint64 // stored, ignored, malformed
	err := in.db.InTx(ctx, func(tx *sql.Tx) error {
		n = [3]uint64{}
		for _, ev := range evs {
			o, err := in.store(ctx, tx, ev)
			if err != nil {
				return err
			}
			n[o]++
		}
		return nil
	})
	if err != nil {
		return err
	}
	in.stored.Add(n[stored])
	in.ignored.Add(n[ignored])
	in.malformed.Add(n[malformed])
	return nil
}

// outcome is what became of one event.
type outcome int

const (
	stored outcome = iota
	ignored
	malformed
)

// store writes ev's rows with x.
func (in *Ingester) store(ctx context.Context, x *sql.Tx, ev cluster.Event) (outcome, error) {
	if ev.Type == "quality" {
		e, q, err := decodeQualityEvent(ev)
		if err == nil && (ev.Seq == 0 || ev.Seq > 1<<63-1) {
			err = errors.New("no sequence number")
		}
		if err != nil {
			in.log.Debug("malformed event skipped", "seq", ev.Seq, "type", ev.Type, "err", err)
			return malformed, nil
		}
		return stored, in.ingestQuality(ctx, x, ev, e, q)
	}
	e, ok, err := decodeLogEvent(ev)
	if err != nil {
		in.log.Debug("malformed event skipped", "seq", ev.Seq, "type", clean(ev.Type, 64), "err", err)
		return malformed, nil
	}
	if !ok {
		return ignored, nil
	}
	return stored, in.insertLog(ctx, x, ev, e)
}

// insertLog stores e as ev's row of media_events, unless it is there already.
func (in *Ingester) insertLog(ctx context.Context, x *sql.Tx, ev cluster.Event, e logEntry) error {
	_, err := x.ExecContext(ctx, in.db.Rebind(`INSERT INTO media_events (seq, time_us, app_id, event_type, channel,
		uid, edge, region, ip, user_agent, os, reason, session, track_id, kind, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (seq) DO NOTHING`), int64(ev.Seq), e.Time.UnixMicro(), e.AppID, e.Type, e.Channel, e.UID, e.Edge,
		e.Region, e.IP, e.UserAgent, e.OS, e.Reason, e.Session, e.TrackID, e.Kind, e.Detail)
	return err
}

// decodeLogEvent turns ev into a sanitised entry; ok is false for an event type the logs do not keep.
func decodeLogEvent(ev cluster.Event) (e logEntry, ok bool, err error) {
	if ev.Seq == 0 || ev.Seq > 1<<63-1 {
		return e, false, errors.New("no sequence number")
	}
	switch {
	case ev.Type == "guard_block":
		var g guardEvent
		if err := json.Unmarshal(ev.Data, &g); err != nil {
			return e, false, err
		}
		e = logEntry{Time: g.Time, Type: "block", Edge: clean(g.Node, maxLogField), Region: clean(ev.Region, maxLogField),
			Reason: clean(g.Reason, maxLogReason)}
		if p, err := netip.ParsePrefix(g.Prefix); err == nil {
			e.IP = p.String()
		}
	case logEventTypes[ev.Type] && ev.Type != "block" && ev.Type != "quality":
		var x edgeEvent
		if err := json.Unmarshal(ev.Data, &x); err != nil {
			return e, false, err
		}
		if x.Type != ev.Type {
			return e, false, errors.New("type differs from the subject's")
		}
		e = logEntry{Time: x.Time, Type: x.Type, AppID: clean(x.AppID, maxLogField), Channel: clean(x.Channel, maxLogField),
			UID: clean(x.UID, maxLogField), Edge: clean(x.Edge, maxLogField), Region: clean(x.Region, maxLogField),
			UserAgent: clean(x.UserAgent, maxLogUA), Reason: clean(x.Reason, maxLogReason), Session: clean(x.Session, maxLogField),
			TrackID: clean(x.TrackID, maxLogField), Kind: clean(x.Kind, maxLogField)}
		if a, err := netip.ParseAddr(x.IP); err == nil {
			e.IP = a.Unmap().String()
		}
		attribute(&e, x)
		if e.AppID == "" && e.Type != "join_failed" {
			return e, false, errors.New("no app_id")
		}
		e.OS = userAgentOS(e.UserAgent)
	default:
		return e, false, nil
	}
	if e.Time.IsZero() {
		e.Time = ev.Time
	}
	if e.Time.IsZero() {
		return e, false, errors.New("no time")
	}
	return e, true, nil
}

// clean makes s valid UTF-8 without control characters (PostgreSQL refuses NUL) and cuts it to max bytes.
func clean(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// userAgentOS names the operating system in a user agent, or "" when it is not recognisable.
func userAgentOS(ua string) string {
	switch {
	case ua == "":
		return ""
	case strings.Contains(ua, "Windows"):
		return "Windows"
	case strings.Contains(ua, "Android"):
		return "Android"
	case strings.Contains(ua, "iPhone"), strings.Contains(ua, "iPad"), strings.Contains(ua, "iPod"), strings.Contains(ua, "iOS"):
		return "iOS"
	case strings.Contains(ua, "CrOS"):
		return "ChromeOS"
	case strings.Contains(ua, "Macintosh"), strings.Contains(ua, "Mac OS X"), strings.Contains(ua, "macOS"):
		return "macOS"
	case strings.Contains(ua, "Linux"):
		return "Linux"
	}
	return ""
}

// Log listing limits.
const (
	defaultLogLimit    = 50
	maxLogLimit        = 1000
	defaultLogCSVLimit = 10000
	maxLogCSVLimit     = 100000
)

// logQuery is a parsed search.
type logQuery struct {
	channel, uid, typ string
	from, to          int64 // Unix microseconds; from inclusive, to exclusive; 0: unbounded
	limit             int
	afterTime         int64 // the cursor: strictly older than (afterTime, afterID)
	afterID           int64
}

// parseLogTime reads an RFC 3339 time or integer Unix seconds.
func parseLogTime(s string) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 && n < 1<<40 {
		return n * 1e6, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, err
	}
	return t.UnixMicro(), nil
}

func parseLogQuery(r *http.Request, defLimit, maxLimit int) (logQuery, error) {
	v := r.URL.Query()
	q := logQuery{channel: v.Get("channel"), uid: v.Get("uid"), typ: v.Get("type"), limit: defLimit}
	if q.typ != "" && !logEventTypes[q.typ] {
		return q, errorf(http.StatusBadRequest, "bad_request", "type must be one of join, join_failed, leave, publish, unpublish, error, block, quality")
	}
	for _, f := range []struct {
		name string
		dst  *int64
	}{{"from", &q.from}, {"to", &q.to}} {
		if s := v.Get(f.name); s != "" {
			us, err := parseLogTime(s)
			if err != nil {
				return q, errorf(http.StatusBadRequest, "bad_request", "%s must be an RFC 3339 time or Unix seconds", f.name)
			}
			*f.dst = us
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			return q, errorf(http.StatusBadRequest, "bad_request", "limit must be 1..%d", maxLimit)
		}
		q.limit = n
	}
	if s := v.Get("after"); s != "" {
		ts, id, ok := strings.Cut(s, "_")
		var err1, err2 error
		q.afterTime, err1 = strconv.ParseInt(ts, 10, 64)
		q.afterID, err2 = strconv.ParseInt(id, 10, 64)
		if !ok || err1 != nil || err2 != nil || q.afterID <= 0 {
			return q, errorf(http.StatusBadRequest, "bad_request", "after must be the next value of the previous page")
		}
	}
	return q, nil
}

// searchLogs returns appID's events matching q, newest first, and the cursor of the next page ("" if none).
func (cs *Console) searchLogs(ctx context.Context, appID string, q logQuery) ([]logEntry, string, error) {
	where := []string{"app_id = ?"}
	args := []any{appID}
	add := func(cond string, a ...any) { where = append(where, cond); args = append(args, a...) }
	if q.channel != "" {
		add("channel = ?", q.channel)
	}
	if q.uid != "" {
		add("uid = ?", q.uid)
	}
	if q.typ != "" {
		add("event_type = ?", q.typ)
	}
	if q.from != 0 {
		add("time_us >= ?", q.from)
	}
	if q.to != 0 {
		add("time_us < ?", q.to)
	}
	if q.afterID != 0 {
		add("(time_us < ? OR (time_us = ? AND id < ?))", q.afterTime, q.afterTime, q.afterID)
	}
	args = append(args, q.limit+1)
	return queryPage(ctx, cs.db, q.limit, `SELECT id, time_us, event_type, app_id, channel, uid, edge, region,
		ip, user_agent, os, reason, session, track_id, kind, detail FROM media_events WHERE `+strings.Join(where, " AND ")+
		" ORDER BY time_us DESC, id DESC LIMIT ?", args, func(rows *sql.Rows) (logEntry, error) {
		var e logEntry
		var us int64
		err := rows.Scan(&e.ID, &us, &e.Type, &e.AppID, &e.Channel, &e.UID, &e.Edge, &e.Region, &e.IP, &e.UserAgent,
			&e.OS, &e.Reason, &e.Session, &e.TrackID, &e.Kind, &e.Detail)
		e.Time = time.UnixMicro(us).UTC()
		return e, err
	}, func(e logEntry) string {
		return strconv.FormatInt(e.Time.UnixMicro(), 10) + "_" + strconv.FormatInt(e.ID, 10)
	})
}

// projectLogs loads the caller's project {id} and searches its events.
func (cs *Console) projectLogs(r *http.Request, p *principal, defLimit, maxLimit int) ([]logEntry, string, error) {
	q, err := parseLogQuery(r, defLimit, maxLimit)
	if err != nil {
		return nil, "", err
	}
	pr, err := cs.loadProject(r.Context(), cs.db, r, p, false)
	if err != nil {
		return nil, "", err
	}
	return cs.searchLogs(r.Context(), pr.AppID, q)
}

// listLogs serves GET /api/v1/projects/{id}/logs.
func (cs *Console) listLogs(w http.ResponseWriter, r *http.Request, p *principal) {
	items, next, err := cs.projectLogs(r, p, defaultLogLimit, maxLogLimit)
	cs.writePage(w, items, next, err)
}

// logCSVHeader names the CSV columns.
var logCSVHeader = []string{"time", "type", "app_id", "channel", "uid", "edge", "region", "ip", "user_agent", "os",
	"reason", "session", "track_id", "kind", "detail"}

// listLogsCSV serves GET /api/v1/projects/{id}/logs.csv: the same search as CSV; X-Next-Page holds the cursor
// of the next page when the limit cut the export short.
func (cs *Console) listLogsCSV(w http.ResponseWriter, r *http.Request, p *principal) {
	items, next, err := cs.projectLogs(r, p, defaultLogCSVLimit, maxLogCSVLimit)
	if err != nil {
		cs.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="logs.csv"`)
	if next != "" {
		w.Header().Set("X-Next-Page", next)
	}
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	cw.Write(logCSVHeader)
	for _, e := range items {
		rec := []string{e.Time.Format(time.RFC3339Nano), e.Type, e.AppID, e.Channel, e.UID, e.Edge, e.Region, e.IP,
			e.UserAgent, e.OS, e.Reason, e.Session, e.TrackID, e.Kind, e.Detail}
		for i := range rec {
			rec[i] = csvSafe(rec[i])
		}
		if err := cw.Write(rec); err != nil {
			return
		}
	}
	cw.Flush()
}

// csvSafe defuses spreadsheet formulas: a cell starting with = + - @ (or a tab or carriage return) gets a
// leading single quote.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
