package dispatch

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/guard"
	"github.com/stoa-rtc/stoa/token"
)

const (
	app  = "0123456789abcdef0123456789abcdef"
	cert = "fedcba9876543210fedcba9876543210"
)

func TestDispatch(t *testing.T) {
	v := token.NewVerifier()
	v.SetCertificates(app, cert)
	edges := []Edge{{ID: "e1", Region: "local", URL: "ws://127.0.0.1:1/v1/signal"}}
	srv := httptest.NewServer(&Handler{Verifier: v, Edges: func(Request) (string, []Edge, error) { return "local", edges, nil }})
	defer srv.Close()
	tok, err := token.BuildRTC(cert, token.RTCOptions{AppID: app, Channel: "c", UID: "1", Expire: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	body := func(s string) *strings.Reader { return strings.NewReader(s) }
	ok := `{"app_id":"` + app + `","channel":"c","uid":"1","token":"` + tok + `"}`

	resp, err := http.Post(srv.URL, "application/json", body(ok))
	if err != nil {
		t.Fatal(err)
	}
	var got Response
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if resp.StatusCode != 200 || got.Region != "local" || len(got.Edges) != 1 || got.Edges[0].ID != "e1" {
		t.Fatalf("dispatch = %d %+v", resp.StatusCode, got)
	}

	for _, tc := range []struct {
		name, method, body string
		status             int
		code               string
	}{
		{"get", http.MethodGet, "", 405, "method_not_allowed"},
		{"not json", http.MethodPost, "{", 400, "bad_request"},
		{"unknown field", http.MethodPost, `{"app_id":"a","x":1}`, 400, "bad_request"},
		{"no channel", http.MethodPost, `{"app_id":"` + app + `","uid":"1","token":"` + tok + `"}`, 400, "bad_request"},
		{"huge", http.MethodPost, `{"token":"` + strings.Repeat("A", 10000) + `"}`, 413, "body_too_large"},
		{"bad token", http.MethodPost, strings.Replace(ok, tok, "007AAAA", 1), 401, "invalid_token"},
		{"wrong channel", http.MethodPost, strings.Replace(ok, `"channel":"c"`, `"channel":"d"`, 1), 403, "channel_mismatch"},
		{"wrong uid", http.MethodPost, strings.Replace(ok, `"uid":"1"`, `"uid":"2"`, 1), 403, "uid_mismatch"},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL, body(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var eb ErrorBody
		json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if resp.StatusCode != tc.status || eb.Error.Code != tc.code {
			t.Errorf("%s: %d %q, want %d %q", tc.name, resp.StatusCode, eb.Error.Code, tc.status, tc.code)
		}
		if strings.Contains(eb.Error.Message, tok) {
			t.Errorf("%s: the token appears in the error", tc.name)
		}
	}
}

// A request that names no region is placed by its client's address: the connection's, or what a trusted proxy
// says; a request that names one keeps it.
func TestDispatchRegionMap(t *testing.T) {
	v := token.NewVerifier()
	v.SetCertificates(app, cert)
	m, err := ParseRegionMap([]byte("127.0.0.0/8 us\n192.0.2.0/24 ap\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{Verifier: v, RegionMap: m, Edges: func(req Request) (string, []Edge, error) {
		return req.Region, []Edge{{ID: "e1", Region: req.Region, URL: "ws://127.0.0.1:1/v1/signal"}}, nil
	}}
	tok, err := token.BuildRTC(cert, token.RTCOptions{AppID: app, Channel: "c", UID: "1", Expire: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	regionOf := func(url, region, forwarded string) string {
		t.Helper()
		body, _ := json.Marshal(Request{AppID: app, Channel: "c", UID: "1", Token: tok, Region: region})
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
		if forwarded != "" {
			req.Header.Set("X-Forwarded-For", forwarded)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got Response
		json.NewDecoder(resp.Body).Decode(&got)
		return got.Region
	}
	plain := httptest.NewServer(h)
	defer plain.Close()
	if got := regionOf(plain.URL, "", ""); got != "us" {
		t.Errorf("from 127.0.0.1: region %q, want us", got)
	}
	if got := regionOf(plain.URL, "eu", ""); got != "eu" {
		t.Errorf("naming eu: region %q", got)
	}
	// Behind the guard, X-Forwarded-For counts only from a trusted proxy.
	for _, c := range []struct {
		trusted []netip.Prefix
		want    string
	}{
		{nil, "us"},
		{[]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, "ap"},
	} {
		cfg := guard.Default()
		cfg.TrustedProxies = c.trusted
		g, err := guard.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(g.Middleware(guard.Dispatch, h))
		if got := regionOf(srv.URL, "", "192.0.2.7"); got != c.want {
			t.Errorf("trusted %v, forwarded for 192.0.2.7: region %q, want %q", c.trusted, got, c.want)
		}
		srv.Close()
	}
}
