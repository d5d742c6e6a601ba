// Package console implements the Stoa console's HTTP API (issue 6): accounts with argon2id passwords (RFC 9106),
// cookie sessions with CSRF protection, organisations with roles, projects whose App Certificates are
// encrypted at rest (AES-256-GCM) and published to the cluster, and organisation-scoped API keys
// (HTTP Basic, RFC 7617). Administrative changes go to the tamper-evident audit log and login attempts to the
// access log. The API is described by GET /api/v1/openapi.json and docs/api.md.
package console

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stoa-rtc/stoa/internal/audit"
	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/store"
)

// Cluster is where the console publishes projects: *cluster.Cluster, or a fake in tests.
type Cluster interface {
	PutProject(ctx context.Context, p cluster.Project) error
	DeleteProject(ctx context.Context, appID string, version uint64) error
	// ProjectVersion is the highest version of appID the cluster has seen, 0 if none.
	ProjectVersion(appID string) uint64
}

// Config configures a [Console].
type Config struct {
	// DB is the console database, migrated by store.Open.
	DB *store.DB
	// Cluster receives every project change; nil keeps projects in the database only.
	Cluster Cluster
	// Audit receives every administrative change. Required.
	Audit *audit.Log
	// KeyFile is the path of the 32-byte key that encrypts App Certificates at rest; created with mode 0600
	// and random contents if missing.
	KeyFile string
	// Secure marks cookies Secure; set it whenever the console is served over HTTPS (always off loopback).
	Secure bool
	// Logger receives operational messages; never passwords, certificates, session ids or API key secrets.
	// nil discards them.
	Logger *slog.Logger
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Argon2 overrides the password hashing cost for new hashes; nil means DefaultArgon2.
	Argon2 *Argon2Params
	// Mailer sends invitations and password reset links: NewSMTPMailer in production, NewLogMailer for
	// "stoa dev". nil drops every message with a warning naming the recipient (never the link).
	Mailer Mailer
	// PublicURL is the console's external base URL (scheme and host, e.g. "https://console.example.com"), used
	// for the links in mails. It is never derived from a request's Host header (link poisoning); empty makes
	// the links relative ("/console/invite?token=...").
	PublicURL string
	// Retention says how long each category of data is kept before [Console.Purge] deletes it; the zero value
	// means store.DefaultRetention. New refuses a retention that does not validate.
	Retention store.Retention
	// Hosts are the Host headers (host:port, as browsers send them) the console answers to; others get 421.
	// This defeats DNS rebinding, by which a web page makes a browser send requests to a console on loopback
	// under the page's own name. Empty answers every Host (a console behind a proxy that checks it).
	Hosts []string

	// onPasswordCheck, if set, is called before every password hash check (tests count them).
	onPasswordCheck func()
}

// Session and login policy.
const (
	// SessionCookie names the session cookie.
	SessionCookie = "stoa_session"
	// SessionLifetime is how long a session lasts after login.
	SessionLifetime = 12 * time.Hour
	// MaxEmailFailures failed logins for one email within LockoutPeriod lock that email for LockoutPeriod. Every
	// attempt is counted before its password is checked, so that no more than this many are ever checked in a
	// window, however many arrive at once (right passwords are taken back).
	MaxEmailFailures = 5
	// MaxIPFailures failed logins from one IP address within LockoutPeriod lock that address; as for
	// MaxEmailFailures, attempts are counted before they are checked.
	MaxIPFailures = 20
	// LockoutPeriod is both the failure counting window and the lockout duration.
	LockoutPeriod = 15 * time.Minute
	// MinPasswordLen and MaxPasswordLen bound passwords, in bytes.
	MinPasswordLen = 12
	MaxPasswordLen = 128
)

