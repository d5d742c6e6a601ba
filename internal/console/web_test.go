package console

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stoa-rtc/stoa/internal/store/storetest"
)

// page fetches a UI page as c without following redirects.
func (c *client) page(path string) resp {
	c.e.t.Helper()
	req, _ := http.NewRequest("GET", c.e.srv.URL+path, nil)
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: c.cookie})
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := hc.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, raw: string(raw)}
}

func TestWebPages(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		anon := &client{e: e}
		// Without a session, pages send the browser to the login page, which remembers where it was going.
		r := anon.page("/console/projects")
		if r.status != http.StatusSeeOther || r.header.Get("Location") != "/console/login?next=%2Fconsole%2Fprojects" {
			t.Fatalf("anonymous /console/projects = %d %q", r.status, r.header.Get("Location"))
		}
		r = anon.page("/console/login")
		if r.status != 200 || !strings.Contains(r.raw, `data-api="/api/v1/login"`) {
			t.Fatalf("login page = %d %s", r.status, r.raw)
		}
		for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "Referrer-Policy"} {
			if r.header.Get(h) == "" {
				t.Errorf("login page lacks %s", h)
			}
		}
		if strings.Contains(r.raw, `name="csrf-token"`) {
			t.Error("an anonymous page carries a CSRF token")
		}

		a := e.signup("a@example.com")
		evil := `<script>alert(1)</script>`
		pr := a.must(201, "POST", "/api/v1/projects", map[string]string{"name": evil})
		id, appID := fmt.Sprint(pr.body["id"]), pr.body["app_id"].(string)
		r = a.page("/console/projects")
		if r.status != 200 || !strings.Contains(r.raw, appID) || !strings.Contains(r.raw, `content="`+a.csrf+`"`) {
			t.Fatalf("projects page = %d %s", r.status, r.raw)
		}
		if strings.Contains(r.raw, evil) || !strings.Contains(r.raw, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Error("a project name is not escaped on the projects page")
		}
		for path, want := range map[string]string{
			"/console/projects/" + id:                         `id="app-id">` + appID,
			"/console/projects/" + id + "/logs":               `No event matches.`,
			"/console/projects/" + id + "/analytics?range=1h": `data-series="concurrent_users"`,
			"/console/apikeys":                                `data-api="/api/v1/apikeys"`,
			"/console/audit":                                  `project.create`,
		} {
			if r := a.page(path); r.status != 200 || !strings.Contains(r.raw, want) {
				t.Errorf("GET %s = %d, want a page with %q:\n%s", path, r.status, want, r.raw)
			}
		}
		// The project settings offer the 006 opt-in, off by default.
		if r := a.page("/console/projects/" + id); !strings.Contains(r.raw, `<input type="checkbox" name="accept_006" >`) ||
			!strings.Contains(r.raw, `id="project-006">refused`) {
			t.Errorf("project page lacks the 006 setting (unchecked):\n%s", r.raw)
		}
		// Another organisation sees none of it: the page fails as the API does.
		b := e.signup("b@example.com")
		for _, path := range []string{"/console/projects/" + id, "/console/projects/" + id + "/logs", "/console/projects/" + id + "/analytics"} {
			if r := b.page(path); r.status != http.StatusNotFound || strings.Contains(r.raw, appID) {
				t.Errorf("GET %s by another organisation = %d (shows the App ID: %v)", path, r.status, strings.Contains(r.raw, appID))
			}
		}
		if r := b.page("/console/projects"); strings.Contains(r.raw, appID) {
			t.Error("another organisation's projects page lists the project")
		}
		if r := anon.page("/console/static/app.js"); r.status != 200 || !strings.Contains(r.header.Get("Content-Type"), "javascript") {
			t.Errorf("app.js = %d %s", r.status, r.header.Get("Content-Type"))
		}
	})
}

