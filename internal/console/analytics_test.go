package console

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/edge"
	"github.com/stoa-rtc/stoa/internal/store/storetest"
)

// anEv is an edge event of session sess at t.
func anEv(seq uint64, typ edge.EventType, appID, sess string, t time.Time) cluster.Event {
	ev := edge.Event{Time: t, Type: typ, Edge: "edge-1", Region: "eu", AppID: appID, Channel: "room", UID: sess, Session: sess}
	b, _ := json.Marshal(ev)
	return cluster.Event{Seq: seq, Region: "eu", Type: string(typ), Node: "edge-1", Time: t, Data: b}
}

func values(t *testing.T, body map[string]any, name string) []any {
	t.Helper()
	s, ok := body[name].([]any)
	if !ok {
		t.Fatalf("%s missing in %v", name, body)
	}
	var out []any
	for _, p := range s {
		out = append(out, p.(map[string]any)["v"])
	}
	return out
}

func eqSeries(t *testing.T, name string, got []any, want ...any) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i] == want[i]
	}
	if !ok {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

func TestAnalytics(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := context.Background()
		day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		e.clock.add(day.Add(72 * time.Hour).Sub(e.clock.now()))
		alice, bob := e.signup("alice@example.com"), e.signup("bob@example.com")
		aID, aApp, _ := alice.createProject()
		bID, bApp, _ := bob.createProject()
		at := func(h, m int) time.Time { return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
		evs := []cluster.Event{
			anEv(1, edge.EventJoin, aApp, "s1", at(21, 30)), // open at the window start
			anEv(2, edge.EventJoinFailed, aApp, "f1", at(22, 10)),
			anEv(3, edge.EventLeave, aApp, "s5", at(22, 15)), // joined before the look-back
			anEv(4, edge.EventLeave, aApp, "s1", at(22, 30)),
			anEv(5, edge.EventJoin, aApp, "s2", at(23, 0)), // across midnight
			anEv(6, edge.EventJoinFailed, aApp, "f2", at(23, 10)),
			anEv(7, edge.EventJoinFailed, aApp, "f3", at(23, 20)),
			anEv(8, edge.EventJoin, aApp, "s3", at(23, 30)), // never leaves
			anEv(9, edge.EventPublish, aApp, "s3", at(23, 40)),
			anEv(10, edge.EventLeave, aApp, "s2", at(25, 0)),
			anEv(11, edge.EventJoin, aApp, "s4", at(25, 30)),
			anEv(12, edge.EventLeave, aApp, "s4", at(25, 45)),
			anEv(13, edge.EventJoin, bApp, "b1", at(23, 0)),   // another organisation's project
			anEv(14, edge.EventJoin, aApp, "late", at(26, 0)), // after the window
		}
		in := NewIngester(e.db, nil)
		for _, ev := range evs {
			if err := in.Ingest(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		q := "?from=" + url.QueryEscape(at(22, 0).Format(time.RFC3339)) + "&to=" + url.QueryEscape(at(26, 0).Format(time.RFC3339)) + "&step=1h"
		base := "/api/v1/projects/" + aID + "/analytics"
		r := alice.must(200, "GET", base+q, nil)
		eqSeries(t, "concurrent_users", values(t, r.body, "concurrent_users"), 2.0, 2.0, 2.0, 2.0)
		eqSeries(t, "joins", values(t, r.body, "joins"), 0.0, 2.0, 0.0, 1.0)
		eqSeries(t, "joins_failed", values(t, r.body, "joins_failed"), 1.0, 2.0, 0.0, 0.0)
		eqSeries(t, "join_success_rate", values(t, r.body, "join_success_rate"), 0.0, 0.5, nil, 1.0)
		// 03-01 (22:00-24:00): s1 30 + s5 15 + s2 60 + s3 30; 03-02 (00:00-02:00): s2 60 + s3 120 + s4 15.
		eqSeries(t, "minutes_per_day", values(t, r.body, "minutes_per_day"), 135.0, 195.0)
		if days := r.body["minutes_per_day"].([]any); days[1].(map[string]any)["t"] != "2026-03-02T00:00:00Z" {
			t.Errorf("days: %v", days)
		}
		// No quality reports: the quality series are null in every bucket, the histograms empty.
		for _, name := range []string{"packet_loss", "jitter_ms", "bitrate_kbps", "join_time_ms"} {
			eqSeries(t, name, values(t, r.body, name), nil, nil, nil, nil)
		}
		if r.body["quality_reports"] != 0.0 || r.body["quality"] != nil {
			t.Errorf("quality: %v %v", r.body["quality_reports"], r.body["quality"])
		}
		if r.body["truncated"] != false || r.body["events"] != 11.0 {
			t.Errorf("truncated %v events %v", r.body["truncated"], r.body["events"])
		}
		// Finer steps: at 22:00-22:15 s1 and s5; 22:30-23:00 nobody; 01:00-01:30 only s3.
		q15 := "?from=" + url.QueryEscape(at(22, 0).Format(time.RFC3339)) + "&to=" + url.QueryEscape(at(26, 0).Format(time.RFC3339)) + "&step=15m"
		cu := values(t, alice.must(200, "GET", base+q15, nil).body, "concurrent_users")
		eqSeries(t, "15m concurrent_users", cu[:4], 2.0, 1.0, 0.0, 0.0)
		eqSeries(t, "15m concurrent_users after 01:00", cu[12:16], 1.0, 1.0, 2.0, 1.0)
		// Unix seconds work too, and an API key of the organisation reads analytics.
		qs := "?from=" + itoa(at(22, 0).Unix()) + "&to=" + itoa(at(26, 0).Unix()) + "&step=1h"
		eqSeries(t, "api key joins", values(t, alice.apiKey().must(200, "GET", base+qs, nil).body, "joins"), 0.0, 2.0, 0.0, 1.0)

		// Another organisation: not found, with a session or an API key; Bob's own project sees only his event.
		bob.must(404, "GET", base+q, nil)
		bob.apiKey().must(404, "GET", base+q, nil)
		(&client{e: e}).must(401, "GET", base+q, nil)
		eqSeries(t, "bob joins", values(t, bob.must(200, "GET", "/api/v1/projects/"+bID+"/analytics"+q, nil).body, "joins"), 0.0, 1.0, 0.0, 0.0)

		// Bucket cap and bad parameters.
		r = alice.must(400, "GET", base+"?from="+itoa(at(0, 0).Unix())+"&to="+itoa(at(48, 0).Unix())+"&step=1m", nil)
		if r.body["error"].(map[string]any)["code"] != "too_many_buckets" {
			t.Errorf("cap: %s", r.raw)
		}
		alice.must(200, "GET", base+"?from="+itoa(at(0, 0).Unix())+"&to="+itoa(at(48, 0).Unix())+"&step=1h", nil)
		alice.must(400, "GET", base+"?step=fortnight", nil)
		alice.must(400, "GET", base+"?step=0s", nil)
		alice.must(400, "GET", base+"?from=yesterday", nil)
		alice.must(400, "GET", base+"?from="+itoa(at(26, 0).Unix())+"&to="+itoa(at(22, 0).Unix()), nil)
		// Defaults: the last 24 hours in 1-hour steps.
		if n := len(values(t, alice.must(200, "GET", base, nil).body, "concurrent_users")); n != 24 {
			t.Errorf("default window: %d buckets", n)
		}

		// Row cap: reported, and the series are complete only until the last row read.
		old := analyticsMaxRows
		analyticsMaxRows = 3
		defer func() { analyticsMaxRows = old }()
		r = alice.must(200, "GET", base+q, nil)
		if r.body["truncated"] != true || r.body["complete_until"] != at(22, 15).Format(time.RFC3339) {
			t.Errorf("row cap: truncated %v complete_until %v", r.body["truncated"], r.body["complete_until"])
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestSessionIntervalsStale(t *testing.T) {
	stale := analyticsStaleAfter.Microseconds()
	evs := []analyticsEvent{{us: 100, typ: "join", key: "a"}, {us: 200, typ: "publish", key: "a"}, {us: 150, typ: "join", key: "b"}}
	got := sessionIntervals(evs, 0, 1<<60)
	if len(got) != 2 || got[0] != (interval{100, 200 + stale}) || got[1] != (interval{150, 150 + stale}) {
		t.Errorf("stale sessions: %v", got)
	}
	if got := sessionIntervals(evs, 0, 180); got[0] != (interval{100, 180}) || got[1] != (interval{150, 180}) {
		t.Errorf("capped sessions: %v", got)
	}
	// A failed join opens nothing.
	if got := sessionIntervals([]analyticsEvent{{us: 1, typ: "join_failed", key: "x"}}, 0, 1000); len(got) != 0 {
		t.Errorf("failed join: %v", got)
	}
}
