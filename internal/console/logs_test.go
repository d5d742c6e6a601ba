package console

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/edge"
	"github.com/stoa-rtc/stoa/internal/guard"
	"github.com/stoa-rtc/stoa/internal/protocol"
	"github.com/stoa-rtc/stoa/internal/store/storetest"
)

var logBase = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func edgeEv(seq uint64, typ edge.EventType, appID, channel, uid string, at time.Duration) cluster.Event {
	ev := edge.Event{Time: logBase.Add(at), Type: typ, Edge: "edge-1", Region: "eu", AppID: appID, Channel: channel,
		UID: uid, Session: "s-" + uid, IP: "192.0.2.7", UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120"}
	if typ == edge.EventPublish {
		ev.TrackID, ev.Kind = "t1", "audio"
	}
	b, _ := json.Marshal(ev)
	return cluster.Event{Seq: seq, Region: "eu", Type: string(typ), Node: "edge-1", Time: logBase.Add(at), Data: b}
}

func items(r resp) []map[string]any {
	var out []map[string]any
	for _, it := range r.body["items"].([]any) {
		out = append(out, it.(map[string]any))
	}
	return out
}

func TestLogs(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := context.Background()
		alice, bob := e.signup("alice@example.com"), e.signup("bob@example.com")
		aID, aApp, _ := alice.createProject()
		bID, bApp, _ := bob.createProject()
		in := NewIngester(e.db, nil)
		evs := []cluster.Event{
			edgeEv(1, edge.EventJoin, aApp, "room", "1", 0),
			edgeEv(2, edge.EventJoin, aApp, "room", "2", time.Second),
			edgeEv(3, edge.EventPublish, aApp, "room", "1", 2*time.Second),
			edgeEv(4, edge.EventLeave, aApp, "room", "2", 3*time.Second),
			edgeEv(5, edge.EventJoin, aApp, "other", "3", 4*time.Second),
			edgeEv(6, edge.EventJoin, bApp, "room", "1", 5*time.Second),
		}
		for _, ev := range evs {
			if err := in.Ingest(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		// Redelivery keeps one row.
		if err := in.Ingest(ctx, evs[0]); err != nil {
			t.Fatal(err)
		}

		base := "/api/v1/projects/" + aID + "/logs"
		all := items(alice.must(200, "GET", base, nil))
		if len(all) != 5 {
			t.Fatalf("got %d entries, want 5: %v", len(all), all)
		}
		if all[0]["channel"] != "other" || all[4]["type"] != "join" || all[4]["uid"] != "1" {
			t.Errorf("not newest first: %v", all)
		}
		if all[0]["os"] != "Windows" || all[0]["ip"] != "192.0.2.7" || all[0]["edge"] != "edge-1" || all[0]["region"] != "eu" {
			t.Errorf("fields: %v", all[0])
		}
		if got := items(alice.must(200, "GET", base+"?channel=room", nil)); len(got) != 4 {
			t.Errorf("channel=room: %d entries", len(got))
		}
		if got := items(alice.must(200, "GET", base+"?uid=1", nil)); len(got) != 2 || got[0]["type"] != "publish" || got[0]["kind"] != "audio" {
			t.Errorf("uid=1: %v", got)
		}
		if got := items(alice.must(200, "GET", base+"?type=leave", nil)); len(got) != 1 || got[0]["uid"] != "2" {
			t.Errorf("type=leave: %v", got)
		}
		from, to := url.QueryEscape(logBase.Add(time.Second).Format(time.RFC3339)), fmt.Sprint(logBase.Add(3*time.Second).Unix())
		if got := items(alice.must(200, "GET", base+"?from="+from+"&to="+to, nil)); len(got) != 2 || got[0]["type"] != "publish" {
			t.Errorf("time range: %v", got)
		}
		alice.must(400, "GET", base+"?from=yesterday", nil)
		alice.must(400, "GET", base+"?type=message", nil)
		alice.must(400, "GET", base+"?limit=0", nil)
		alice.must(400, "GET", base+"?after=12", nil)

		// Pagination: two at a time, newest first, no gaps nor repeats.
		var paged []map[string]any
		next := ""
		for range 5 {
			q := base + "?limit=2"
			if next != "" {
				q += "&after=" + next
			}
			r := alice.must(200, "GET", q, nil)
			paged = append(paged, items(r)...)
			next, _ = r.body["next"].(string)
			if next == "" {
				break
			}
		}
		if len(paged) != 5 {
			t.Fatalf("paged %d entries", len(paged))
		}
		for i := range paged {
			if paged[i]["id"] != all[i]["id"] {
				t.Errorf("page entry %d = %v, want %v", i, paged[i]["id"], all[i]["id"])
			}
		}

		// An API key of the organisation reads the logs too.
		if got := items(alice.apiKey().must(200, "GET", base+"?channel=other", nil)); len(got) != 1 {
			t.Errorf("api key: %v", got)
		}
		// Bob sees only his project's logs, never Alice's.
		if got := items(bob.must(200, "GET", "/api/v1/projects/"+bID+"/logs", nil)); len(got) != 1 || got[0]["app_id"] != bApp {
			t.Errorf("bob: %v", got)
		}
		bob.must(404, "GET", base, nil)
		bob.must(404, "GET", base+".csv", nil)
		bob.apiKey().must(404, "GET", base, nil)
		(&client{e: e}).must(401, "GET", base, nil)
	})
}

func TestLogsCSV(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := context.Background()
		alice := e.signup("alice@example.com")
		aID, aApp, _ := alice.createProject()
		in := NewIngester(e.db, nil)
		ev := edge.Event{Time: logBase, Type: edge.EventJoinFailed, Edge: "edge-1", Region: "eu", AppID: aApp,
			Channel: "=HYPERLINK(\"http://x\")", UID: "-1+2", Reason: "bad, \"quoted\"\nreason", UserAgent: "@evil"}
		b, _ := json.Marshal(ev)
		if err := in.Ingest(ctx, cluster.Event{Seq: 10, Type: "join_failed", Data: b}); err != nil {
			t.Fatal(err)
		}
		if err := in.Ingest(ctx, edgeEv(11, edge.EventJoin, aApp, "room", "7", time.Second)); err != nil {
			t.Fatal(err)
		}
		r := alice.must(200, "GET", "/api/v1/projects/"+aID+"/logs.csv", nil)
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
			t.Errorf("Content-Type %q", ct)
		}
		recs, err := csv.NewReader(strings.NewReader(r.raw)).ReadAll()
		if err != nil {
			t.Fatalf("%v in %q", err, r.raw)
		}
		if len(recs) != 3 || strings.Join(recs[0], ",") != strings.Join(logCSVHeader, ",") {
			t.Fatalf("records: %q", recs)
		}
		if recs[1][1] != "join" || recs[1][3] != "room" || recs[1][9] != "Windows" {
			t.Errorf("newest row: %q", recs[1])
		}
		row := recs[2]
		if row[1] != "join_failed" || row[3] != `'=HYPERLINK("http://x")` || row[4] != "'-1+2" || row[8] != "'@evil" {
			t.Errorf("formula cells not defused: %q", row)
		}
		// The newline (a control character) is dropped at ingestion; the comma and quotes survive CSV quoting.
		if row[10] != `bad, "quoted"reason` {
			t.Errorf("reason = %q", row[10])
		}
		r = alice.must(200, "GET", "/api/v1/projects/"+aID+"/logs.csv?type=join&limit=1", nil)
		if recs, _ := csv.NewReader(strings.NewReader(r.raw)).ReadAll(); len(recs) != 2 || r.header.Get("X-Next-Page") != "" {
			t.Errorf("filtered CSV: %q next %q", recs, r.header.Get("X-Next-Page"))
		}
	})
}

