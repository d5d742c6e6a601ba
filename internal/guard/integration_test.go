package guard_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/guard"
)

// node is one dispatcher-like server of a region: POST / with the body "good" is a valid request; anything else
// is reported as an invalid token.
type node struct {
	srv   *httptest.Server
	guard *guard.Guard
	mu    sync.Mutex
	seen  map[netip.Addr]int // requests that reached the handler, by client
}

// clock is the nodes' shared clock, moved by the test only: rates, bans and rechecks then depend on what the test
// does, not on how fast the machine runs it.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func startNode(t *testing.T, ctx context.Context, store guard.BlockStore, clk *clock, name string) *node {
	t.Helper()
	g, err := guard.New(guard.Config{Store: store, Node: name, Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{guard: g, seen: map[netip.Addr]int{}}
	n.srv = httptest.NewServer(g.Middleware(guard.Dispatch, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		n.seen[g.ClientIP(r)]++
		n.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		if string(body) != "good" {
			guard.ReportBad(r, guard.ReasonInvalidToken)
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"code":"invalid_token","message":"bad signature"}}`)
			return
		}
		io.WriteString(w, `{"region":"eu","edges":[],"ticket":"t"}`)
	})))
	t.Cleanup(n.srv.Close)
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return n
}

func (n *node) reached(ip string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.seen[netip.MustParseAddr(ip)]
}

// clientFrom returns an HTTP client whose connections leave from the loopback address ip.
func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0")) // is ip a usable source address here?
	if err != nil {
		t.Skipf("cannot use %s as a source address on this machine: %v", ip, err)
	}
	ln.Close()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 2}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

type answer struct {
	status     int
	retryAfter string
	code       string
}

func post(c *http.Client, url, body string) (answer, error) {
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&e)
	return answer{resp.StatusCode, resp.Header.Get("Retry-After"), e.Error.Code}, nil
}

func mustPost(t *testing.T, c *http.Client, url, body string) answer {
	t.Helper()
	a, err := post(c, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAttackerBlockedVictimServed runs two nodes of a region sharing a block store, with clients on real loopback
// source addresses: an attacker on 127.0.0.2 floods bad tokens and is blocked on both nodes; a flooder on
// 127.0.0.4 sends valid requests too fast and is rate limited; a victim on 127.0.0.3 is served throughout.
func TestAttackerBlockedVictimServed(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel() // runs before the nodes' cleanups wait for Run
	store := &guard.MemStore{}
	clk := newClock()
	n1 := startNode(t, ctx, store, clk, "dispatch-1")
	n2 := startNode(t, ctx, store, clk, "dispatch-2")
	attacker := clientFrom(t, "127.0.0.2")
	victim := clientFrom(t, "127.0.0.3")
	flooder := clientFrom(t, "127.0.0.4")

	var victimOK, victimTotal atomic.Int32
	victimDone := make(chan struct{})
	go func() {
		defer close(victimDone)
		for i := range 60 {
			url := n1.srv.URL
			if i%2 == 1 {
				url = n2.srv.URL
			}
			victimTotal.Add(1)
			if a, err := post(victim, url, "good"); err == nil && a.status == http.StatusOK {
				victimOK.Add(1)
			}
		}
	}()

	// The attacker floods node 1 with bad tokens: 20 reach the handler, then every request is refused.
	var blockedAt int
	for i := range 200 {
		a := mustPost(t, attacker, n1.srv.URL, "forged")
		if a.status == http.StatusForbidden {
			if blockedAt == 0 {
				blockedAt = i
			}
			if a.code != "blocked" || a.retryAfter != "600" {
				t.Fatalf("request %d: %+v", i, a)
			}
			continue
		}
		if a.status != http.StatusUnauthorized || blockedAt != 0 {
			t.Fatalf("request %d: %+v", i, a)
		}
	}
	if blockedAt != 20 || n1.reached("127.0.0.2") != 20 {
		t.Fatalf("blocked at request %d, %d reached the handler; want 20", blockedAt, n1.reached("127.0.0.2"))
	}

	// Node 2 enforces the block once node 1 has published it, without a single bad request of its own.
	start := time.Now()
	for {
		a := mustPost(t, attacker, n2.srv.URL, "good")
		if a.status == http.StatusForbidden && a.code == "blocked" {
			break
		}
		if a.status != http.StatusOK || time.Since(start) > 10*time.Second {
			t.Fatalf("node 2 did not enforce the block: %+v", a)
		}
		time.Sleep(10 * time.Millisecond) // poll pace
	}
	t.Logf("block enforced on node 2 after %v", time.Since(start))

	// A client sending valid requests too fast is rate limited, not blocked: with the clock still, exactly the
	// burst (100 by default) is served.
	var limited int
	for range 150 {
		switch a := mustPost(t, flooder, n2.srv.URL, "good"); a.status {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			if a.code != "rate_limited" || a.retryAfter != "1" {
				t.Fatalf("flooder: %+v", a)
			}
			limited++
		default:
			t.Fatalf("flooder: %+v", a)
		}
	}
	if limited != 50 {
		t.Fatalf("%d of 150 requests limited, want the 50 past the burst", limited)
	}

	<-victimDone
	if victimOK.Load() != victimTotal.Load() || n1.reached("127.0.0.3") != 30 || n2.reached("127.0.0.3") != 30 {
		t.Fatalf("victim served %d of %d requests", victimOK.Load(), victimTotal.Load())
	}
	if a := mustPost(t, victim, n1.srv.URL, "good"); a.status != http.StatusOK {
		t.Fatalf("victim after the attack: %+v", a)
	}

	// The operator lifts the block on node 1: node 1 serves the attacker's address again at once; node 2 trusts
	// the block it read for guard.RemoteRecheck, then reads the store again and serves too.
	if err := n1.guard.Unblock(ctx, netip.MustParseAddr("127.0.0.2")); err != nil {
		t.Fatal(err)
	}
	if a := mustPost(t, attacker, n1.srv.URL, "good"); a.status != http.StatusOK {
		t.Fatalf("node 1 after unblock: %+v", a)
	}
	if a := mustPost(t, attacker, n2.srv.URL, "good"); a.status != http.StatusForbidden {
		t.Fatalf("node 2 within RemoteRecheck of its last read: %+v, want still blocked", a)
	}
	clk.Advance(guard.RemoteRecheck)
	if a := mustPost(t, attacker, n2.srv.URL, "good"); a.status != http.StatusOK {
		t.Fatalf("node 2 RemoteRecheck after the unblock: %+v", a)
	}
}