func TestAuditChanges(t *testing.T) {
	for _, c := range []struct {
		before, after any
		want          string
	}{
		{nil, map[string]any{"name": "a", "version": 1.0}, "name: a|version: 1"},
		{map[string]any{"name": "a", "enabled": true}, map[string]any{"name": "b", "enabled": true}, "name: a → b"},
		{map[string]any{"name": "a", "role": "admin"}, map[string]any{"name": "a"}, "role: admin (removed)"},
		{map[string]any{"revoked": false}, nil, "revoked: false (removed)"},
		{"x", nil, "x → null"},
	} {
		if got := strings.Join(changes(c.before, c.after), "|"); got != c.want {
			t.Errorf("changes(%v, %v) = %q, want %q", c.before, c.after, got, c.want)
		}
	}
}

func TestChart(t *testing.T) {
	series := []any{
		map[string]any{"t": "2026-01-02T03:00:00Z", "v": 1.0},
		map[string]any{"t": "2026-01-02T03:01:00Z", "v": nil},
		map[string]any{"t": "2026-01-02T03:02:00Z", "v": 3.0},
		map[string]any{"t": "2026-01-02T03:03:00Z", "v": 2.0},
	}
	svg := string(chart("c", "Users <b>", "", points(series), false))
	for _, want := range []string{`data-series="c"`, `data-points="3"`, `data-max="3"`, `Users &lt;b&gt;`, `<circle`, `<polyline`, `03:00`, `03:03`} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q:\n%s", want, svg)
		}
	}
	// The null bucket breaks the line: one lone point (a dot) and one segment.
	if n := strings.Count(svg, "<polyline"); n != 1 {
		t.Errorf("%d polylines, want 1", n)
	}
	if svg := string(chart("e", "Empty", "", nil, true)); !strings.Contains(svg, "no data") || !strings.Contains(svg, `data-points="0"`) {
		t.Errorf("empty chart: %s", svg)
	}
	bars := string(chart("b", "Joins", "", points(series), true))
	if n := strings.Count(bars, "<rect"); n != 3 {
		t.Errorf("%d bars, want 3", n)
	}
	h := string(histogram("h", "Jitter", "ms", []any{map[string]any{"le": 5.0, "count": 2.0}, map[string]any{"le": nil, "count": 1.0}}))
	for _, want := range []string{"≤ 5 ms", "more", `data-max="2"`} {
		if !strings.Contains(h, want) {
			t.Errorf("histogram lacks %q:\n%s", want, h)
		}
	}
	for v, want := range map[float64]float64{0: 1, 0.3: 0.5, 1: 1, 3: 5, 7: 10, 12: 20, 250: 500} {
		if got := niceCeil(v); math.Abs(got-want) > 1e-9 {
			t.Errorf("niceCeil(%g) = %g, want %g", v, got, want)
		}
	}
}

// TestMuxErrorsAreJSON: unknown API paths and methods get the API's JSON errors.
func TestMuxErrorsAreJSON(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "c.db"))
	c := &client{e: e}
	r := c.do("PUT", "/api/v1/projects", map[string]string{})
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD, POST" ||
		r.header.Get("Content-Type") != "application/json" || !strings.Contains(r.raw, `"code":"method_not_allowed"`) {
		t.Errorf("PUT /api/v1/projects = %d, Allow %q, %s", r.status, r.header.Get("Allow"), r.raw)
	}
	if r := c.do("GET", "/api/v1/nothing", nil); r.status != http.StatusNotFound || !strings.Contains(r.raw, `"code":"not_found"`) {
		t.Errorf("GET /api/v1/nothing = %d %s", r.status, r.raw)
	}
}

// TestHostCheck: with Hosts set, requests naming another host (DNS rebinding) are refused before anything runs.
func TestHostCheck(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "c.db"))
	cs, err := New(Config{DB: e.db, Audit: e.cs.audit, KeyFile: e.keyFile, Hosts: []string{"127.0.0.1:7880", "Localhost:7880"}})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]int{"127.0.0.1:7880": 200, "localhost:7880": 200, "rebind.example:7880": 421, "127.0.0.1:80": 421} {
		for _, path := range []string{"/console/login", "/api/v1/openapi.json"} {
			req := httptest.NewRequest("GET", path, nil)
			req.Host = host
			rec := httptest.NewRecorder()
			cs.Handler().ServeHTTP(rec, req)
			if rec.Code != want || (want == 421 && !strings.Contains(rec.Body.String(), `"code":"unknown_host"`)) {
				t.Errorf("GET %s with Host %s = %d %s, want %d", path, host, rec.Code, rec.Body.String(), want)
			}
		}
	}
}