// Console serves the console API. It is safe for concurrent use.
type Console struct {
	db      *store.DB
	cluster Cluster
	audit   *audit.Log
	seal    *sealer
	secure  bool
	log     *slog.Logger
	now     func() time.Time
	argon   Argon2Params
	dummy   string  // a hash checked for unknown emails, so that their logins take as long as known ones
	limits  limiter // login lockouts and request limits, see limits.go
	cop     *http.CrossOriginProtection
	mux     *http.ServeMux
	team    team            // mailer and public URL of team.go
	retain  store.Retention // see purge.go
	ui      *ui             // the web UI's templates, see web.go
	hosts   map[string]bool // Config.Hosts, lowercased; nil answers any

	onPasswordCheck func() // Config.onPasswordCheck
}

// New returns a Console for c, creating the key file if needed.
func New(c Config) (*Console, error) {
	if c.DB == nil {
		return nil, errors.New("console: no database")
	}
	if c.Audit == nil {
		return nil, errors.New("console: no audit log")
	}
	if c.Retention == (store.Retention{}) {
		c.Retention = store.DefaultRetention()
	}
	if err := c.Retention.Validate(); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	key, err := loadOrCreateKey(c.KeyFile)
	if err != nil {
		return nil, err
	}
	s, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	cs := &Console{db: c.DB, cluster: c.Cluster, audit: c.Audit, seal: s, secure: c.Secure, log: c.Logger,
		now: c.Clock, argon: DefaultArgon2, cop: http.NewCrossOriginProtection(), retain: c.Retention,
		onPasswordCheck: c.onPasswordCheck}
	if cs.log == nil {
		cs.log = slog.New(slog.DiscardHandler)
	}
	cs.log = cs.log.With("component", "console")
	if cs.now == nil {
		cs.now = time.Now
	}
	if c.Argon2 != nil {
		cs.argon = *c.Argon2
	}
	cs.dummy = hashPassword(randomHex(16), cs.argon)
	cs.limits = limiter{db: c.DB}
	if len(c.Hosts) > 0 {
		cs.hosts = make(map[string]bool)
		for _, h := range c.Hosts {
			cs.hosts[strings.ToLower(h)] = true
		}
	}
	cs.team = newTeam(c)
	cs.mux = http.NewServeMux()
	for _, rt := range cs.routes() {
		cs.mux.Handle(rt.Method+" "+rt.Path, cs.wrap(rt))
	}
	if cs.ui, err = newUI(); err != nil {
		return nil, err
	}
	cs.registerUI(cs.mux)
	return cs, nil
}

// Handler returns the console's HTTP handler, serving the API under /api/v1/ and the web UI under /console/.
func (cs *Console) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(cs.hosts) > 0 && !cs.hosts[strings.ToLower(r.Host)] {
			writeError(w, http.StatusMisdirectedRequest, "unknown_host", "this console does not answer to this host name")
			return
		}
		if strings.HasPrefix(r.URL.Path, "/api/") && muxAnswers(cs.mux, r) {
			// The mux's own answer (no such path, or a method the path does not take), in the API's format.
			w = &jsonMuxError{ResponseWriter: w}
		}
		cs.mux.ServeHTTP(w, r)
	})
}

// muxAnswers reports whether mux would answer r itself, having no handler for it (404, or 405 for a method the
// path does not take).
func muxAnswers(mux *http.ServeMux, r *http.Request) bool {
	_, pattern := mux.Handler(r)
	return pattern == ""
}

// jsonMuxError turns the mux's plain-text 404 and 405 into the API's JSON errors (keeping the Allow header).
type jsonMuxError struct {
	http.ResponseWriter
	replaced bool
}

func (j *jsonMuxError) WriteHeader(status int) {
	switch status {
	case http.StatusNotFound:
		writeError(j.ResponseWriter, status, "not_found", "no such endpoint")
	case http.StatusMethodNotAllowed:
		writeError(j.ResponseWriter, status, "method_not_allowed", "this endpoint does not take this method; allowed: "+j.Header().Get("Allow"))
	default:
		j.ResponseWriter.WriteHeader(status)
		return
	}
	j.replaced = true
}

func (j *jsonMuxError) Write(b []byte) (int, error) {
	if j.replaced {
		return len(b), nil
	}
	return j.ResponseWriter.Write(b)
}

