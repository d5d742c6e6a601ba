package console

// The web UI (issue 6, item 9): server-rendered pages under /console/, embedded in the binary, with one small
// script (web/static/app.js) that sends forms to the REST API. The UI is a client of the API: pages read their
// data by calling the API in-process with the caller's session, and every change goes through the API from the
// browser with the session's CSRF token. Whatever the UI can do, the API can do, by construction.

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

//go:embed web
var webFiles embed.FS

// UIPrefix is where the console's web UI is served.
const UIPrefix = "/console/"

// contentSecurityPolicy allows only the console's own script and style; charts are inline SVG elements.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// page is one UI page: its template and the function that loads its data (nil for static forms).
type uiPage struct {
	path, template, title, nav string
	public                     bool // served without a session (login, sign-up, invitations, password reset)
	load                       func(r *http.Request, p *principal) (map[string]any, error)
}

func (cs *Console) pages() []uiPage {
	return []uiPage{
		{path: "login", template: "login", title: "Log in", public: true, load: loadLogin},
		{path: "signup", template: "signup", title: "Sign up", public: true},
		{path: "invite", template: "invite", title: "Accept an invitation", public: true, load: queryValues("token")},
		{path: "reset-password", template: "reset", title: "Reset your password", public: true, load: queryValues("token")},
		{path: "projects", template: "projects", title: "Projects", nav: "projects", load: cs.loadProjects},
		{path: "projects/{id}", template: "project", title: "Project", nav: "projects", load: cs.loadProjectPage},
		{path: "projects/{id}/logs", template: "logs", title: "Media server logs", nav: "projects", load: cs.loadLogs},
		{path: "projects/{id}/analytics", template: "analytics", title: "Analytics", nav: "projects", load: cs.loadAnalytics},
		{path: "apikeys", template: "apikeys", title: "API keys", nav: "apikeys", load: cs.apiLoader("keys", "/api/v1/apikeys")},
		{path: "team", template: "team", title: "Team", nav: "team", load: cs.loadTeam},
		{path: "audit", template: "audit", title: "Audit log", nav: "audit", load: cs.loadAudit},
		{path: "account", template: "account", title: "Account", nav: "account", load: cs.apiLoader("orgs", "/api/v1/organisations")},
	}
}

// ui holds the parsed templates, one set per page.
type ui struct {
	pages map[string]*template.Template
}

