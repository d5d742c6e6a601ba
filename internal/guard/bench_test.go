package guard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// benchGuard returns a Guard on the real clock whose Dispatch limit never refuses.
func benchGuard(b *testing.B, cfg Config) *Guard {
	b.Helper()
	if cfg.Dispatch == (Limit{}) {
		cfg.Dispatch = Limit{Rate: 1e9, Burst: 1e9}
	}
	g, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return g
}

func BenchmarkCheck(b *testing.B) {
	remoteBlocked := netip.MustParseAddr("198.51.100.1")
	for _, bc := range []struct {
		name  string
		store bool
		ip    netip.Addr
		setup func(*Guard)
		want  Verdict
	}{
		{"allowed", false, victim, nil, Allow},
		{"allowed/store", true, victim, nil, Allow},
		{"limited", false, attacker, func(g *Guard) {
			g.limits[Dispatch] = gcra{interval: int64(time.Hour), tau: int64(time.Hour)}
			g.Check(attacker, Dispatch)
		}, Limited},
		{"blocked/local", false, attacker, func(g *Guard) {
			for range g.cfg.BadThreshold {
				g.Bad(attacker, ReasonInvalidToken)
			}
		}, Blocked},
		{"blocked/region", true, remoteBlocked, func(g *Guard) {
			g.store.PutBlock(context.Background(), Block{Prefix: g.Key(remoteBlocked), Until: time.Now().Add(time.Hour), Reason: "x"})
		}, Blocked},
		{"allowlisted", false, netip.MustParseAddr("10.0.0.1"), func(g *Guard) { g.allow = normalizePrefixes([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}) }, Allow},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := Config{}
			if bc.store {
				cfg.Store = &MemStore{}
			}
			g := benchGuard(b, cfg)
			if bc.setup != nil {
				bc.setup(g)
			}
			if d := g.Check(bc.ip, Dispatch); d.Verdict != bc.want {
				b.Fatalf("%+v, want %v", d, bc.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				g.Check(bc.ip, Dispatch)
			}
		})
	}
}

// BenchmarkCheckParallel checks from many goroutines, each its own client address.
func BenchmarkCheckParallel(b *testing.B) {
	g := benchGuard(b, Config{Store: &MemStore{}})
	var next uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		next++
		ip := netip.AddrFrom4([4]byte{10, 0, byte(next >> 8), byte(next)})
		for pb.Next() {
			g.Check(ip, Dispatch)
		}
	})
}

// BenchmarkCheckNewKeys checks a new address every time with the table full: an insertion and an eviction per
// request, as under a flood of spoofed sources.
func BenchmarkCheckNewKeys(b *testing.B) {
	g := benchGuard(b, Config{MaxTracked: 4096})
	i := uint32(0)
	b.ReportAllocs()
	for b.Loop() {
		i++
		g.Check(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Dispatch)
	}
}

// BenchmarkBad scores bad requests from 256 keys without reaching the threshold.
func BenchmarkBad(b *testing.B) {
	g := benchGuard(b, Config{BadWindow: time.Nanosecond})
	var ips [256]netip.Addr
	for i := range ips {
		ips[i] = netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
		g.Bad(ips[i], ReasonInvalidToken)
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		if g.Bad(ips[i%len(ips)], ReasonInvalidToken) {
			b.Fatal("blocked")
		}
	}
}

// discardWriter is a reusable http.ResponseWriter.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkMiddlewareBlocked is the cost of refusing a blocked client's request over HTTP, net/http excluded.
func BenchmarkMiddlewareBlocked(b *testing.B) {
	g := benchGuard(b, Config{})
	for range g.cfg.BadThreshold {
		g.Bad(attacker, ReasonInvalidToken)
	}
	h := g.Middleware(Dispatch, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { b.Fatal("reached") }))
	r := httptest.NewRequest("POST", "/v1/dispatch", nil)
	r.RemoteAddr = "127.0.0.2:4444"
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, r)
	}
}