// auth says who may call a route.
type auth int

const (
	authNone    auth = iota // anyone (sign-up, login, the OpenAPI document)
	authSession             // a session cookie only
	authAny                 // a session cookie or an API key
)

// route is one endpoint; the same table registers the handlers and generates the OpenAPI document.
// Handlers for owners and admins only are wrapped in [Console.admin].
type route struct {
	Method, Path, Summary string
	Auth                  auth
	Body                  any // example request body for the OpenAPI document, nil if none
	handle                func(w http.ResponseWriter, r *http.Request, p *principal)
}

// Routes lists the registered endpoints as "METHOD /path".
func (cs *Console) Routes() []string {
	var out []string
	for _, rt := range cs.routes() {
		out = append(out, rt.Method+" "+rt.Path)
	}
	return out
}

func (cs *Console) routes() []route {
	rts := []route{
		{"POST", "/api/v1/signup", "Create an account and its organisation, and log in", authNone, credentials{Email: "ada@example.com", Password: "correct horse battery"}, cs.signup},
		{"POST", "/api/v1/login", "Log in; returns the CSRF token and sets the session cookie", authNone, credentials{Email: "ada@example.com", Password: "correct horse battery"}, cs.login},
		{"POST", "/api/v1/logout", "End the session", authSession, nil, cs.logout},
		{"GET", "/api/v1/session", "The current account, organisation, role and CSRF token", authSession, nil, cs.session},
		{"GET", "/api/v1/projects", "List the organisation's projects (?limit=&after=)", authAny, nil, cs.listProjects},
		{"POST", "/api/v1/projects", "Create a project; the App Certificate is returned only here", authAny, projectCreate{Name: "my app"}, cs.admin(cs.createProject)},
		{"GET", "/api/v1/projects/{id}", "Get a project (ETag: its version)", authAny, nil, cs.getProject},
		{"PATCH", "/api/v1/projects/{id}", "Rename, enable or disable a project, or let it accept legacy 006 tokens (If-Match: its ETag)", authAny, projectPatch{}, cs.admin(cs.patchProject)},
		{"DELETE", "/api/v1/projects/{id}", "Delete a project", authAny, nil, cs.admin(cs.deleteProject)},
		{"POST", "/api/v1/projects/{id}/certificates", "Add a secondary App Certificate (returned only here)", authAny, nil, cs.admin(cs.addCertificate)},
		{"POST", "/api/v1/projects/{id}/certificates/promote", "Make the secondary certificate primary, retiring the old primary", authAny, nil, cs.admin(cs.promoteCertificate)},
		{"GET", "/api/v1/projects/{id}/logs", "Search the project's media server logs, newest first (?channel=&uid=&type=&from=&to=&limit=&after=)", authAny, nil, cs.listLogs},
		{"GET", "/api/v1/projects/{id}/logs.csv", "Export the project's media server logs as CSV (same filters as /logs)", authAny, nil, cs.listLogsCSV},
		{"GET", "/api/v1/projects/{id}/certificate", "Reveal the project's certificates (owner or admin)", authAny, nil, cs.admin(cs.getCertificate)},
		{"POST", "/api/v1/projects/{id}/token", "Build a temporary RTC token", authAny, tokenRequest{Channel: "room", UID: "42", Role: "publisher", Expire: 3600}, cs.projectToken},
		{"GET", "/api/v1/projects/{id}/analytics", "The project's analytics as JSON series (?from=&to=&step=)", authAny, nil, cs.projectAnalytics},
		{"GET", "/api/v1/audit", "The organisation's audit log entries, newest first (owner or admin; ?limit=&after=)", authAny, nil, cs.admin(cs.listAudit)},
		{"GET", "/api/v1/access-log", "Your own console logins, newest first (?limit=&after=)", authSession, nil, cs.listAccessLog},
		{"GET", "/api/v1/apikeys", "List the organisation's API keys (?limit=&after=)", authSession, nil, cs.admin(cs.listAPIKeys)},
		{"POST", "/api/v1/apikeys", "Create an API key; the secret is returned only here", authSession, apiKeyCreate{Name: "ci"}, cs.admin(cs.createAPIKey)},
		{"DELETE", "/api/v1/apikeys/{id}", "Revoke an API key", authSession, nil, cs.admin(cs.revokeAPIKey)},
		{"GET", "/api/v1/openapi.json", "This API's OpenAPI 3 document", authNone, nil, cs.openAPI},
	}
	rts = append(rts, cs.teamRoutes()...)
	return append(rts, cs.retentionRoutes()...)
}