func newUI() (*ui, error) {
	base, err := template.New("").Funcs(templateFuncs).ParseFS(webFiles, "web/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(webFiles, "web/pages/*.html")
	if err != nil {
		return nil, err
	}
	u := &ui{pages: make(map[string]*template.Template)}
	for _, n := range names {
		t, err := template.Must(base.Clone()).ParseFS(webFiles, n)
		if err != nil {
			return nil, err
		}
		u.pages[strings.TrimSuffix(n[len("web/pages/"):], ".html")] = t
	}
	return u, nil
}

// registerUI adds the pages and static files to mux.
func (cs *Console) registerUI(mux *http.ServeMux) {
	static, _ := fs.Sub(webFiles, "web/static")
	mux.Handle("GET "+UIPrefix+"static/", http.StripPrefix(UIPrefix+"static/", http.FileServerFS(static)))
	mux.Handle("GET /{$}", http.RedirectHandler(UIPrefix, http.StatusSeeOther))
	mux.Handle("GET "+UIPrefix+"{$}", http.RedirectHandler(UIPrefix+"projects", http.StatusSeeOther))
	for _, pg := range cs.pages() {
		mux.Handle("GET "+UIPrefix+pg.path, cs.servePage(pg))
	}
}

// pageView is what every page template receives.
type pageView struct {
	Title, Nav string
	Email      string
	Role       string
	CSRF       string
	Path       string
	Query      url.Values
	Data       map[string]any
	Error      string
}

func (cs *Console) servePage(pg uiPage) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer") // invitation and reset links carry tokens
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		v := pageView{Title: pg.title, Nav: pg.nav, Path: r.URL.Path, Query: r.URL.Query()}
		var p *principal
		if c, err := r.Cookie(SessionCookie); err == nil {
			p, _ = cs.sessionPrincipal(r.Context(), c.Value)
		}
		if p == nil && !pg.public {
			http.Redirect(w, r, UIPrefix+"login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if p != nil {
			v.Email, v.Role, v.CSRF = p.email, string(p.role), p.csrf
		}
		status := http.StatusOK
		if pg.load != nil {
			data, err := pg.load(r, p)
			var ae *apiError
			switch {
			case errors.As(err, &ae):
				status, v.Error = ae.status, ae.message
			case err != nil:
				cs.log.Error("page failed", "page", pg.path, "err", err)
				status, v.Error = http.StatusInternalServerError, "internal error"
			}
			v.Data = data
			if t, ok := data["title"].(string); ok {
				v.Title = t
			}
		}
		cs.render(w, status, pg.template, v)
	})
}

func (cs *Console) render(w http.ResponseWriter, status int, name string, v pageView) {
	t := cs.ui.pages[name]
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		cs.log.Error("template failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// apiGet calls GET path on the console's own API with r's session and decodes the JSON answer into v; an API
// error comes back as an *apiError with its status, code and message.
func (cs *Console) apiGet(r *http.Request, path string, v any) error {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, path, nil)
	if err != nil {
		return errNotFound
	}
	req.RemoteAddr, req.Host = r.RemoteAddr, r.Host
	req.Header.Set("User-Agent", r.UserAgent())
	if c, err := r.Cookie(SessionCookie); err == nil {
		req.AddCookie(c)
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	cs.mux.ServeHTTP(rec, req)
	if rec.status != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string }
		}
		json.Unmarshal(rec.body.Bytes(), &e)
		return &apiError{status: rec.status, code: e.Error.Code, message: e.Error.Message}
	}
	return json.Unmarshal(rec.body.Bytes(), v)
}

// recorder is the http.ResponseWriter of an in-process API call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (rc *recorder) Header() http.Header         { return rc.header }
func (rc *recorder) Write(b []byte) (int, error) { return rc.body.Write(b) }
func (rc *recorder) WriteHeader(status int)      { rc.status = status }

// apiLoader loads one API document into Data[key].
func (cs *Console) apiLoader(key, path string) func(*http.Request, *principal) (map[string]any, error) {
	return func(r *http.Request, _ *principal) (map[string]any, error) { return cs.gather(r, [2]string{key, path}) }
}

// loginHome is where a login goes when it has no (acceptable) next page.
const loginHome = UIPrefix + "projects"

// loadLogin gives the login page the page to go to after logging in: its next parameter if loginNext accepts
// it.
func loadLogin(r *http.Request, _ *principal) (map[string]any, error) {
	return map[string]any{"next": loginNext(r.URL.Query().Get("next"))}, nil
}

// loginNext returns next if it is a page of the console's UI, on the console's own origin, and loginHome
// otherwise: it must start with UIPrefix (so neither a scheme, nor "//" or "/\\", which browsers read as another
// host) and hold no backslash, whitespace or control character (browsers drop tabs and newlines from URLs and
// read backslashes as slashes, so "/\t/evil.example" leads to evil.example). This closes an open redirect; the
// page's script checks the origin again with the browser's own URL parser.
func loginNext(next string) string {
	bad := func(r rune) bool { return r == '\\' || unicode.IsSpace(r) || unicode.IsControl(r) }
	if !strings.HasPrefix(next, UIPrefix) || strings.ContainsFunc(next, bad) || !utf8.ValidString(next) {
		return loginHome
	}
	if u, err := url.Parse(next); err != nil || u.Scheme != "" || u.Host != "" {
		return loginHome
	}
	return next
}

// queryValues copies query parameters into Data, for the public pages that carry a token in their link.
func queryValues(keys ...string) func(*http.Request, *principal) (map[string]any, error) {
	return func(r *http.Request, _ *principal) (map[string]any, error) {
		d := map[string]any{}
		for _, k := range keys {
			d[k] = r.URL.Query().Get(k)
		}
		return d, nil
	}
}

// gather runs the API calls named in calls (key → path) and returns their documents; it stops at the first error.
func (cs *Console) gather(r *http.Request, calls ...[2]string) (map[string]any, error) {
	d := map[string]any{}
	for _, c := range calls {
		var v any
		if err := cs.apiGet(r, c[1], &v); err != nil {
			return d, err
		}
		d[c[0]] = v
	}
	return d, nil
}

func (cs *Console) loadProjects(r *http.Request, _ *principal) (map[string]any, error) {
	return cs.gather(r, [2]string{"projects", "/api/v1/projects?limit=100&after=" + url.QueryEscape(r.URL.Query().Get("after"))})
}

func projectPath(r *http.Request) string {
	return "/api/v1/projects/" + url.PathEscape(r.PathValue("id"))
}

// projectPage loads the project {id} (and the more documents) and titles the page with its name and what the
// page shows.
func (cs *Console) projectPage(r *http.Request, what string, more ...[2]string) (map[string]any, error) {
	d, err := cs.gather(r, append([][2]string{{"project", projectPath(r)}}, more...)...)
	if p, ok := d["project"].(map[string]any); ok {
		name, _ := p["name"].(string)
		d["title"] = name + " · " + what
	}
	return d, err
}

func (cs *Console) loadProjectPage(r *http.Request, _ *principal) (map[string]any, error) {
	return cs.projectPage(r, "settings")
}

// logFilters are the query parameters the logs page passes on to the API.
var logFilters = []string{"channel", "uid", "type", "from", "to", "after"}

func (cs *Console) loadLogs(r *http.Request, _ *principal) (map[string]any, error) {
	q := url.Values{}
	for _, k := range logFilters {
		if v := r.URL.Query().Get(k); v != "" {
			q.Set(k, v)
		}
	}
	d, err := cs.projectPage(r, "media server logs")
	if err != nil {
		return d, err
	}
	d["csv"] = projectPath(r) + "/logs.csv?" + q.Encode()
	q.Set("limit", "100")
	var logs any
	err = cs.apiGet(r, projectPath(r)+"/logs?"+q.Encode(), &logs)
	d["logs"] = logs
	return d, err
}

// analyticsRanges are the windows the analytics page offers, with their steps.
var analyticsRanges = []struct{ Name, Span, Step string }{
	{"1h", "1h", "1m"}, {"24h", "24h", "1h"}, {"7d", "168h", "6h"}, {"30d", "720h", "1d"},
}

func (cs *Console) loadAnalytics(r *http.Request, _ *principal) (map[string]any, error) {
	rg := analyticsRanges[1]
	for _, a := range analyticsRanges {
		if a.Name == r.URL.Query().Get("range") {
			rg = a
		}
	}
	// Buckets start on whole steps, and the window ends with the step that holds now (its events included).
	span, _ := time.ParseDuration(rg.Span)
	step, _ := parseStep(rg.Step)
	to := cs.now().UTC().Truncate(step).Add(step)
	q := url.Values{"from": {to.Add(-span).Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}, "step": {rg.Step}}
	d, err := cs.projectPage(r, "analytics", [2]string{"analytics", projectPath(r) + "/analytics?" + q.Encode()})
	d["range"], d["ranges"] = rg.Name, analyticsRanges
	return d, err
}

func (cs *Console) loadTeam(r *http.Request, p *principal) (map[string]any, error) {
	calls := [][2]string{{"members", "/api/v1/members"}, {"orgs", "/api/v1/organisations"}}
	if p.role.canAdminister() {
		calls = append(calls, [2]string{"invitations", "/api/v1/invitations"})
	}
	return cs.gather(r, calls...)
}

func (cs *Console) loadAudit(r *http.Request, _ *principal) (map[string]any, error) {
	after := url.QueryEscape(r.URL.Query().Get("after"))
	return cs.gather(r, [2]string{"audit", "/api/v1/audit?limit=100&after=" + after},
		[2]string{"access", "/api/v1/access-log?limit=20"})
}
