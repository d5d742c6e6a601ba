package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stoa-rtc/stoa/internal/dispatch"
	"github.com/stoa-rtc/stoa/internal/guard"
)

// A flood of bad tokens from 127.0.0.2 blocks that address on every dispatcher and edge of the region, while a
// client on 127.0.0.3 is served normally throughout.
func TestFloodBlocksAttackerRegionWide(t *testing.T) {
	n := newTestNet(t)
	n.guard = guard.Default() // the production thresholds: 20 bad requests in a minute
	d1, d2 := n.addDispatcher("eu", "d1"), n.addDispatcher("eu", "d2")
	e1, e2 := n.addEdge("eu", "e1"), n.addEdge("eu", "e2")
	otherRegion := n.addDispatcher("us", "d-us")

	good := func(d *runningNode) dispatchResult {
		return dispatchFrom(t, d.url, "127.0.0.3", dispatch.Request{AppID: testApp, Channel: "c", UID: "v", Token: n.token("c", "v")})
	}
	eventually(t, 5*time.Second, func() error {
		if r := good(d1); r.status != 200 {
			return fmt.Errorf("victim: %d %+v", r.status, r.err)
		}
		return nil
	})
	bad := dispatch.Request{AppID: testApp, Channel: "c", UID: "x", Token: "007eJxforged"}
	for i := range 20 {
		if r := dispatchFrom(t, d1.url, "127.0.0.2", bad); r.status != 401 {
			t.Fatalf("bad request %d: %d %+v", i, r.status, r.err)
		}
		if i%5 == 0 {
			if r := good(d1); r.status != 200 {
				t.Fatalf("victim during the flood: %d %+v", r.status, r.err)
			}
		}
	}
	start := time.Now()
	if r := dispatchFrom(t, d1.url, "127.0.0.2", bad); r.status != 403 || r.err.Error.Code != "blocked" || r.retryAfter == "" {
		t.Fatalf("after 20 bad requests: %d %q %+v", r.status, r.retryAfter, r.err)
	}
	// The block reaches the other dispatcher and the edges of the region (how fast is a figure, logged below).
	eventually(t, 10*time.Second, func() error {
		if r := dispatchFrom(t, d2.url, "127.0.0.2", dispatch.Request{AppID: testApp, Channel: "c", UID: "x", Token: n.token("c", "x")}); r.status != 403 {
			return fmt.Errorf("second dispatcher: %d", r.status)
		}
		for _, e := range []*runningNode{e1, e2} {
			if status := wsStatusFrom(t, e.url, "127.0.0.2"); status != http.StatusForbidden {
				return fmt.Errorf("edge %s: HTTP %d", e.id, status)
			}
		}
		return nil
	})
	t.Logf("block enforced region-wide after %v", time.Since(start).Round(time.Millisecond))
	for _, d := range []*runningNode{d1, d2} {
		if r := good(d); r.status != 200 {
			t.Errorf("victim on %s: %d", d.id, r.status)
		}
	}
	if status := wsStatusFrom(t, e2.url, "127.0.0.3"); status != http.StatusSwitchingProtocols {
		t.Errorf("victim on an edge: HTTP %d", status)
	}
	// Other regions keep their own counts: asked now that the block is everywhere in eu, the us dispatcher lets
	// the address through its guard to scheduling, where region us (no edge in this test) has nothing to offer.
	if r := dispatchFrom(t, otherRegion.url, "127.0.0.2", dispatch.Request{AppID: testApp, Channel: "c", UID: "x", Token: n.token("c", "x")}); r.status != 503 || r.err.Error.Code != "no_edges" {
		t.Errorf("region us: %d %+v, want the block not to apply (503 no_edges)", r.status, r.err)
	}
}

// wsStatusFrom opens the edge's signaling WebSocket from a source address and returns the HTTP status.
func wsStatusFrom(t *testing.T, url, source string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
	conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}})
	if err == nil {
		conn.Close(websocket.StatusNormalClosure, "")
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial %s: %v", strings.TrimPrefix(url, "ws://"), err)
	}
	return resp.StatusCode
}

// During a flood of invalid tokens from several addresses, every valid request from other addresses is served.
func TestValidServedDuringFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods for two seconds")
	}
	n := newTestNet(t)
	n.guard = guard.Default()
	n.addEdge("eu", "e1")
	d := n.addDispatcher("eu", "d1")
	eventually(t, 5*time.Second, func() error {
		if r := dispatchFrom(t, d.url, "127.0.3.9", dispatch.Request{AppID: testApp, Channel: "c", UID: "p", Token: n.token("c", "p")}); r.status != 200 {
			return fmt.Errorf("not ready: %d", r.status)
		}
		return nil
	})
	stop := make(chan struct{})
	var flood, blocked atomic.Int64 // requests answered, and of those refused as from a blocked address
	var wg sync.WaitGroup
	for a := range 4 {
		source := fmt.Sprintf("127.0.2.%d", a+1)
		dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
		client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 4}}
		body, _ := json.Marshal(dispatch.Request{AppID: testApp, Channel: "c", UID: "x", Token: "007eJxforged"})
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					resp, err := client.Post(d.url+"/v1/dispatch", "application/json", bytes.NewReader(body))
					if err != nil {
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					flood.Add(1)
					if resp.StatusCode == http.StatusForbidden {
						blocked.Add(1)
					}
				}
			})
		}
	}
	var served, asked atomic.Int64
	var vwg sync.WaitGroup
	for v := range 5 {
		vwg.Go(func() {
			source := fmt.Sprintf("127.0.3.%d", v+1)
			for i := range 20 {
				uid := fmt.Sprintf("v%d-%d", v, i)
				asked.Add(1)
				if r := dispatchFrom(t, d.url, source, dispatch.Request{AppID: testApp, Channel: "c", UID: uid, Token: n.token("c", uid)}); r.status == 200 {
					served.Add(1)
				} else {
					t.Errorf("valid request from %s: %d %+v", source, r.status, r.err)
				}
				time.Sleep(100 * time.Millisecond) // a client's pace, not synchronisation
			}
		})
	}
	vwg.Wait()
	close(stop)
	wg.Wait()
	t.Logf("during a flood of %d invalid requests (%d refused as blocked), %d of %d valid requests were served",
		flood.Load(), blocked.Load(), served.Load(), asked.Load())
	// The flood must have happened for the above to mean anything: every flooding address sent enough invalid
	// tokens to be blocked (20 each by default), and the guard blocked them.
	if flood.Load() < 4*20 || blocked.Load() == 0 {
		t.Errorf("no flood: %d invalid requests answered, %d refused as blocked", flood.Load(), blocked.Load())
	}
}