// role is a member's role in an organisation.
type role string

const (
	roleOwner  role = "owner"
	roleAdmin  role = "admin"
	roleMember role = "member"
	roleViewer role = "viewer"
)

// admin lets only owners and admins (API keys act as admins) through to h; others get 403.
func (cs *Console) admin(h func(http.ResponseWriter, *http.Request, *principal)) func(http.ResponseWriter, *http.Request, *principal) {
	return func(w http.ResponseWriter, r *http.Request, p *principal) {
		if !p.role.canAdminister() {
			cs.fail(w, errForbidden)
			return
		}
		h(w, r, p)
	}
}

func (r role) canAdminister() bool { return r == roleOwner || r == roleAdmin }
func (r role) canUse() bool        { return r.canAdminister() || r == roleMember }

// principal is the authenticated caller.
type principal struct {
	accountID int64
	email     string
	orgID     int64
	role      role
	apiKeyID  string // set for API key callers
	csrf      string // the session's CSRF token
	sessionID []byte // SHA-256 of the session id
}

// actor names p in audit entries: the account's email or "apikey:" and the key id.
func (p *principal) actor() string {
	if p.apiKeyID != "" {
		return "apikey:" + p.apiKeyID
	}
	return p.email
}

func isSafe(method string) bool { return method == "GET" || method == "HEAD" || method == "OPTIONS" }

// wrap authenticates the caller for rt and enforces CSRF protection.
func (cs *Console) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if !isSafe(r.Method) {
			// Cross-origin browser requests never change state, with or without a session (login CSRF too).
			if err := cs.cop.Check(r); err != nil {
				writeError(w, http.StatusForbidden, "cross_origin", "cross-origin request refused")
				return
			}
		}
		if rt.Auth == authNone {
			rt.handle(w, r, nil)
			return
		}
		var p *principal
		if id, secret, ok := r.BasicAuth(); ok {
			if rt.Auth != authAny {
				writeError(w, http.StatusForbidden, "session_required", "this endpoint needs a console session, not an API key")
				return
			}
			var err error
			p, err = cs.apiKeyPrincipal(r.Context(), id, secret)
			if err != nil {
				cs.fail(w, err)
				return
			}
		} else {
			c, err := r.Cookie(SessionCookie)
			if err != nil {
				writeError(w, http.StatusUnauthorized, "unauthenticated", "log in or use an API key")
				return
			}
			p, err = cs.sessionPrincipal(r.Context(), c.Value)
			if err != nil {
				cs.fail(w, err)
				return
			}
			if !isSafe(r.Method) {
				got := r.Header.Get("X-CSRF-Token")
				if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(p.csrf)) != 1 {
					writeError(w, http.StatusForbidden, "csrf", "missing or wrong X-CSRF-Token")
					return
				}
				if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
					writeError(w, http.StatusForbidden, "cross_origin", "Origin does not match Host")
					return
				}
			}
		}
		rt.handle(w, r, p)
	})
}

// sameOrigin reports whether the Origin header names host.
func sameOrigin(origin, host string) bool {
	_, rest, ok := strings.Cut(origin, "://")
	return ok && strings.EqualFold(rest, host)
}

// apiError is an error with an HTTP status and a stable code.
type apiError struct {
	status        int
	code, message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errorf(status int, code, format string, a ...any) error {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, a...)}
}

