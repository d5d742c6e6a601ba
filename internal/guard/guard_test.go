package guard

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// eventLog collects events.
type eventLog struct {
	mu  sync.Mutex
	evs []Event
}

func (l *eventLog) add(ev Event) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
}

func (l *eventLog) of(typ EventType) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	for _, ev := range l.evs {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

var (
	attacker = netip.MustParseAddr("127.0.0.2")
	victim   = netip.MustParseAddr("127.0.0.3")
)

// newTestGuard returns a Guard on a fake clock, with cfg's zero fields defaulted.
func newTestGuard(t testing.TB, cfg Config) (*Guard, *fakeClock, *eventLog) {
	t.Helper()
	clk := newFakeClock()
	log := &eventLog{}
	cfg.Clock = clk.Now
	cfg.Events = log.add
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g, clk, log
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none: valid
	}{
		{"zero", Config{}, nil},
		{"default", Default(), nil},
		{"no limit", Config{Message: NoLimit}, nil},
		{"rate", Config{Dispatch: Limit{Rate: -1, Burst: 1}}, []string{"Dispatch.Rate"}},
		{"burst", Config{Connect: Limit{Rate: 1}}, []string{"Connect.Burst"}},
		{"burst/rate", Config{Message: Limit{Rate: 1e-9, Burst: 10}}, []string{"Message: Burst/Rate"}},
		{"threshold", Config{BadThreshold: 1001}, []string{"BadThreshold"}},
		{"durations", Config{BadWindow: -1, BlockFor: -time.Second}, []string{"BadWindow", "BlockFor"}},
		{"prefixes", Config{Allow: []netip.Prefix{{}}, TrustedProxies: []netip.Prefix{{}}}, []string{"Allow", "TrustedProxies"}},
		{"ipv6 prefix", Config{IPv6PrefixLen: 129}, []string{"IPv6PrefixLen"}},
		{"max tracked", Config{MaxTracked: 10}, []string{"MaxTracked"}},
		{"every problem at once", Config{
			Dispatch: Limit{Rate: 0, Burst: 5}, BadThreshold: -1, SummaryInterval: -1, IPv6PrefixLen: 8,
			MaxTracked: -5, MaxSummaries: -1,
		}, []string{"Dispatch.Rate", "BadThreshold", "SummaryInterval", "IPv6PrefixLen", "MaxTracked", "MaxSummaries"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate: no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "guard: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if _, err := New(tc.cfg); err == nil {
				t.Error("New accepted an invalid Config")
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		class Class
		limit Limit
	}{
		{"dispatch 10/s burst 5", Dispatch, Limit{Rate: 10, Burst: 5}},
		{"connect 1/s burst 1", Connect, Limit{Rate: 1, Burst: 1}},
		{"message 100/s burst 30", Message, Limit{Rate: 100, Burst: 30}},
		{"slow 0.5/s burst 3", Dispatch, Limit{Rate: 0.5, Burst: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, clk, _ := newTestGuard(t, Config{Dispatch: tc.limit, Connect: tc.limit, Message: tc.limit})
			interval := time.Duration(float64(time.Second) / tc.limit.Rate)
			for i := range tc.limit.Burst {
				if d := g.Check(attacker, tc.class); !d.Allowed() {
					t.Fatalf("request %d of the burst: %+v", i+1, d)
				}
			}
			d := g.Check(attacker, tc.class)
			if d.Verdict != Limited || d.RetryAfter != interval {
				t.Fatalf("past the burst: %+v, want Limited after %v", d, interval)
			}
			// Refused requests do not consume tokens: hammering does not push the retry time out.
			for range 100 {
				g.Check(attacker, tc.class)
			}
			if d := g.Check(attacker, tc.class); d.RetryAfter != interval {
				t.Fatalf("after hammering: RetryAfter %v, want %v", d.RetryAfter, interval)
			}
			// Other keys and other classes are not affected.
			if d := g.Check(victim, tc.class); !d.Allowed() {
				t.Fatalf("victim: %+v", d)
			}
			if d := g.Check(attacker, (tc.class+1)%numClasses); !d.Allowed() {
				t.Fatalf("another class: %+v", d)
			}
			clk.Advance(interval - 1)
			if d := g.Check(attacker, tc.class); d.Verdict != Limited || d.RetryAfter != 1 {
				t.Fatalf("1ns early: %+v", d)
			}
			clk.Advance(1)
			if d := g.Check(attacker, tc.class); !d.Allowed() {
				t.Fatalf("after one interval: %+v", d)
			}
			if d := g.Check(attacker, tc.class); d.Allowed() {
				t.Fatal("one interval refilled more than one token")
			}
			// A quiet period refills the whole burst, and no more.
			clk.Advance(time.Duration(tc.limit.Burst+10) * interval)
			for i := range tc.limit.Burst {
				if d := g.Check(attacker, tc.class); !d.Allowed() {
					t.Fatalf("request %d after a quiet period: %+v", i+1, d)
				}
			}
			if d := g.Check(attacker, tc.class); d.Allowed() {
				t.Fatal("the bucket holds more than Burst")
			}
		})
	}
}

func TestNoLimit(t *testing.T) {
	g, _, _ := newTestGuard(t, Config{Message: NoLimit})
	for i := range 10000 {
		if d := g.Check(attacker, Message); !d.Allowed() {
			t.Fatalf("request %d: %+v", i, d)
		}
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    Decision
		want int
	}{
		{Decision{}, 0},
		{Decision{Verdict: Limited, RetryAfter: time.Nanosecond}, 1},
		{Decision{Verdict: Limited, RetryAfter: 50 * time.Millisecond}, 1},
		{Decision{Verdict: Limited, RetryAfter: time.Second}, 1},
		{Decision{Verdict: Limited, RetryAfter: time.Second + 1}, 2},
		{Decision{Verdict: Blocked, RetryAfter: 0}, 1},
		{Decision{Verdict: Blocked, RetryAfter: 10 * time.Minute}, 600},
		{Decision{Verdict: Blocked, RetryAfter: 10*time.Minute - time.Millisecond}, 600},
	} {
		if got := tc.d.RetryAfterSeconds(); got != tc.want {
			t.Errorf("%+v: RetryAfterSeconds %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestScoringBlocksAndExpires(t *testing.T) {
	for _, tc := range []struct {
		name      string
		threshold int
		window    time.Duration
		blockFor  time.Duration
	}{
		{"defaults", 0, 0, 0},
		{"one strike", 1, time.Second, time.Minute},
		{"5 in 10s for 1h", 5, 10 * time.Second, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, clk, log := newTestGuard(t, Config{BadThreshold: tc.threshold, BadWindow: tc.window, BlockFor: tc.blockFor, Node: "d1"})
			n, blockFor := g.cfg.BadThreshold, g.cfg.BlockFor
			for i := range n - 1 {
				if g.Bad(attacker, ReasonInvalidToken) {
					t.Fatalf("blocked after %d bad requests", i+1)
				}
			}
			if d := g.Check(attacker, Dispatch); !d.Allowed() {
				t.Fatalf("below the threshold: %+v", d)
			}
			if !g.Bad(attacker, ReasonTokenExpired) {
				t.Fatalf("not blocked after %d bad requests", n)
			}
			d := g.Check(attacker, Dispatch)
			if d.Verdict != Blocked || d.RetryAfter != blockFor || d.Reason != ReasonTokenExpired {
				t.Fatalf("blocked key: %+v", d)
			}
			if d := g.Check(victim, Dispatch); !d.Allowed() {
				t.Fatalf("victim: %+v", d)
			}
			evs := log.of(EventBlock)
			if len(evs) != 1 {
				t.Fatalf("%d block events, want 1", len(evs))
			}
			want := Event{Time: clk.Now(), Type: EventBlock, Node: "d1", Prefix: netip.MustParsePrefix("127.0.0.2/32"),
				Reason: ReasonTokenExpired, Until: clk.Now().Add(blockFor), Count: uint64(n)}
			if evs[0] != want {
				t.Fatalf("block event %+v, want %+v", evs[0], want)
			}
			// Reports while blocked are not counted, and say blocked.
			if !g.Bad(attacker, ReasonInvalidToken) {
				t.Fatal("Bad on a blocked key: not blocked")
			}
			clk.Advance(blockFor - 1500*time.Millisecond)
			if d := g.Check(attacker, Dispatch); d.Verdict != Blocked || d.RetryAfterSeconds() != 2 {
				t.Fatalf("1.5s before the end: %+v", d)
			}
			clk.Advance(1500 * time.Millisecond)
			if d := g.Check(attacker, Dispatch); !d.Allowed() {
				t.Fatalf("after the block: %+v", d)
			}
			// The score starts again from zero.
			for range n - 1 {
				g.Bad(attacker, ReasonInvalidToken)
			}
			if d := g.Check(attacker, Dispatch); !d.Allowed() {
				t.Fatalf("score not reset by the block: %+v", d)
			}
		})
	}
}

func TestBadWindowSlides(t *testing.T) {
	// Defaults: 20 in a minute.
	for _, tc := range []struct {
		name    string
		spacing time.Duration // between consecutive reports
		blocked bool
	}{
		{"all at once", 0, true},
		{"3s apart: 57s", 3 * time.Second, true},
		{"60s/19 apart: exactly a minute", time.Minute / 19, true},
		{"3.2s apart: 60.8s", 3200 * time.Millisecond, false},
		{"10s apart", 10 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, clk, _ := newTestGuard(t, Config{})
			blocked := false
			for i := range 20 {
				if i > 0 {
					clk.Advance(tc.spacing)
				}
				blocked = g.Bad(attacker, ReasonBadRequest)
			}
			if blocked != tc.blocked {
				t.Fatalf("blocked %v, want %v", blocked, tc.blocked)
			}
		})
	}
	t.Run("old reports fall out", func(t *testing.T) {
		g, clk, _ := newTestGuard(t, Config{})
		for range 19 {
			g.Bad(attacker, ReasonBadRequest)
		}
		clk.Advance(time.Minute + 1)
		for i := range 19 {
			if g.Bad(attacker, ReasonBadRequest) {
				t.Fatalf("blocked after %d fresh reports", i+1)
			}
		}
		if !g.Bad(attacker, ReasonBadRequest) {
			t.Fatal("20 fresh reports did not block")
		}
	})
}

func TestAllowlist(t *testing.T) {
	g, _, log := newTestGuard(t, Config{
		Dispatch:     Limit{Rate: 1, Burst: 1},
		BadThreshold: 1,
		Allow:        []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("::ffff:192.0.2.0/120"), netip.MustParsePrefix("2001:db8::/32")},
	})
	for _, s := range []string{"10.1.2.3", "::ffff:10.1.2.3", "192.0.2.77", "2001:db8::1", "fe80::1%eth0"} {
		ip := netip.MustParseAddr(s)
		if s == "fe80::1%eth0" {
			continue // link-local is not allowlisted: checked below
		}
		for range 5 {
			if g.Bad(ip, ReasonInvalidToken) {
				t.Fatalf("%s: allowlisted address blocked", s)
			}
			if d := g.Check(ip, Dispatch); !d.Allowed() {
				t.Fatalf("%s: allowlisted address refused: %+v", s, d)
			}
		}
	}
	if len(log.of(EventBlock)) != 0 {
		t.Fatal("allowlisted addresses produced block events")
	}
	// Loopback is not exempt: tests play attacker and victim from 127.0.0.0/8.
	for _, ip := range []netip.Addr{attacker, netip.IPv6Loopback(), netip.MustParseAddr("10.2.0.1"), netip.MustParseAddr("fe80::1%eth0")} {
		g.Check(ip, Dispatch)
		if d := g.Check(ip, Dispatch); d.Verdict != Limited {
			t.Errorf("%v: %+v, want Limited", ip, d)
		}
		if !g.Bad(ip, ReasonInvalidToken) {
			t.Errorf("%v: not blocked", ip)
		}
	}
}

func TestKey(t *testing.T) {
	g64, _, _ := newTestGuard(t, Config{})
	g128, _, _ := newTestGuard(t, Config{IPv6PrefixLen: 128})
	for _, tc := range []struct {
		ip       string
		want64   string
		want128  string
		sameAs64 string // another address with the same /64 key
	}{
		{"192.0.2.1", "192.0.2.1/32", "192.0.2.1/32", ""},
		{"::ffff:192.0.2.1", "192.0.2.1/32", "192.0.2.1/32", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64", "2001:db8:1:2:3:4:5:6/128", "2001:db8:1:2:ffff::1"},
		{"fe80::1%eth0", "fe80::/64", "fe80::1/128", "fe80::2%eth1"},
		{"::1", "::/64", "::1/128", ""},
	} {
		ip := netip.MustParseAddr(tc.ip)
		if got := g64.Key(ip).String(); got != tc.want64 {
			t.Errorf("Key(%s) /64 = %s, want %s", tc.ip, got, tc.want64)
		}
		if got := g128.Key(ip).String(); got != tc.want128 {
			t.Errorf("Key(%s) /128 = %s, want %s", tc.ip, got, tc.want128)
		}
		if tc.sameAs64 != "" && g64.Key(netip.MustParseAddr(tc.sameAs64)) != g64.Key(ip) {
			t.Errorf("%s and %s have different /64 keys", tc.ip, tc.sameAs64)
		}
	}
	if g64.Key(netip.Addr{}).IsValid() {
		t.Error("the invalid address has a valid key")
	}
	// IPv4 and IPv6 keys never collide in the table.
	if keyOf(g64.Key(netip.MustParseAddr("0.0.0.1"))) == keyOf(g64.Key(netip.MustParseAddr("::1"))) {
		t.Error("0.0.0.1 and ::/64 share a table key")
	}
	// A whole /64 shares one bucket.
	g, _, _ := newTestGuard(t, Config{Dispatch: Limit{Rate: 1, Burst: 2}})
	g.Check(netip.MustParseAddr("2001:db8::1"), Dispatch)
	g.Check(netip.MustParseAddr("2001:db8::2"), Dispatch)
	if d := g.Check(netip.MustParseAddr("2001:db8::3"), Dispatch); d.Verdict != Limited {
		t.Fatalf("third address of a /64: %+v", d)
	}
}

func TestSanitizeReason(t *testing.T) {
	for in, want := range map[string]string{
		ReasonInvalidToken:                    ReasonInvalidToken,
		"":                                    "other",
		"invalid token eyJhbGciOi":            "other",
		"007eJxTYBBZ9Xj2Ybv2":                 "other",
		strings.Repeat("a", 33):               "other",
		"x.y-z_9":                             "x.y-z_9",
		"secret=\"hunter2\"":                  "other",
		"Bearer abc":                          "other",
		"token_expired\nINFO fake log record": "other",
	} {
		if got := sanitizeReason(in); got != want {
			t.Errorf("sanitizeReason(%q) = %q, want %q", in, got, want)
		}
	}
	g, _, log := newTestGuard(t, Config{BadThreshold: 1})
	g.Bad(attacker, "token 007eJxTYBBZ9Xj2Ybv2 is bad")
	if evs := log.of(EventBlock); len(evs) != 1 || evs[0].Reason != "other" {
		t.Fatalf("block events %+v", evs)
	}
}

func TestUnblock(t *testing.T) {
	store := &MemStore{}
	g, clk, log := newTestGuard(t, Config{BadThreshold: 3, Store: store})
	for range 3 {
		g.Bad(attacker, ReasonUnknownApp)
	}
	if d := g.Check(attacker, Connect); d.Verdict != Blocked {
		t.Fatalf("%+v", d)
	}
	// A block from elsewhere in the region.
	remote := netip.MustParseAddr("198.51.100.7")
	store.PutBlock(context.Background(), Block{Prefix: g.Key(remote), Until: clk.Now().Add(time.Hour), Reason: "invalid_ticket", Node: "e2"})
	if d := g.Check(remote, Message); d.Verdict != Blocked || d.RetryAfter != time.Hour || d.Reason != "invalid_ticket" {
		t.Fatalf("remote block: %+v", d)
	}
	for _, ip := range []netip.Addr{attacker, remote} {
		if err := g.Unblock(context.Background(), ip); err != nil {
			t.Fatal(err)
		}
		if d := g.Check(ip, Connect); !d.Allowed() {
			t.Fatalf("%v after Unblock: %+v", ip, d)
		}
		if _, ok := store.Blocked(g.Key(ip)); ok {
			t.Fatalf("%v still in the store", ip)
		}
	}
	// The score was cleared too.
	g.Bad(attacker, ReasonUnknownApp)
	g.Bad(attacker, ReasonUnknownApp)
	if d := g.Check(attacker, Connect); !d.Allowed() {
		t.Fatalf("score survived Unblock: %+v", d)
	}
	if evs := log.of(EventUnblock); len(evs) != 2 || evs[0].Reason != "unblocked" {
		t.Fatalf("unblock events %+v", evs)
	}
}

// failingStore fails while broken is set.
type failingStore struct {
	MemStore
	broken atomic.Bool
	puts   atomic.Int32
}

var errBusDown = errors.New("bus down")

func (s *failingStore) PutBlock(ctx context.Context, b Block) error {
	s.puts.Add(1)
	if s.broken.Load() {
		return errBusDown
	}
	return s.MemStore.PutBlock(ctx, b)
}

func (s *failingStore) DeleteBlock(ctx context.Context, p netip.Prefix) error {
	if s.broken.Load() {
		return errBusDown
	}
	return s.MemStore.DeleteBlock(ctx, p)
}

func TestUnblockStoreError(t *testing.T) {
	store := &failingStore{}
	store.broken.Store(true)
	g, _, _ := newTestGuard(t, Config{Store: store})
	err := g.Unblock(context.Background(), attacker)
	if !errors.Is(err, errBusDown) || !strings.HasPrefix(err.Error(), "guard: unblock 127.0.0.2/32: ") {
		t.Fatalf("Unblock: %v", err)
	}
}

func TestMemoryCapUnderFlood(t *testing.T) {
	const max = 1024
	g, clk, _ := newTestGuard(t, Config{MaxTracked: max, BadThreshold: 2})
	// The attacker is blocked before the flood; the victim is mid-burst.
	g.Bad(attacker, ReasonInvalidToken)
	g.Bad(attacker, ReasonInvalidToken)
	// A flood of 50,000 distinct spoofed IPv4 sources and IPv6 networks, each sending a request or a bad one.
	for i := range 50_000 {
		var ip netip.Addr
		if i%2 == 0 {
			ip = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		} else {
			ip = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i), 15: 1})
		}
		if i%3 == 0 {
			g.Bad(ip, ReasonBadRequest)
		} else {
			g.Check(ip, Dispatch)
		}
		if i%1000 == 0 {
			clk.Advance(time.Millisecond)
			if n := g.Tracked(); n > max {
				t.Fatalf("%d keys tracked after %d sources, max %d", n, i+1, max)
			}
		}
	}
	if n := g.Tracked(); n > max || n < max/2 {
		t.Fatalf("%d keys tracked, want at most %d (and the table used)", n, max)
	}
	// The block survived the flood: blocked keys are evicted last.
	if d := g.Check(attacker, Dispatch); d.Verdict != Blocked {
		t.Fatalf("attacker after the flood: %+v", d)
	}
	if d := g.Check(victim, Dispatch); !d.Allowed() {
		t.Fatalf("victim after the flood: %+v", d)
	}
}