func TestIngestMalformed(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := context.Background()
		in := NewIngester(e.db, nil)
		good := edgeEv(1, edge.EventJoin, "app", "room", "1", 0)
		bad := []cluster.Event{
			{Seq: 2, Type: "join", Data: json.RawMessage(`{not json`)},
			{Seq: 3, Type: "join", Data: json.RawMessage(`{"type":"leave","app_id":"app","time":"2026-03-01T12:00:00Z"}`)},
			{Seq: 4, Type: "join", Data: json.RawMessage(`{"type":"join","time":"2026-03-01T12:00:00Z"}`)}, // no app_id
			{Seq: 5, Type: "join", Data: json.RawMessage(`{"type":"join","app_id":"app"}`)},                // no time
			{Seq: 0, Type: "join", Data: good.Data},
			{Seq: 6, Type: "join", Data: json.RawMessage(`[]`)},
			{Seq: 7, Type: "quality", Data: json.RawMessage(`{}`)}, // see TestIngestQuality
		}
		ignored := []cluster.Event{
			{Seq: 12, Type: "guard_unblock", Data: json.RawMessage(`{"type":"unblock"}`)},
			{Seq: 8, Type: "guard_rate_limited", Data: json.RawMessage(`{"type":"rate_limited","count":3}`)},
		}
		for _, ev := range append(append([]cluster.Event{good}, bad...), ignored...) {
			if err := in.Ingest(ctx, ev); err != nil {
				t.Fatalf("seq %d: %v", ev.Seq, err)
			}
		}
		// Hostile values: NUL bytes, invalid UTF-8 and oversized fields are cleaned and cut, not refused.
		long := strings.Repeat("é", 1000)
		hostile := edge.Event{Time: logBase, Type: edge.EventError, AppID: "app", Channel: "a\x00b\xff", Reason: long,
			UserAgent: long, IP: "not an ip", UID: long}
		b, _ := json.Marshal(hostile)
		if err := in.Ingest(ctx, cluster.Event{Seq: 9, Type: "error", Data: b}); err != nil {
			t.Fatal(err)
		}
		// A guard block: stored as "block" without a project.
		gb, _ := json.Marshal(guard.Event{Time: logBase, Type: guard.EventBlock, Node: "edge-2", Reason: "auth_failures"})
		gbm := map[string]any{}
		json.Unmarshal(gb, &gbm)
		gbm["prefix"] = "198.51.100.0/24"
		gb, _ = json.Marshal(gbm)
		if err := in.Ingest(ctx, cluster.Event{Seq: 10, Type: "guard_block", Region: "eu", Data: gb}); err != nil {
			t.Fatal(err)
		}
		st := in.Stats()
		if st.Stored != 3 || st.Malformed != uint64(len(bad)) || st.Ignored != uint64(len(ignored)) {
			t.Errorf("stats %+v", st)
		}
		var n int
		if err := e.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM media_events").Scan(&n); err != nil || n != 3 {
			t.Fatalf("%d rows, %v", n, err)
		}
		var ch, reason, ua, ip, uid string
		if err := e.db.QueryRowContext(ctx, e.db.Rebind("SELECT channel, reason, user_agent, ip, uid FROM media_events WHERE seq = ?"), 9).
			Scan(&ch, &reason, &ua, &ip, &uid); err != nil {
			t.Fatal(err)
		}
		if ch != "ab" || len(reason) > maxLogReason || len(ua) > maxLogUA || len(uid) > maxLogField || ip != "" || reason == "" {
			t.Errorf("hostile values stored as %q %d %d %q %d", ch, len(reason), len(ua), ip, len(uid))
		}
		var typ, app, prefix string
		if err := e.db.QueryRowContext(ctx, e.db.Rebind("SELECT event_type, app_id, ip FROM media_events WHERE seq = ?"), 10).
			Scan(&typ, &app, &prefix); err != nil || typ != "block" || app != "" || prefix != "198.51.100.0/24" {
			t.Errorf("guard block: %q %q %q %v", typ, app, prefix, err)
		}
	})
}

