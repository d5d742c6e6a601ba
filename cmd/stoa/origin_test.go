package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stoa-rtc/stoa/token"
)

// TestDevOrigins checks what browsers see of stoa dev: the dispatcher answers CORS preflights and requests of its
// own origin and of --allow-origin ones only, and the edges accept signaling WebSockets from those origins only.
func TestDevOrigins(t *testing.T) {
	const other = "https://app.example.com"
	d := startDev(t, "--allow-origin", other)
	port := d.url[strings.LastIndex(d.url, ":"):]
	allowed := []string{d.url, "http://localhost" + port, other}
	const evil = "https://evil.example.com"

	for _, origin := range append(allowed, evil) {
		req, _ := http.NewRequest(http.MethodOptions, d.url+"/v1/dispatch", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ok := origin != evil
		if got := resp.Header.Get("Access-Control-Allow-Origin"); (got == origin) != ok || (resp.StatusCode == http.StatusNoContent) != ok {
			t.Errorf("preflight from %s: %d, Access-Control-Allow-Origin %q", origin, resp.StatusCode, got)
		}
	}

	tok, err := token.BuildRTC(d.appCert, token.RTCOptions{AppID: d.appID, Channel: "cors", UID: "1", Expire: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"app_id": d.appID, "channel": "cors", "uid": "1", "token": tok})
	req, _ := http.NewRequest(http.MethodPost, d.url+"/v1/dispatch", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", d.url)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Edges []struct{ URL string } }
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != d.url || len(got.Edges) == 0 {
		t.Fatalf("dispatch from the dev origin: %d %v %+v", resp.StatusCode, resp.Header, got)
	}

	dial := func(origin string) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, got.Edges[0].URL, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
		if err != nil {
			if resp == nil {
				return 0, err
			}
			return resp.StatusCode, nil
		}
		c.Close(websocket.StatusNormalClosure, "")
		return http.StatusSwitchingProtocols, nil
	}
	for _, origin := range append(allowed, evil) {
		code, err := dial(origin)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: http.StatusSwitchingProtocols, false: http.StatusForbidden}[origin != evil]; code != want {
			t.Errorf("WebSocket from %s: status %d, want %d", origin, code, want)
		}
	}
}

func TestAllowOriginFlag(t *testing.T) {
	for _, role := range []string{"edge", "dispatch", "dev"} {
		code, _, errOut := stoa(t, role, "--allow-origin", "app.example.com")
		if code != 2 || !strings.Contains(errOut, "--allow-origin") {
			t.Errorf("stoa %s --allow-origin app.example.com: exit %d, %s", role, code, errOut)
		}
	}
}

// TestDemoToken: dev's demo token endpoint signs tokens of the demo project for loopback clients only.
func TestDemoToken(t *testing.T) {
	proj := devProject{AppID: strings.Repeat("a", 32), AppCert: strings.Repeat("b", 32)}
	h := demoToken(proj)
	get := func(remote, query string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/demo/token?"+query, nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	w := get("127.0.0.1:5000", "channel=demo&uid=ada")
	var got struct{ AppID, Token string }
	json.NewDecoder(w.Body).Decode(&got)
	if w.Code != http.StatusOK {
		t.Fatalf("loopback: %d", w.Code)
	}
	v := token.NewVerifier()
	v.SetCertificates(proj.AppID, proj.AppCert)
	if _, err := v.Verify(got.Token, token.Expect{AppID: proj.AppID, Channel: "demo", UID: "ada"}); err != nil {
		t.Errorf("the demo token does not verify: %v", err)
	}
	if w := get("192.0.2.1:5000", "channel=demo&uid=ada"); w.Code != http.StatusForbidden {
		t.Errorf("another machine: %d", w.Code)
	}
	if w := get("[::1]:5000", "channel=&uid=ada"); w.Code != http.StatusBadRequest {
		t.Errorf("empty channel: %d", w.Code)
	}
}