func TestSweep(t *testing.T) {
	g, clk, log := newTestGuard(t, Config{Dispatch: Limit{Rate: 10, Burst: 10}, BadThreshold: 2, BlockFor: time.Minute})
	g.Check(victim, Dispatch)
	g.Bad(attacker, ReasonBadRequest)
	g.Bad(attacker, ReasonBadRequest)
	g.Bad(netip.MustParseAddr("192.0.2.1"), ReasonBadRequest)
	g.sweep()
	if n := g.Tracked(); n != 3 {
		t.Fatalf("%d keys after an early sweep, want 3", n)
	}
	clk.Advance(200 * time.Millisecond) // the victim's bucket is full again
	g.sweep()
	if n := g.Tracked(); n != 2 {
		t.Fatalf("%d keys, want 2 (the victim is at rest)", n)
	}
	clk.Advance(time.Minute) // the block is over, the bad request out of the window
	g.sweep()
	if n := g.Tracked(); n != 0 {
		t.Fatalf("%d keys, want 0", n)
	}
	if evs := log.of(EventUnblock); len(evs) != 1 || evs[0].Reason != "expired" || evs[0].Prefix != g.Key(attacker) {
		t.Fatalf("unblock events %+v", evs)
	}
}

func TestSummaries(t *testing.T) {
	g, _, log := newTestGuard(t, Config{Dispatch: Limit{Rate: 1, Burst: 1}, BadThreshold: 1, MaxSummaries: 2})
	for i := range 4 {
		ip := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		for range 10 * (i + 1) {
			g.Check(ip, Dispatch) // 1 allowed, 10(i+1)-1 limited
		}
	}
	g.Bad(attacker, ReasonBadRequest)
	for range 7 {
		g.Check(attacker, Message)
	}
	g.summarize()
	got := log.of(EventRateLimited)
	if len(got) != 3 {
		t.Fatalf("rate_limited events %+v, want 2 keys and an aggregate", got)
	}
	if got[0].Prefix.String() != "192.0.2.3/32" || got[0].Count != 39 || got[0].Class != "dispatch" ||
		got[1].Prefix.String() != "192.0.2.2/32" || got[1].Count != 29 {
		t.Fatalf("top summaries %+v", got[:2])
	}
	if got[2].Prefix.IsValid() || got[2].Count != 19+9 || got[2].Keys != 2 {
		t.Fatalf("aggregate %+v", got[2])
	}
	if b := log.of(EventBlockedRequests); len(b) != 1 || b[0].Count != 7 || b[0].Prefix != g.Key(attacker) {
		t.Fatalf("blocked_requests events %+v", b)
	}
	// Counters were reset: a quiet interval reports nothing.
	n := len(log.evs)
	g.summarize()
	if len(log.evs) != n {
		t.Fatal("a quiet interval produced events")
	}
}