// TestLogsNoSecretColumns guards the schema: media_events holds no column for tokens, secrets, passwords,
// certificates or content.
func TestLogsNoSecretColumns(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		rows, err := e.db.QueryContext(context.Background(), "SELECT * FROM media_events WHERE 1 = 0")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		if len(cols) < 10 {
			t.Fatalf("columns %v", cols)
		}
		for _, c := range cols {
			for _, bad := range []string{"token", "secret", "password", "cert", "key", "content", "message", "payload", "media"} {
				if strings.Contains(strings.ToLower(c), bad) {
					t.Errorf("media_events has column %q", c)
				}
			}
		}
	})
}

// fakeSource delivers events like cluster.ConsumeEventBatches: serially, a batch again after an error.
type fakeSource struct {
	mu      sync.Mutex
	durable string
	evs     []cluster.Event
}

func (f *fakeSource) ConsumeEventBatches(ctx context.Context, durable string, max int, fn func([]cluster.Event) error) error {
	f.mu.Lock()
	f.durable = durable
	f.mu.Unlock()
	for evs := f.evs; len(evs) > 0; {
		n := min(max, len(evs))
		for fn(evs[:n]) != nil {
			if ctx.Err() != nil {
				return nil
			}
		}
		evs = evs[n:]
	}
	return nil
}

func TestIngestRun(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "stoa.db"))
	src := &fakeSource{evs: []cluster.Event{edgeEv(1, edge.EventJoin, "app", "room", "1", 0),
		{Seq: 2, Type: "join", Data: json.RawMessage(`garbage`)}, edgeEv(1, edge.EventJoin, "app", "room", "1", 0),
		edgeEv(3, edge.EventLeave, "app", "room", "1", time.Second)}}
	in := NewIngester(e.db, nil)
	if err := in.Run(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if src.durable != "console" {
		t.Errorf("durable %q", src.durable)
	}
	var n int
	e.db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM media_events").Scan(&n)
	if n != 2 || in.Stats().Malformed != 1 {
		t.Errorf("%d rows, stats %+v", n, in.Stats())
	}
}

