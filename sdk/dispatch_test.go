package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func dispatchConfig(urls ...string) *Config {
	cfg := Config{URL: urls[0], URLs: urls[1:], AppID: testAppID, Channel: testChannel, UID: "42",
		Token: "007-dispatch-secret", Secret: testSecret(1), Region: "eu"}.withDefaults()
	cfg.RequestTimeout = 5 * time.Second
	return &cfg
}

const goodAnswer = `{"region":"eu","edges":[{"id":"e1","region":"eu","url":"wss://e1.example/v1/signal"},` +
	`{"id":"e2","region":"eu","url":"ws://127.0.0.1:1/v1/signal"},{"id":"e3","region":"eu","url":"ws://e3.example/v1/signal"}],"ticket":"T"}`

func TestDispatch(t *testing.T) {
	var got dispatchRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/dispatch" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Error(err)
		}
		fmt.Fprint(w, goodAnswer)
	}))
	defer srv.Close()
	ans, err := dispatch(context.Background(), srv.Client(), dispatchConfig(srv.URL+"/"), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if got != (dispatchRequest{AppID: testAppID, Channel: testChannel, UID: "42", Token: "007-dispatch-secret", Region: "eu"}) {
		t.Errorf("request %+v", got)
	}
	// ws:// to a host that is not loopback is dropped: the token must not cross the network in the clear.
	if ans.Region != "eu" || ans.Ticket != "T" || len(ans.Edges) != 2 || ans.Edges[0].ID != "e1" || ans.Edges[1].ID != "e2" {
		t.Errorf("answer %+v", ans)
	}
}

func TestDispatchFallbackAndErrors(t *testing.T) {
	var hits [4]atomic.Int32
	handler := func(i int, status int, body string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			w.WriteHeader(status)
			fmt.Fprint(w, body)
		}))
	}
	unavailable := handler(0, http.StatusServiceUnavailable, `{"error":{"code":"shutting_down","message":"draining"}}`)
	defer unavailable.Close()
	good := handler(1, http.StatusOK, goodAnswer)
	defer good.Close()
	refusing := handler(2, http.StatusUnauthorized, `{"error":{"code":"invalid_token","message":"bad signature"}}`)
	defer refusing.Close()
	garbage := handler(3, http.StatusOK, `<html>`)
	defer garbage.Close()
	// A port nothing listens on.
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	ctx := context.Background()
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	log := testLogger(t)

	// Unreachable, then 503, then an unusable body, then a good one.
	ans, err := dispatch(ctx, hc, dispatchConfig(closedURL, unavailable.URL, garbage.URL, good.URL), log)
	if err != nil || ans.Ticket != "T" {
		t.Fatalf("dispatch = %+v, %v", ans, err)
	}
	if hits[0].Load() != 1 || hits[3].Load() != 1 || hits[1].Load() != 1 {
		t.Errorf("hits %d %d %d", hits[0].Load(), hits[3].Load(), hits[1].Load())
	}

	// A definite refusal stops at once, with the dispatcher's code.
	_, err = dispatch(ctx, hc, dispatchConfig(refusing.URL, good.URL), log)
	var se *Error
	if !errors.As(err, &se) || se.Code != CodeInvalidToken || se.Status != 401 || se.Message != "bad signature" || se.Op != "dispatch" {
		t.Fatalf("refusal: %v", err)
	}
	if hits[1].Load() != 1 {
		t.Error("the next entry URL was tried after a definite refusal")
	}
	if !final(err) {
		t.Error("invalid_token is not final")
	}

	// Every URL failing: the error says so and keeps the codes.
	_, err = dispatch(ctx, hc, dispatchConfig(closedURL, unavailable.URL), log)
	if !errors.As(err, &se) || se.Code != CodeShuttingDown || se.Status != 503 || !strings.Contains(err.Error(), "every entry URL failed") {
		t.Fatalf("all failing: %v", err)
	}
	if final(err) {
		t.Error("a 503 is final")
	}
	for _, e := range []error{err} {
		if strings.Contains(e.Error(), "007-dispatch-secret") {
			t.Error("the token appears in an error")
		}
	}

	// An error body that is not JSON still gives a code.
	plain := handler(0, http.StatusTooManyRequests, "slow down")
	defer plain.Close()
	_, err = dispatch(ctx, hc, dispatchConfig(plain.URL), log)
	if !errors.As(err, &se) || se.Code != CodeRateLimited || final(err) {
		t.Errorf("429: %v", err)
	}
}

func TestDispatchNoUsableEdge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"region":"eu","edges":[{"id":"e1","url":"ws://edge.example/v1/signal"},{"id":"e2","url":"http://x/"}],"ticket":"T"}`)
	}))
	defer srv.Close()
	_, err := dispatch(context.Background(), srv.Client(), dispatchConfig(srv.URL), testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "no usable edge URL") {
		t.Fatalf("err = %v", err)
	}
	cfg := dispatchConfig(srv.URL)
	cfg.Insecure = true
	if ans, err := dispatch(context.Background(), srv.Client(), cfg, testLogger(t)); err != nil || len(ans.Edges) != 1 {
		t.Fatalf("Insecure: %+v, %v", ans, err)
	}
}

func TestConfigValidate(t *testing.T) {
	err := (&Config{URL: "http://rtc.example.com", Channel: "bad\nname", Token: strings.Repeat("x", 5000),
		Secret: testSecret(1).Clone()}).validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"http:// only to loopback", "AppID is required", "Channel", "UID", "Token is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %q missing from %v", want, err)
		}
	}
	// No secret: E2EE is not optional.
	cfg := Config{URL: "https://rtc.example.com", AppID: "a", Channel: "c", UID: "1", Token: "t"}.withDefaults()
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "Secret is required") {
		t.Errorf("no secret: %v", err)
	}
	cfg.Secret = testSecret(1)
	if err := cfg.validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	for _, u := range []string{"http://127.0.0.1:8080", "http://localhost", "http://[::1]:1", "https://x.example"} {
		if err := checkURL(u, "https", "http", false); err != nil {
			t.Errorf("checkURL(%s): %v", u, err)
		}
	}
	for _, u := range []string{"http://10.0.0.1", "ftp://x", "https://", "::"} {
		if err := checkURL(u, "https", "http", false); err == nil {
			t.Errorf("checkURL(%s) accepted", u)
		}
	}
}

func TestConfigRedacts(t *testing.T) {
	cfg := Config{URL: "https://x", AppID: "a", Channel: "c", UID: "1", Token: "007-very-secret", Secret: testSecret(1)}
	log, logs := captureLogs(t)
	log.Info("config", "cfg", cfg)
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%v", &cfg), logs.String()} {
		if strings.Contains(s, "007-very-secret") || strings.Contains(s, "\x01\x01\x01") {
			t.Errorf("secret printed: %s", s)
		}
	}
}
