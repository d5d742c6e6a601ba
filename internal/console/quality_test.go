package console

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/edge"
	"github.com/stoa-rtc/stoa/internal/store/storetest"
)

// qEv is a quality event of session sess at t.
func qEv(seq uint64, appID, sess string, t time.Time, joinMs int64, tracks ...edge.TrackQuality) cluster.Event {
	ev := edge.Event{Time: t, Type: edge.EventQuality, Edge: "edge-1", Region: "eu", AppID: appID, Channel: "room",
		UID: sess, Session: sess, JoinMs: joinMs, IntervalMs: 10000, Tracks: tracks}
	b, _ := json.Marshal(ev)
	return cluster.Event{Seq: seq, Region: "eu", Type: "quality", Node: "edge-1", Time: t, Data: b}
}

func up(kind string, packets, lost uint64, jitterMs, kbps float64) edge.TrackQuality {
	q := edge.TrackQuality{TrackID: "t-" + kind, Kind: kind, Direction: edge.DirectionUp, Packets: packets, Lost: lost,
		JitterMs: jitterMs, BitrateKbps: kbps}
	if packets+lost > 0 {
		q.Loss = float64(lost) / float64(packets+lost)
	}
	return q
}

func down(kind string, packets, lost uint64, jitterMs float64) edge.TrackQuality {
	q := up(kind, packets, lost, jitterMs, 0)
	q.Direction = edge.DirectionDown
	return q
}

func TestIngestQuality(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := context.Background()
		alice := e.signup("alice@example.com")
		aID, aApp, _ := alice.createProject()
		in := NewIngester(e.db, nil)
		good := qEv(1, aApp, "s1", logBase, 182, up("audio", 95, 5, 2.14, 48.4), down("video", 900, 0, 8))
		if err := in.Ingest(ctx, good); err != nil {
			t.Fatal(err)
		}
		if err := in.Ingest(ctx, good); err != nil { // redelivered: one row in each table
			t.Fatal(err)
		}
		// Clamped, not refused: loss above 1, jitter and bitrate beyond the caps.
		wild := up("video", 10, 0, 1e9, 1e12)
		wild.Loss = 1.7
		if err := in.Ingest(ctx, qEv(2, aApp, "s2", logBase.Add(time.Second), 0, wild)); err != nil {
			t.Fatal(err)
		}
		bad := []cluster.Event{
			{Seq: 3, Type: "quality", Data: json.RawMessage(`{not json`)},
			{Seq: 4, Type: "quality", Data: json.RawMessage(`{}`)}, // no app_id
			qEv(5, "", "s", logBase, 100),
			qEv(6, aApp, "s", logBase, -1),                           // negative join time
			qEv(7, aApp, "s", logBase, 0, up("audio", 1, 0, -2, 10)), // negative jitter
			qEv(8, aApp, "s", logBase, 0, up("audio", 1, 0, 2, -10)), // negative bitrate
			qEv(0, aApp, "s", logBase, 100),                          // no sequence number
			{Seq: 9, Type: "quality", Data: json.RawMessage(`{"type":"quality","app_id":"x","time":"2026-03-01T12:00:00Z",
				"tracks":[{"direction":"up","jitter_ms":1e400}]}`)}, // not a finite float64
			{Seq: 10, Type: "quality", Data: json.RawMessage(`{"type":"join","app_id":"x","time":"2026-03-01T12:00:00Z"}`)},
		}
		many := make([]edge.TrackQuality, maxQualityTracks+1)
		bad = append(bad, qEv(11, aApp, "s", logBase, 0, many...))
		for _, ev := range bad {
			if err := in.Ingest(ctx, ev); err != nil {
				t.Fatalf("seq %d: %v", ev.Seq, err)
			}
		}
		if st := in.Stats(); st.Malformed != uint64(len(bad)) || st.Stored != 3 {
			t.Errorf("stats %+v, want %d malformed", st, len(bad))
		}
		var n int
		if err := e.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM quality_reports").Scan(&n); err != nil || n != 2 {
			t.Fatalf("%d quality rows, %v", n, err)
		}
		type row struct {
			us, interval, upP, downP int64
			app, ch, uid, sess, edg  string
			loss, jitter, kbps       float64
			join                     sql.NullInt64
		}
		get := func(seq int) row {
			var r row
			if err := e.db.QueryRowContext(ctx, e.db.Rebind(`SELECT time_us, interval_ms, up_packets, down_packets, app_id,
				channel, uid, session, edge, loss, jitter_ms, bitrate_kbps, join_ms FROM quality_reports WHERE seq = ?`), seq).
				Scan(&r.us, &r.interval, &r.upP, &r.downP, &r.app, &r.ch, &r.uid, &r.sess, &r.edg, &r.loss, &r.jitter, &r.kbps, &r.join); err != nil {
				t.Fatal(err)
			}
			return r
		}
		// Loss over both directions: 5 lost of 1000 expected; the largest jitter; the uplink's bitrate.
		r := get(1)
		if r.us != logBase.UnixMicro() || r.interval != 10000 || r.upP != 95 || r.downP != 900 || r.app != aApp ||
			r.ch != "room" || r.uid != "s1" || r.sess != "s1" || r.edg != "edge-1" || r.loss != 0.005 || r.jitter != 8 ||
			r.kbps != 48.4 || r.join != (sql.NullInt64{Int64: 182, Valid: true}) {
			t.Errorf("row %+v", r)
		}
		if r := get(2); r.jitter != maxJitterMs || r.kbps != maxBitrateKbps || r.loss != 0 || r.join.Valid {
			t.Errorf("clamped row %+v", r)
		}

		// The logs show the report with its detail, and filter on type=quality.
		base := "/api/v1/projects/" + aID + "/logs"
		got := items(alice.must(200, "GET", base+"?type=quality", nil))
		if len(got) != 2 || got[1]["detail"] != "loss 0.5% jitter 8.0 ms 48 kbps (1 up, 1 down); joined in 182 ms" ||
			got[1]["session"] != "s1" || got[1]["type"] != "quality" {
			t.Errorf("quality logs %v", got)
		}
		recs, err := csv.NewReader(strings.NewReader(alice.must(200, "GET", base+".csv?type=quality", nil).raw)).ReadAll()
		if err != nil || len(recs) != 3 || recs[0][len(recs[0])-1] != "detail" || !strings.HasPrefix(recs[2][len(recs[2])-1], "loss 0.5%") {
			t.Errorf("csv %q %v", recs, err)
		}
	})
}