var (
	errUnauthenticated = errorf(http.StatusUnauthorized, "unauthenticated", "log in or use an API key")
	errNotFound        = errorf(http.StatusNotFound, "not_found", "no such resource")
	errForbidden       = errorf(http.StatusForbidden, "forbidden", "your role does not allow this")
)

// fail writes err: an *apiError as itself, anything else as a logged 500.
func (cs *Console) fail(w http.ResponseWriter, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeError(w, ae.status, ae.code, ae.message)
		return
	}
	cs.log.Error("request failed", "err", err)
	writeError(w, http.StatusInternalServerError, "internal", "internal error")
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// decode reads r's JSON body into v strictly: unknown fields and trailing data are errors.
func decode(r *http.Request, v any) error {
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "bad_request", "invalid JSON body: %v", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, "bad_request", "invalid JSON body: trailing data")
	}
	return nil
}

// queryPage runs a list query that asks for limit+1 rows, scans each with scan, and returns at most limit items
// with the cursor of the next page, or "" on the last one: the extra row tells whether there is a next page.
func queryPage[T any](ctx context.Context, db *store.DB, limit int, q string, args []any,
	scan func(*sql.Rows) (T, error), cursor func(T) string) ([]T, string, error) {
	items, err := queryList(ctx, db, q, args, scan)
	if err != nil {
		return nil, "", err
	}
	if len(items) <= limit {
		return items, "", nil
	}
	items = items[:limit]
	return items, cursor(items[limit-1]), nil
}

// queryList runs q and scans every row with scan.
func queryList[T any](ctx context.Context, db *store.DB, q string, args []any, scan func(*sql.Rows) (T, error)) ([]T, error) {
	rows, err := db.QueryContext(ctx, db.Rebind(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	items := []T{}
	for rows.Next() {
		it, err := scan(rows)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, rows.Err()
}

// writePage answers a list request with {"items", "next"}.
func (cs *Console) writePage(w http.ResponseWriter, items any, next string, err error) {
	if err != nil {
		cs.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next": next})
}

// writeList answers an unpaginated list request with {"items"}.
func (cs *Console) writeList(w http.ResponseWriter, items any, err error) {
	if err != nil {
		cs.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// page reads ?limit= (1..100, default 50) and ?after= (an id, default 0).
func page(r *http.Request) (limit int, after int64, err error) {
	limit = 50
	if s := r.URL.Query().Get("limit"); s != "" {
		limit, err = strconv.Atoi(s)
		if err != nil || limit < 1 || limit > 100 {
			return 0, 0, errorf(http.StatusBadRequest, "bad_request", "limit must be 1..100")
		}
	}
	if s := r.URL.Query().Get("after"); s != "" {
		after, err = strconv.ParseInt(s, 10, 64)
		if err != nil || after < 0 {
			return 0, 0, errorf(http.StatusBadRequest, "bad_request", "after must be an id")
		}
	}
	return limit, after, nil
}

// pathID reads the {id} path value.
func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, errNotFound
	}
	return id, nil
}

// clientIP is the remote address's IP; the console does not trust forwarding headers.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (cs *Console) us() int64 { return cs.now().UnixMicro() }

// execAudited runs one statement and records it as action in the same transaction.
func (cs *Console) execAudited(ctx context.Context, p *principal, action, target string, before, after any, q string, args ...any) error {
	return cs.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, cs.db.Rebind(q), args...); err != nil {
			return err
		}
		return cs.auditTx(ctx, tx, p, action, target, before, after)
	})
}

// auditTx records an administrative change made in tx: the change and its audit entry commit together or not at
// all, so no change goes unrecorded. The entry belongs to p's organisation, whose owners and admins read it,
// except for "account." actions: an account spans organisations, so changes to it belong to none.
func (cs *Console) auditTx(ctx context.Context, tx *sql.Tx, p *principal, action, target string, before, after any) error {
	org := p.orgID
	if strings.HasPrefix(action, "account.") {
		org = 0
	}
	_, err := cs.audit.AppendTx(ctx, tx, audit.Record{Actor: p.actor(), Action: action, Target: target, Before: before, After: after, Organisation: org})
	return err
}