func TestUserAgentOS(t *testing.T) {
	for ua, want := range map[string]string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36":           "Windows",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36":            "Android",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605": "iOS",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15":      "macOS",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36":                     "Linux",
		"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36":            "ChromeOS",
		"stoa-sdk/1.0": "",
		"":             "",
	} {
		if got := userAgentOS(ua); got != want {
			t.Errorf("userAgentOS(%q) = %q, want %q", ua, got, want)
		}
	}
}

// TestUnverifiedJoinFailures covers finding 7 (anyone who knows an App ID could write into that project's logs
// and analytics: failed joins were recorded under the App ID the client claimed, and a flood of bad tokens
// brought a project's join success rate down to 25%). A flood of failed joins naming the victim's App ID, as
// this edge reports them (no app_id, the claim in claimed_app_id) and as older edges did (the claim in app_id),
// leaves the victim's analytics and logs as they were; the failures are kept under no project for operators.
// A failure after the token verified (a bad ticket) is still the project's.
func TestUnverifiedJoinFailures(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := context.Background()
		e.clock.add(logBase.Add(time.Hour).Sub(e.clock.now()))
		alice := e.signup("alice@example.com")
		id, victim, _ := alice.createProject()
		in := NewIngester(e.db, nil)
		failed := func(seq uint64, ev edge.Event) cluster.Event {
			ev.Time, ev.Type, ev.Edge, ev.Region, ev.Channel, ev.UID = logBase.Add(time.Duration(seq)*time.Second), edge.EventJoinFailed, "edge-1", "eu", "room", "9"
			b, _ := json.Marshal(ev)
			return cluster.Event{Seq: seq, Region: "eu", Type: string(ev.Type), Node: "edge-1", Time: ev.Time, Data: b}
		}
		own := []cluster.Event{
			edgeEv(1, edge.EventJoin, victim, "room", "1", time.Second),
			edgeEv(2, edge.EventJoin, victim, "room", "2", 2*time.Second),
			edgeEv(3, edge.EventJoin, victim, "room", "3", 3*time.Second),
			failed(4, edge.Event{AppID: victim, Reason: string(protocol.CodeInvalidTicket)}),
		}
		var flood []cluster.Event
		for i := range 60 {
			seq := uint64(100 + i)
			reason := []protocol.Code{protocol.CodeInvalidToken, protocol.CodeTokenExpired, protocol.CodeUnsupportedVersion}[i%3]
			if i%2 == 0 {
				flood = append(flood, failed(seq, edge.Event{ClaimedAppID: victim, Reason: string(reason)}))
			} else {
				flood = append(flood, failed(seq, edge.Event{AppID: victim, Reason: string(reason)})) // an older edge
			}
		}
		// A claim is never the project's, whatever the reason.
		flood = append(flood, failed(200, edge.Event{ClaimedAppID: victim, Reason: string(protocol.CodeInvalidTicket)}))

		base := "/api/v1/projects/" + id
		q := "?from=" + itoa(logBase.Unix()) + "&to=" + itoa(logBase.Add(time.Hour).Unix()) + "&step=1h"
		if err := in.IngestBatch(ctx, own); err != nil {
			t.Fatal(err)
		}
		before := alice.must(200, "GET", base+"/analytics"+q, nil)
		eqSeries(t, "join_success_rate before", values(t, before.body, "join_success_rate"), 0.75)
		if err := in.IngestBatch(ctx, flood); err != nil {
			t.Fatal(err)
		}
		if st := in.Stats(); st.Stored != uint64(len(own)+len(flood)) || st.Malformed != 0 {
			t.Errorf("ingest stats %+v", st)
		}
		after := alice.must(200, "GET", base+"/analytics"+q, nil)
		for _, name := range []string{"join_success_rate", "joins", "joins_failed"} {
			eqSeries(t, name+" after the flood", values(t, after.body, name), values(t, before.body, name)...)
		}
		logs := items(alice.must(200, "GET", base+"/logs?limit=1000", nil))
		if len(logs) != len(own) {
			t.Errorf("the victim's logs hold %d events, want its own %d", len(logs), len(own))
		}
		// Operators find the flood under no project, with the App ID it claimed.
		var n int
		if err := e.db.QueryRow(e.db.Rebind("SELECT COUNT(*) FROM media_events WHERE app_id = '' AND event_type = 'join_failed' AND detail = ?"),
			"claimed app_id "+victim).Scan(&n); err != nil || n != len(flood) {
			t.Errorf("%d failures under no project (%v), want %d", n, err, len(flood))
		}
	})
}