// TestLoginNext covers finding 8 (an open redirect after login: /console/login?next=%2F%09%2Fevil.example
// sent the browser to evil.example once logged in). The login page takes only pages of the console's UI as
// its next page.
func TestLoginNext(t *testing.T) {
	for _, tc := range []struct{ next, want string }{
		{"/console/audit", "/console/audit"},
		{"/console/projects/7/logs?type=join&channel=a%2Fb#top", "/console/projects/7/logs?type=join&channel=a%2Fb#top"},
		{"/console/%2F%2Fevil.example", "/console/%2F%2Fevil.example"}, // a path on this origin
		{"", loginHome},
		{"/\t/evil.example", loginHome},
		{"/console/\t/evil.example", loginHome},
		{"/\n/evil.example", loginHome},
		{"\t//evil.example", loginHome},
		{" /console/audit", loginHome},
		{"/\\evil.example", loginHome},
		{"\\\\evil.example", loginHome},
		{"/console/\\..\\\\evil.example", loginHome},
		{"//evil.example", loginHome},
		{"//evil.example/console/", loginHome},
		{"///evil.example", loginHome},
		{"/%2F/evil.example", loginHome}, // a path on this origin, but not a page of the UI
		{"%2F%2Fevil.example", loginHome},
		{"%2F%09%2Fevil.example", loginHome},
		{"/%09/evil.example", loginHome},
		{"javascript:alert(1)", loginHome},
		{"JavaScript:alert(document.domain)//", loginHome},
		{"data:text/html,<script>alert(1)</script>", loginHome},
		{"https://evil.example/console/", loginHome},
		{"http:/console/audit", loginHome},
		{"/console/audit\x00", loginHome},
		{"/console/audit\u2028", loginHome},
		{"/console/\xff", loginHome},
		{"/console", loginHome},
		{"/api/v1/logout", loginHome},
	} {
		if got := loginNext(tc.next); got != tc.want {
			t.Errorf("loginNext(%q) = %q, want %q", tc.next, got, tc.want)
		}
	}
}

// FuzzLoginNext: whatever next is, the login page goes to a page of the UI on the console's own origin.
func FuzzLoginNext(f *testing.F) {
	for _, s := range []string{"/console/audit", "/\t/evil.example", "//evil.example", "/\\evil.example", "javascript:x", "/console/a?b=c#d"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://console.example/console/login")
	f.Fuzz(func(t *testing.T, next string) {
		got := loginNext(next)
		if got != next && got != loginHome {
			t.Fatalf("loginNext(%q) = %q", next, got)
		}
		u, err := base.Parse(got)
		if err != nil || u.Scheme != "https" || u.Host != "console.example" || !strings.HasPrefix(u.Path, UIPrefix) {
			t.Fatalf("loginNext(%q) = %q leads to %v (%v)", next, got, u, err)
		}
	})
}

// TestLoginPageNext: the login page renders the next page it will go to, and a hostile one as the home page.
func TestLoginPageNext(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "stoa.db"))
	anon := &client{e: e}
	for next, want := range map[string]string{
		"%2Fconsole%2Faudit":     `data-then="/console/audit"`,
		"%2F%09%2Fevil.example":  `data-then="/console/projects"`,
		"%2F%5Cevil.example":     `data-then="/console/projects"`,
		"javascript%3Aalert(1)":  `data-then="/console/projects"`,
		"https%3A%2F%2Fevil.exa": `data-then="/console/projects"`,
	} {
		if r := anon.page("/console/login?next=" + next); r.status != 200 || !strings.Contains(r.raw, want) {
			t.Errorf("login?next=%s: %d, want %s in\n%s", next, r.status, want, r.raw)
		}
	}
}
