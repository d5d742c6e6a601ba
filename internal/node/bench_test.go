package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/dispatch"
	"github.com/stoa-rtc/stoa/internal/guard"
	"github.com/stoa-rtc/stoa/token"
)

// startBenchDispatcher runs a network with three edges and returns a dispatcher's handler, which the benchmarks
// call directly (no network stack: the figures are the dispatcher's own cost per request).
func startBenchDispatcher(b *testing.B) http.Handler {
	n := newTestNet(b)
	n.guard = guard.Default()
	for i := range 3 {
		n.addEdge("eu", fmt.Sprint("eu-", i))
	}
	d, err := NewDispatcher(DispatcherConfig{Cluster: n.cluster("eu", "d-bench"), ID: "d-bench", Region: "eu",
		Guard: guard.Default(), Logger: n.log})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- d.Run(ctx, func() { close(ready) }) }()
	b.Cleanup(func() { cancel(); <-done })
	<-ready
	eventually(b, 5*time.Second, func() error {
		w := httptest.NewRecorder()
		d.Handler().ServeHTTP(w, dispatchRequest(b, mustToken(b, "bench", "probe"), "probe", "127.0.0.9:1"))
		if w.Code != 200 || !strings.Contains(w.Body.String(), "eu-2") {
			return fmt.Errorf("not ready: %d %s", w.Code, w.Body)
		}
		return nil
	})
	return d.Handler()
}

func dispatchRequest(b testing.TB, tok, uid, remote string) *http.Request {
	body, _ := json.Marshal(dispatch.Request{AppID: testApp, Channel: "bench", UID: uid, Token: tok})
	r := httptest.NewRequest(http.MethodPost, "/v1/dispatch", bytes.NewReader(body))
	r.RemoteAddr = remote
	return r
}

// Targets on one core: ≥ 10,000 valid requests/s; ≥ 50,000 invalid requests/s during a flood. Valid requests
// come from many addresses (clients), invalid ones from a few hundred flooding addresses, each blocked after its
// twentieth bad token.
func BenchmarkDispatch(b *testing.B) {
	for _, tc := range []struct {
		name  string
		valid bool
	}{{"valid", true}, {"invalid-flood", false}} {
		b.Run(tc.name, func(b *testing.B) {
			h := startBenchDispatcher(b)
			bodies := make([][]byte, 512)
			for i := range bodies {
				uid := fmt.Sprint(i)
				tok := mustToken(b, "bench", uid)
				if !tc.valid {
					tok = "007eJxforged" + uid
				}
				bodies[i], _ = json.Marshal(dispatch.Request{AppID: testApp, Channel: "bench", UID: uid, Token: tok})
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r, _ := http.NewRequest(http.MethodPost, "/v1/dispatch", bytes.NewReader(bodies[i%len(bodies)]))
				if tc.valid {
					r.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:1000", i>>16&255, i>>8&255, i&255)
				} else {
					r.RemoteAddr = fmt.Sprintf("10.9.%d.%d:1000", i>>8&1, i&255)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if tc.valid && w.Code != 200 {
					b.Fatalf("valid request: %d %s", w.Code, w.Body)
				}
				if !tc.valid && w.Code != 401 && w.Code != 403 {
					b.Fatalf("invalid request: %d", w.Code)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

func mustToken(b testing.TB, channel, uid string) string {
	s, err := token.BuildRTC(testCert, token.RTCOptions{AppID: testApp, Channel: channel, UID: uid, Expire: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	return s
}