func TestAnalyticsQuality(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := context.Background()
		day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		e.clock.add(day.Add(72 * time.Hour).Sub(e.clock.now()))
		alice, bob := e.signup("alice@example.com"), e.signup("bob@example.com")
		aID, aApp, _ := alice.createProject()
		_, bApp, _ := bob.createProject()
		at := func(h, m int) time.Time { return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
		evs := []cluster.Event{
			// 22:00-23:00. loss 10/200 = 0.05, jitter 8, 40 kbps, joined in 300 ms.
			qEv(1, aApp, "r1", at(22, 5), 300, up("audio", 100, 0, 2, 40), down("video", 90, 10, 8)),
			// loss 0, jitter 4, 1500 kbps.
			qEv(2, aApp, "r2", at(22, 10), 0, up("video", 1000, 0, 4, 1500)),
			// Only receiving: loss 0, jitter 30, no bitrate; joined in 1200 ms.
			qEv(3, aApp, "r3", at(22, 20), 1200, down("audio", 50, 0, 30)),
			qEv(4, bApp, "b1", at(22, 30), 99999, up("audio", 100, 50, 99, 9999)), // another organisation's
			// 23:00-24:00: a join time alone, and an idle track: neither counts for loss, jitter or bitrate.
			qEv(5, aApp, "r4", at(23, 0), 2500),
			qEv(6, aApp, "r5", at(23, 30), 0, up("audio", 0, 0, 0, 0)),
			// 00:00-01:00. loss 20/100 = 0.2, jitter 12, 64 kbps.
			qEv(7, aApp, "r6", at(24, 15), 0, up("audio", 80, 20, 12, 64)),
			// 01:00-02:00: a slow join.
			qEv(8, aApp, "r7", at(25, 30), 20000),
			qEv(9, aApp, "late", at(26, 0), 100, up("audio", 1, 0, 1, 1)), // after the window
		}
		in := NewIngester(e.db, nil)
		for _, ev := range evs {
			if err := in.Ingest(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		q := "?from=" + url.QueryEscape(at(22, 0).Format(time.RFC3339)) + "&to=" + url.QueryEscape(at(26, 0).Format(time.RFC3339)) + "&step=1h"
		r := alice.must(200, "GET", "/api/v1/projects/"+aID+"/analytics"+q, nil)
		// Medians: loss [0.05 0 0] → 0; jitter [8 4 30] → 8; bitrate [40 1500] → 770; join [300 1200] → 750.
		eqSeries(t, "packet_loss", values(t, r.body, "packet_loss"), 0.0, nil, 0.2, nil)
		eqSeries(t, "jitter_ms", values(t, r.body, "jitter_ms"), 8.0, nil, 12.0, nil)
		eqSeries(t, "bitrate_kbps", values(t, r.body, "bitrate_kbps"), 770.0, nil, 64.0, nil)
		eqSeries(t, "join_time_ms", values(t, r.body, "join_time_ms"), 750.0, 2500.0, nil, 20000.0)
		if r.body["quality_reports"] != 7.0 {
			t.Errorf("quality_reports %v", r.body["quality_reports"])
		}
		dist := r.body["distributions"].(map[string]any)
		for name, want := range map[string][]float64{
			// loss [0.05 0 0 0.2] in ≤0.001 ≤0.01 ≤0.02 ≤0.05 ≤0.1 ≤0.2 more
			"packet_loss": {2, 0, 0, 1, 0, 1, 0},
			// jitter [8 4 30 12] in ≤5 ≤10 ≤20 ≤30 ≤50 ≤100 more
			"jitter_ms": {1, 1, 1, 1, 0, 0, 0},
			// bitrate [40 1500 64] in ≤32 ≤64 ≤128 ≤256 ≤512 ≤1000 ≤2000 ≤4000 more
			"bitrate_kbps": {0, 2, 0, 0, 0, 0, 1, 0, 0},
			// join [300 1200 2500 20000] in ≤250 ≤500 ≤1000 ≤2000 ≤3000 ≤5000 ≤10000 more
			"join_time_ms": {0, 1, 0, 1, 1, 0, 0, 1},
		} {
			buckets, _ := dist[name].([]any)
			if len(buckets) != len(want) {
				t.Errorf("%s: %v", name, dist[name])
				continue
			}
			for i, b := range buckets {
				m := b.(map[string]any)
				if m["count"] != want[i] {
					t.Errorf("%s bucket %d = %v, want %v", name, i, m["count"], want[i])
				}
				if (i == len(buckets)-1) != (m["le"] == nil) {
					t.Errorf("%s bucket %d le %v", name, i, m["le"])
				}
			}
		}
		if le := dist["packet_loss"].([]any)[3].(map[string]any)["le"]; le != 0.05 {
			t.Errorf("packet_loss bucket 3 le %v", le)
		}
	})
}

func TestMedianAndBuckets(t *testing.T) {
	if median(nil) != nil || *median([]float64{3}) != 3 || *median([]float64{4, 1, 3, 2}) != 2.5 || *median([]float64{5, 1, 3}) != 3 {
		t.Error("median")
	}
	got := countBuckets([]float64{0, 1, 1.5, 2, 100, math.MaxFloat64}, []float64{1, 2, 10})
	want := []int{2, 2, 0, 2}
	for i := range want {
		if got[i].Count != want[i] {
			t.Errorf("buckets %v, want counts %v", got, want)
			break
		}
	}
}

// FuzzDecodeQualityEvent checks that whatever an edge sends, an accepted report holds only valid figures.
func FuzzDecodeQualityEvent(f *testing.F) {
	f.Add([]byte(qEv(1, "app", "s", logBase, 182, up("audio", 95, 5, 2.1, 48), down("video", 900, 0, 8)).Data))
	f.Add([]byte(`{"type":"quality","app_id":"a","time":"2026-03-01T12:00:00Z","tracks":[{"direction":"up","loss":7,"jitter_ms":1e300}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, q, err := decodeQualityEvent(cluster.Event{Seq: 1, Type: "quality", Time: logBase, Data: data})
		if err != nil {
			return
		}
		if e.AppID == "" || e.Time.IsZero() || len(e.Detail) > maxLogDetail || !utf8.ValidString(e.Detail) {
			t.Errorf("entry %+v", e)
		}
		if !(q.loss >= 0 && q.loss <= 1) || !(q.jitterMs >= 0 && q.jitterMs <= maxJitterMs) ||
			!(q.bitrate >= 0 && q.bitrate <= maxBitrateKbps) || q.upPackets < 0 || q.downPackets < 0 ||
			(q.joinMs.Valid && (q.joinMs.Int64 <= 0 || q.joinMs.Int64 > maxJoinMs)) {
			t.Errorf("row %+v", q)
		}
	})
}
