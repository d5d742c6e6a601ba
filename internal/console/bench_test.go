package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/edge"
	"github.com/stoa-rtc/stoa/internal/store/storetest"
)

// BenchmarkIngest measures storing the cluster's events into the media server logs, one event per transaction
// (an idle stream) and in batches of ingestBatch (a backlog), on SQLite and, with STOA_TEST_PG, PostgreSQL.
// Target: well above what a region's edges emit (thousands of events per second).
func BenchmarkIngest(b *testing.B) {
	for _, tg := range storetest.Targets() {
		for _, size := range []int{1, ingestBatch} {
			b.Run(fmt.Sprintf("%s/batch=%d", tg.Name, size), func(b *testing.B) {
				e := newEnv(b, tg.New(b))
				in := NewIngester(e.db, nil)
				ctx := context.Background()
				var seq uint64
				evs := make([]cluster.Event, size)
				start := time.Now()
				for b.Loop() {
					for i := range evs {
						seq++
						evs[i] = anEv(seq, edge.EventJoin, "app", fmt.Sprint("s", seq), logBase.Add(time.Duration(seq)*time.Millisecond))
					}
					if err := in.IngestBatch(ctx, evs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(seq)/time.Since(start).Seconds(), "events/s")
			})
		}
	}
}

// BenchmarkAnalytics measures GET /analytics over a week holding 100,000 events of one project (SQLite).
func BenchmarkAnalytics(b *testing.B) {
	e := newEnv(b, filepath.Join(b.TempDir(), "bench.db"))
	week := 7 * 24 * time.Hour
	e.clock.add(logBase.Add(week).Sub(e.clock.now()))
	a := e.signup("bench@example.com")
	id, app, _ := a.createProject()
	in := NewIngester(e.db, nil)
	const sessions = 50_000
	for i := range sessions {
		at := time.Duration(i) * (week / sessions)
		s := fmt.Sprint("s", i)
		for _, ev := range []cluster.Event{anEv(uint64(2*i+1), edge.EventJoin, app, s, logBase.Add(at)),
			anEv(uint64(2*i+2), edge.EventLeave, app, s, logBase.Add(at+5*time.Minute))} {
			if err := in.Ingest(context.Background(), ev); err != nil {
				b.Fatal(err)
			}
		}
	}
	q := url.Values{"from": {logBase.Format(time.RFC3339)}, "to": {logBase.Add(week).Format(time.RFC3339)}, "step": {"1h"}}
	path := "/api/v1/projects/" + id + "/analytics?" + q.Encode()
	b.ResetTimer()
	for b.Loop() {
		if r := a.do("GET", path, nil); r.status != http.StatusOK {
			b.Fatalf("%d %s", r.status, r.raw)
		}
	}
}
