package guard

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestClientIP(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("::ffff:172.16.0.0/108")}
	for _, tc := range []struct {
		name    string
		proxies []netip.Prefix
		remote  string
		xff     []string
		want    string // "" for the zero Addr
	}{
		{"remote", nil, "192.0.2.1:4321", nil, "192.0.2.1"},
		{"remote v6", nil, "[2001:db8::1]:4321", nil, "2001:db8::1"},
		{"remote v6 zone", nil, "[fe80::1%eth0]:4321", nil, "fe80::1"},
		{"remote mapped", nil, "[::ffff:192.0.2.1]:4321", nil, "192.0.2.1"},
		{"remote without port", nil, "192.0.2.1", nil, "192.0.2.1"},
		{"unix socket", nil, "@", nil, ""},
		{"xff ignored by default", nil, "192.0.2.1:1", []string{"198.51.100.1"}, "192.0.2.1"},
		{"xff ignored from untrusted peer", proxies, "192.0.2.1:1", []string{"198.51.100.1"}, "192.0.2.1"},
		{"trusted proxy", proxies, "10.0.0.1:1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"proxy chain", proxies, "10.0.0.1:1", []string{"198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"client's forged hops are ignored", proxies, "10.0.0.1:1", []string{"6.6.6.6, 10.1.1.1, 198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"several header lines", proxies, "10.0.0.1:1", []string{"6.6.6.6", "198.51.100.1,10.2.2.2"}, "198.51.100.1"},
		{"spaces and empty hops", proxies, "10.0.0.1:1", []string{" 198.51.100.1 ,, 10.2.2.2 "}, "198.51.100.1"},
		{"hop with port", proxies, "10.0.0.1:1", []string{"198.51.100.1:5555"}, "198.51.100.1"},
		{"v6 hop with port", proxies, "10.0.0.1:1", []string{"[2001:db8::7]:5555"}, "2001:db8::7"},
		{"mapped proxy and client", proxies, "[::ffff:172.16.0.9]:1", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"v6 proxy", proxies, "[fd00::1]:1", []string{"2001:db8::9"}, "2001:db8::9"},
		{"only proxies", proxies, "10.0.0.1:1", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3"},
		{"no header", proxies, "10.0.0.1:1", nil, "10.0.0.1"},
		{"garbage from a proxy", proxies, "10.0.0.1:1", []string{"198.51.100.1, unknown"}, "10.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, _, _ := newTestGuard(t, Config{TrustedProxies: tc.proxies})
			r := httptest.NewRequest("POST", "/v1/dispatch", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got := g.ClientIP(r)
			if tc.want == "" {
				if got.IsValid() {
					t.Fatalf("ClientIP = %v, want none", got)
				}
				return
			}
			if got != netip.MustParseAddr(tc.want) {
				t.Fatalf("ClientIP = %v, want %s", got, tc.want)
			}
		})
	}
}

func TestMiddleware(t *testing.T) {
	g, clk, _ := newTestGuard(t, Config{Dispatch: Limit{Rate: 1, Burst: 2}, BadThreshold: 3})
	reached := 0
	h := g.Middleware(Dispatch, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		if r.URL.Query().Get("token") != "good" {
			ReportBad(r, ReasonInvalidToken)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	type step struct {
		remote     string
		query      string
		advance    time.Duration
		status     int
		retryAfter string
		code       string
		reached    bool
	}
	const a, v = "127.0.0.2:1000", "127.0.0.3:1000"
	for i, s := range []step{
		{remote: a, query: "good", status: 200, reached: true},
		{remote: a, query: "good", status: 200, reached: true},
		{remote: a, query: "good", status: 429, retryAfter: "1", code: "rate_limited"},
		{remote: v, query: "good", status: 200, reached: true},
		{remote: a, query: "good", advance: time.Second, status: 200, reached: true},
		{remote: a, query: "bad", advance: 10 * time.Second, status: 401, reached: true},
		{remote: a, query: "bad", status: 401, reached: true},
		{remote: a, query: "bad", advance: time.Second, status: 401, reached: true}, // the third blocks
		{remote: a, query: "good", status: 403, retryAfter: "600", code: "blocked"},
		{remote: v, query: "good", status: 200, reached: true},
		{remote: a, query: "good", advance: 9*time.Minute + 30*time.Second, status: 403, retryAfter: "30", code: "blocked"},
		{remote: a, query: "good", advance: 30 * time.Second, status: 200, reached: true},
	} {
		clk.Advance(s.advance)
		before := reached
		r := httptest.NewRequest("POST", "/v1/dispatch?token="+s.query, strings.NewReader("{}"))
		r.RemoteAddr = s.remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != s.status {
			t.Fatalf("step %d: status %d, want %d", i, w.Code, s.status)
		}
		if got := reached > before; got != s.reached {
			t.Fatalf("step %d: handler reached %v, want %v", i, got, s.reached)
		}
		if s.code == "" {
			continue
		}
		if got := w.Header().Get("Retry-After"); got != s.retryAfter {
			t.Fatalf("step %d: Retry-After %q, want %q", i, got, s.retryAfter)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("step %d: Content-Type %q", i, ct)
		}
		var body struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		d := json.NewDecoder(w.Body)
		d.DisallowUnknownFields()
		if err := d.Decode(&body); err != nil {
			t.Fatalf("step %d: body: %v", i, err)
		}
		if body.Error.Code != s.code || body.Error.Message == "" {
			t.Fatalf("step %d: body %+v, want code %q", i, body, s.code)
		}
	}
}

func TestReportBadWithoutMiddleware(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	if ReportBad(r, ReasonBadRequest) {
		t.Fatal("ReportBad without the middleware reported a block")
	}
	if FromContext(r.Context()) != nil {
		t.Fatal("FromContext without the middleware")
	}
}

func TestWriteDenied(t *testing.T) {
	for _, tc := range []struct {
		d      Decision
		status int
		retry  string
		body   string
	}{
		{Decision{Verdict: Limited, RetryAfter: 20 * time.Millisecond}, 429, "1", `"code":"rate_limited"`},
		{Decision{Verdict: Limited, RetryAfter: 2500 * time.Millisecond}, 429, "3", `"code":"rate_limited"`},
		{Decision{Verdict: Blocked, RetryAfter: 10 * time.Minute, Reason: "invalid_token"}, 403, "600", `"code":"blocked"`},
	} {
		w := httptest.NewRecorder()
		WriteDenied(w, tc.d)
		if w.Code != tc.status || w.Header().Get("Retry-After") != tc.retry || !strings.Contains(w.Body.String(), tc.body) {
			t.Errorf("%+v: %d %q %s", tc.d, w.Code, w.Header().Get("Retry-After"), w.Body)
		}
		if strings.Contains(w.Body.String(), "invalid_token") {
			t.Errorf("the body tells the reason of the block: %s", w.Body)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Errorf("invalid JSON %s", w.Body)
		}
	}
}
