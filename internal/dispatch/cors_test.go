package dispatch

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseOrigins(t *testing.T) {
	got, err := ParseOrigins(" https://App.example.com , *, http://127.0.0.1:8080,https://*.example.org,")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "https://app.example.com * http://127.0.0.1:8080 https://*.example.org" {
		t.Errorf("ParseOrigins = %q", got)
	}
	for _, bad := range []string{"example.com", "ftp://example.com", "https://example.com/", "https://example.com/app",
		"https://", "https://a.example.com?x", "https://u@example.com", "https://[.example.com"} {
		if _, err := ParseOrigins(bad); err == nil {
			t.Errorf("ParseOrigins(%q) accepted", bad)
		}
	}
}

func TestOriginsAllows(t *testing.T) {
	o, _ := ParseOrigins("https://app.example.com,https://*.example.org")
	for origin, want := range map[string]bool{
		"https://app.example.com":     true,
		"https://APP.example.com":     true,
		"http://app.example.com":      false,
		"https://app.example.com:444": false,
		"https://a.example.org":       true,
		"https://a.b.example.org":     true, // path.Match's * spans dots: any depth of subdomain
		"https://evil.com":            false,
		"null":                        false,
	} {
		if o.Allows(origin) != want {
			t.Errorf("Allows(%q) = %v", origin, !want)
		}
	}
	if Origins(nil).Allows("https://app.example.com") {
		t.Error("no origins allow one")
	}
	if !(Origins{"*"}).Allows("null") {
		t.Error("* allows every origin")
	}
}

func TestCORS(t *testing.T) {
	o, _ := ParseOrigins("https://app.example.com")
	calls := 0
	h := CORS(o, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.WriteHeader(http.StatusTeapot)
	}))
	do := func(method, origin string, preflight bool) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/v1/dispatch", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		if preflight {
			r.Header.Set("Access-Control-Request-Method", "POST")
			r.Header.Set("Access-Control-Request-Headers", "content-type")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}

	w := do(http.MethodOptions, "https://app.example.com", true)
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		w.Header().Get("Access-Control-Allow-Methods") != "POST" ||
		!strings.EqualFold(w.Header().Get("Access-Control-Allow-Headers"), "Content-Type") || calls != 0 {
		t.Errorf("allowed preflight: %d %v (handler called %d times)", w.Code, w.Header(), calls)
	}
	if w := do(http.MethodOptions, "https://evil.example.com", true); w.Code != http.StatusForbidden ||
		w.Header().Get("Access-Control-Allow-Origin") != "" || calls != 0 {
		t.Errorf("refused preflight: %d %v", w.Code, w.Header())
	}
	if w := do(http.MethodPost, "https://app.example.com", false); w.Code != http.StatusTeapot ||
		w.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" || w.Header().Get("Vary") != "Origin" {
		t.Errorf("allowed POST: %d %v", w.Code, w.Header())
	}
	if w := do(http.MethodPost, "https://evil.example.com", false); w.Code != http.StatusTeapot ||
		w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin's POST: %d %v", w.Code, w.Header())
	}
	if w := do(http.MethodPost, "", false); w.Code != http.StatusTeapot || len(w.Header()) != 0 {
		t.Errorf("POST without Origin: %d %v", w.Code, w.Header())
	}
	// An OPTIONS that is not a preflight goes to the handler, which refuses the method.
	if calls = 0; do(http.MethodOptions, "https://app.example.com", false).Code != http.StatusTeapot || calls != 1 {
		t.Error("plain OPTIONS did not reach the handler")
	}
}

// FuzzParseOrigins checks that every accepted origin list re-parses to itself and that each entry without
// wildcards allows exactly itself.
func FuzzParseOrigins(f *testing.F) {
	for _, s := range []string{"*", "https://a.example.com", "http://127.0.0.1:1,https://*.x.org", "https://[::1]:8443", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseOrigins(s)
		if err != nil {
			return
		}
		again, err := ParseOrigins(strings.Join(o, ","))
		if err != nil || strings.Join(again, ",") != strings.Join(o, ",") {
			t.Fatalf("%q parsed to %q, which re-parses to %q, %v", s, o, again, err)
		}
		for _, p := range o {
			if !strings.ContainsAny(p, `*?[\`) && !o.Allows(p) {
				t.Fatalf("%q does not allow itself", p)
			}
		}
	})
}
