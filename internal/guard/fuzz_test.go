package guard

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// FuzzClientIP checks ClientIP against a plain model (split, trim, walk right to left through trusted proxies),
// and that the header is ignored from an untrusted peer.
func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.1:80", "198.51.100.1, 10.2.2.2")
	f.Add("192.0.2.1:80", "198.51.100.1")
	f.Add("[fd00::1]:80", " , [2001:db8::1]:4, ::ffff:10.0.0.3,unknown")
	f.Add("10.0.0.1:80", "10.0.0.2,,10.0.0.3")
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	g, err := New(Config{TrustedProxies: proxies})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", xff)
		got := g.ClientIP(r)
		peer := parseHost(remote)
		if !contains(g.proxies, peer) {
			if got != peer {
				t.Fatalf("untrusted peer %v: ClientIP %v", peer, got)
			}
			return
		}
		// A plain model: walk the hops right to left from the peer, through trusted proxies only.
		want := peer
		hops := strings.Split(xff, ",")
	walk:
		for i := len(hops) - 1; i >= 0; i-- {
			h := strings.TrimSpace(hops[i])
			if h == "" {
				continue
			}
			a := parseHost(h)
			switch {
			case !a.IsValid():
				break walk
			case !contains(g.proxies, a):
				want = a
				break walk
			}
			want = a
		}
		if got != want {
			t.Fatalf("peer %v, X-Forwarded-For %q: ClientIP %v, want %v", peer, xff, got, want)
		}
		if got != peer && !strings.Contains(xff, ",") && parseHost(strings.TrimSpace(xff)) != got {
			t.Fatalf("ClientIP %v is not the only hop %q", got, xff)
		}
	})
}
