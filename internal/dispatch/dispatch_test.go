package dispatch

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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