func TestConcurrent(t *testing.T) {
	const (
		goroutines = 8
		perG       = 2000
		burst      = 500
	)
	// big tracks every key; small (4 keys per shard) evicts all the time.
	big, _, log := newTestGuard(t, Config{Dispatch: Limit{Rate: 1000, Burst: burst}, BadThreshold: 50, Store: &MemStore{}})
	small, _, _ := newTestGuard(t, Config{MaxTracked: 256, BadThreshold: 5, Store: &MemStore{}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- big.Run(ctx) }()
	go func() { done <- small.Run(ctx) }()
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for w := range goroutines {
		wg.Go(func() {
			for i := range perG {
				// Everyone hammers the victim's bucket; keys churn; some report bad requests.
				if big.Check(victim, Dispatch).Allowed() {
					allowed.Add(1)
				}
				ip := netip.AddrFrom4([4]byte{10, 0, byte(w), byte(i)})
				bad := netip.AddrFrom4([4]byte{10, 1, 0, byte(i % 8)})
				for _, g := range []*Guard{big, small} {
					g.Check(ip, Message)
					if i%4 == 0 {
						g.Bad(bad, ReasonInvalidToken)
					}
					if i%500 == 0 {
						g.Tracked()
						g.summarize()
						g.sweep()
						g.Unblock(ctx, ip)
					}
				}
			}
		})
	}
	wg.Wait()
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// The clock did not move: exactly one burst was served, however the goroutines interleaved.
	if n := allowed.Load(); n != burst {
		t.Fatalf("%d requests allowed from one key, want exactly the burst %d", n, burst)
	}
	if n := small.Tracked(); n > 256 {
		t.Fatalf("%d keys tracked, max 256", n)
	}
	if len(log.of(EventBlock)) == 0 {
		t.Fatal("no block under concurrent bad requests")
	}
}

func TestRunTwice(t *testing.T) {
	g, _, _ := newTestGuard(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- g.Run(ctx) }()
	// Run's flag is set synchronously before it blocks; poll for it rather than sleep.
	for !g.running.Load() {
		time.Sleep(time.Millisecond)
	}
	if err := g.Run(ctx); err == nil {
		t.Fatal("a second Run succeeded")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
