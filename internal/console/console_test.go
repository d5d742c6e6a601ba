package console

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/audit"
	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/store"
	"github.com/stoa-rtc/stoa/internal/store/storetest"
	"github.com/stoa-rtc/stoa/token"
)

// fakeCluster records published projects.
type fakeCluster struct {
	mu       sync.Mutex
	puts     []cluster.Project
	deletes  []string
	versions []uint64 // of the deletes
	fail     bool
}

func (f *fakeCluster) PutProject(_ context.Context, p cluster.Project) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("bus down")
	}
	f.puts = append(f.puts, p)
	return nil
}

func (f *fakeCluster) DeleteProject(_ context.Context, appID string, version uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes = append(f.deletes, appID)
	f.versions = append(f.versions, version)
	return nil
}

func (f *fakeCluster) ProjectVersion(appID string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var v uint64
	for _, p := range f.puts {
		if p.AppID == appID {
			v = max(v, p.Version)
		}
	}
	return v
}

func (f *fakeCluster) last() cluster.Project {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts[len(f.puts)-1]
}

// clock is an injectable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type env struct {
	t       testing.TB
	db      *store.DB
	cs      *Console
	srv     *httptest.Server
	fc      *fakeCluster
	clock   *clock
	keyFile string
	logs    *bytes.Buffer
	logMu   *sync.Mutex
	bodies  *[]string // every response body
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newEnv(t testing.TB, pathOrDSN string) *env {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, pathOrDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	seed := make([]byte, ed25519.SeedSize)
	al, err := audit.New(audit.Config{DB: db, Key: ed25519.NewKeyFromSeed(seed)})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, fc: &fakeCluster{}, clock: &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		keyFile: filepath.Join(t.TempDir(), "console.key"), logs: &bytes.Buffer{}, logMu: &sync.Mutex{}, bodies: &[]string{}}
	logger := slog.New(slog.NewTextHandler(lockedWriter{e.logMu, e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.cs, err = New(Config{DB: db, Cluster: e.fc, Audit: al, KeyFile: e.keyFile, Logger: logger, Clock: e.clock.now,
		Argon2: &Argon2Params{Time: 1, Memory: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.cs.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

// client is one caller: a cookie (session) and CSRF token, or an API key.
type client struct {
	e             *env
	cookie        string
	csrf          string
	keyID, secret string
	header        map[string]string
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (c *client) do(method, path string, body any) resp {
	c.e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.e.srv.URL+path, rd)
	req.Header.Set("User-Agent", "console-test")
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: c.cookie})
	}
	if c.csrf != "" {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	if c.keyID != "" {
		req.SetBasicAuth(c.keyID, c.secret)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	*c.e.bodies = append(*c.e.bodies, string(raw))
	r := resp{status: res.StatusCode, header: res.Header, raw: string(raw)}
	json.Unmarshal(raw, &r.body)
	for _, ck := range res.Cookies() {
		if ck.Name == SessionCookie {
			c.cookie = ck.Value
		}
	}
	if tok, ok := r.body["csrf_token"].(string); ok {
		c.csrf = tok
	}
	return r
}

func (c *client) must(status int, method, path string, body any) resp {
	c.e.t.Helper()
	r := c.do(method, path, body)
	if r.status != status {
		c.e.t.Fatalf("%s %s = %d %s, want %d", method, path, r.status, r.raw, status)
	}
	return r
}

const testPassword = "Tr0ub4dor&3-horse-staple"

func (e *env) signup(email string) *client {
	c := &client{e: e}
	c.must(http.StatusCreated, "POST", "/api/v1/signup", map[string]string{"email": email, "password": testPassword})
	return c
}

func (c *client) apiKey() *client {
	r := c.must(http.StatusCreated, "POST", "/api/v1/apikeys", map[string]string{"name": "ci"})
	return &client{e: c.e, keyID: r.body["key_id"].(string), secret: r.body["secret"].(string)}
}

func (c *client) createProject() (id string, appID, cert string) {
	r := c.must(http.StatusCreated, "POST", "/api/v1/projects", map[string]string{"name": "app"})
	return fmt.Sprint(r.body["id"]), r.body["app_id"].(string), r.body["app_certificate"].(string)
}

func TestAccounts(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		c := e.signup("  Ada@Example.COM ")
		if r := c.must(200, "GET", "/api/v1/session", nil); r.body["email"] != "ada@example.com" || r.body["role"] != "owner" {
			t.Errorf("session = %v", r.body)
		}
		anon := &client{e: e}
		for _, tc := range []struct {
			name   string
			body   any
			status int
		}{
			{"duplicate", map[string]string{"email": "ada@example.com", "password": testPassword}, 409},
			{"short password", map[string]string{"email": "b@example.com", "password": "short"}, 400},
			{"long password", map[string]string{"email": "b@example.com", "password": strings.Repeat("x", 129)}, 400},
			{"bad email", map[string]string{"email": "not an email", "password": testPassword}, 400},
			{"unknown field", map[string]string{"email": "b@example.com", "password": testPassword, "x": "y"}, 400},
		} {
			if r := anon.do("POST", "/api/v1/signup", tc.body); r.status != tc.status {
				t.Errorf("%s: signup = %d %s, want %d", tc.name, r.status, r.raw, tc.status)
			}
		}
		// Logout ends the session.
		old := c.cookie
		c.must(204, "POST", "/api/v1/logout", nil)
		(&client{e: e, cookie: old}).must(401, "GET", "/api/v1/session", nil)
		// Wrong password, then right one; the session id changes at login (no fixation).
		l := &client{e: e, cookie: old}
		l.must(401, "POST", "/api/v1/login", map[string]string{"email": "ada@example.com", "password": "wrong password!!"})
		l.must(401, "POST", "/api/v1/login", map[string]string{"email": "nobody@example.com", "password": testPassword})
		fixed := &client{e: e}
		fixed.must(200, "POST", "/api/v1/login", map[string]string{"email": "ADA@example.com", "password": testPassword})
		first := fixed.cookie
		fixed.must(200, "POST", "/api/v1/login", map[string]string{"email": "ada@example.com", "password": testPassword})
		if fixed.cookie == first || fixed.cookie == "" {
			t.Error("login kept the session id")
		}
		(&client{e: e, cookie: first}).must(401, "GET", "/api/v1/session", nil)
		fixed.must(200, "GET", "/api/v1/session", nil)
		// Sessions expire.
		e.clock.add(SessionLifetime + time.Second)
		fixed.must(401, "GET", "/api/v1/session", nil)
		// Access log: every attempt, with result.
		var n, ok int
		e.db.QueryRow("SELECT COUNT(*), SUM(success) FROM access_log").Scan(&n, &ok)
		if n != 4 || ok != 2 {
			t.Errorf("access log has %d rows, %d successes; want 4, 2", n, ok)
		}
	})
}

func TestLockout(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		e.signup("ada@example.com")
		c := &client{e: e}
		bad := map[string]string{"email": "ada@example.com", "password": "wrong password!!"}
		good := map[string]string{"email": "ada@example.com", "password": testPassword}
		for range MaxEmailFailures {
			c.must(401, "POST", "/api/v1/login", bad)
		}
		r := c.must(429, "POST", "/api/v1/login", good)
		if r.header.Get("Retry-After") != "900" || r.body["error"].(map[string]any)["code"] != "locked" {
			t.Errorf("locked response: Retry-After %q, %s", r.header.Get("Retry-After"), r.raw)
		}
		e.clock.add(LockoutPeriod - time.Minute)
		if r := c.must(429, "POST", "/api/v1/login", good); r.header.Get("Retry-After") != "60" {
			t.Errorf("Retry-After = %q, want 60", r.header.Get("Retry-After"))
		}
		e.clock.add(time.Minute)
		c.must(200, "POST", "/api/v1/login", good)
		// Per IP: failures across many emails lock the address (after the earlier failures have aged out).
		e.clock.add(LockoutPeriod + time.Second)
		for i := range MaxIPFailures {
			c.must(401, "POST", "/api/v1/login", map[string]string{"email": fmt.Sprintf("u%d@example.com", i), "password": testPassword})
		}
		c.must(429, "POST", "/api/v1/login", good)
	})
}

// TestLockoutSharedByConsoles: failures counted by one console lock the email on another sharing the database.
func TestLockoutSharedByConsoles(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		e.signup("ada@example.com")
		second := *e
		cs2, err := New(Config{DB: e.db, Audit: e.cs.audit, KeyFile: e.keyFile, Clock: e.clock.now,
			Argon2: &Argon2Params{Time: 1, Memory: 64, Threads: 1}})
		if err != nil {
			t.Fatal(err)
		}
		second.srv = httptest.NewServer(cs2.Handler())
		t.Cleanup(second.srv.Close)
		one, two := &client{e: e}, &client{e: &second}
		bad := map[string]string{"email": "ada@example.com", "password": "wrong password!!"}
		for i := range MaxEmailFailures {
			c := one
			if i%2 == 1 {
				c = two
			}
			c.must(401, "POST", "/api/v1/login", bad)
		}
		for _, c := range []*client{one, two} {
			c.must(429, "POST", "/api/v1/login", map[string]string{"email": "ada@example.com", "password": testPassword})
		}
	})
}

func TestCSRF(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		c := e.signup("ada@example.com")
		for _, tc := range []struct {
			name   string
			header map[string]string
			csrf   string
			status int
		}{
			{"no token", nil, "", 403},
			{"wrong token", nil, "0123", 403},
			{"cross origin", map[string]string{"Origin": "https://evil.example"}, c.csrf, 403},
			{"cross site fetch", map[string]string{"Sec-Fetch-Site": "cross-site"}, c.csrf, 403},
			{"good", nil, c.csrf, 201},
			{"same origin", map[string]string{"Origin": e.srv.URL}, c.csrf, 201},
		} {
			cc := &client{e: e, cookie: c.cookie, csrf: tc.csrf, header: tc.header}
			if r := cc.do("POST", "/api/v1/projects", map[string]string{"name": "x"}); r.status != tc.status {
				t.Errorf("%s: %d %s, want %d", tc.name, r.status, r.raw, tc.status)
			}
		}
		// API keys need no CSRF token.
		k := c.apiKey()
		k.must(201, "POST", "/api/v1/projects", map[string]string{"name": "x"})
		// A login from another site is refused (login CSRF).
		(&client{e: e, header: map[string]string{"Sec-Fetch-Site": "cross-site"}}).must(403, "POST", "/api/v1/login",
			map[string]string{"email": "ada@example.com", "password": testPassword})
	})
}

// TestKeysAndViewers checks API key revocation and the limits of API keys and viewers; access across
// organisations is TestCrossOrganisationEveryRoute's.
func TestKeysAndViewers(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		a := e.signup("a@example.com")
		b := e.signup("b@example.com")
		pid, _, _ := a.createProject()
		akey := a.apiKey()
		keysA := a.must(200, "GET", "/api/v1/apikeys", nil).body["items"].([]any)
		kid := fmt.Sprint(keysA[0].(map[string]any)["id"])
		bkey := b.apiKey()
		// The project is untouched and the key still works.
		a.must(200, "GET", "/api/v1/projects/"+pid, nil)
		akey.must(200, "GET", "/api/v1/projects/"+pid, nil)
		if got := b.must(200, "GET", "/api/v1/projects", nil).body["items"].([]any); len(got) != 0 {
			t.Errorf("B lists %d projects", len(got))
		}
		// Revocation: the key stops working.
		a.must(204, "DELETE", "/api/v1/apikeys/"+kid, nil)
		akey.must(401, "GET", "/api/v1/projects", nil)
		(&client{e: e, keyID: bkey.keyID, secret: strings.Repeat("0", 64)}).must(401, "GET", "/api/v1/projects", nil)
		// API keys cannot manage API keys.
		bkey.must(403, "GET", "/api/v1/apikeys", nil)
		// Viewers read but do not change.
		if _, err := e.db.Exec(e.db.Rebind("UPDATE memberships SET role = 'viewer' WHERE account_id = (SELECT id FROM accounts WHERE email = ?)"), "a@example.com"); err != nil {
			t.Fatal(err)
		}
		a.must(200, "GET", "/api/v1/projects/"+pid, nil)
		a.must(403, "PATCH", "/api/v1/projects/"+pid, map[string]any{"enabled": false})
		a.must(403, "GET", "/api/v1/projects/"+pid+"/certificate", nil)
		a.must(403, "POST", "/api/v1/projects", map[string]any{"name": "x"})
	})
}

func TestProjectLifecycle(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		c := e.signup("ada@example.com")
		id, appID, cert := c.createProject()
		if len(appID) != 32 || len(cert) != 32 {
			t.Fatalf("app id %q, certificate length %d", appID, len(cert))
		}
		want := func(step string, enabled bool, certs ...string) {
			t.Helper()
			p := e.fc.last()
			if p.AppID != appID || p.Enabled != enabled || !slices.Equal(p.Certificates, certs) {
				t.Errorf("%s: published %v %v (certificates %d), want enabled %v certificates %d", step, p.AppID, p.Enabled, len(p.Certificates), enabled, len(certs))
			}
		}
		want("create", true, cert)
		// The certificate is encrypted at rest and decrypts with the key file.
		var ct []byte
		e.db.QueryRow(e.db.Rebind("SELECT cert_primary FROM projects WHERE app_id = ?"), appID).Scan(&ct)
		if bytes.Contains(ct, []byte(cert)) || len(ct) == 0 {
			t.Error("certificate stored in clear")
		}
		key, err := os.ReadFile(e.keyFile)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := newSealer(key)
		if got, err := s.open(ct, appID); err != nil || got != cert {
			t.Errorf("decrypt with key file = %q, %v", got, err)
		}
		if st, _ := os.Stat(e.keyFile); st.Mode().Perm() != 0o600 {
			t.Errorf("key file mode %04o", st.Mode().Perm())
		}
		// The certificate is not in the project's representation, only on explicit request.
		if r := c.must(200, "GET", "/api/v1/projects/"+id, nil); strings.Contains(r.raw, cert) || r.header.Get("ETag") != `"1"` {
			t.Errorf("GET project: ETag %q body %s", r.header.Get("ETag"), r.raw)
		}
		if r := c.must(200, "GET", "/api/v1/projects/"+id+"/certificate", nil); r.body["primary"] != cert {
			t.Errorf("certificate = %v", r.body)
		}
		// If-Match.
		c.header = map[string]string{"If-Match": `"7"`}
		c.must(412, "PATCH", "/api/v1/projects/"+id, map[string]any{"enabled": false})
		c.header = map[string]string{"If-Match": `"1"`}
		if r := c.must(200, "PATCH", "/api/v1/projects/"+id, map[string]any{"enabled": false}); r.header.Get("ETag") != `"2"` {
			t.Errorf("ETag after PATCH = %q", r.header.Get("ETag"))
		}
		c.header = nil
		want("disable", false, cert)
		c.must(409, "POST", "/api/v1/projects/"+id+"/token", map[string]any{"channel": "c", "uid": "1"})
		c.must(200, "PATCH", "/api/v1/projects/"+id, map[string]any{"enabled": true})
		// Rotation.
		c.must(409, "POST", "/api/v1/projects/"+id+"/certificates/promote", nil)
		second := c.must(201, "POST", "/api/v1/projects/"+id+"/certificates", nil).body["app_certificate"].(string)
		want("add secondary", true, cert, second)
		c.must(409, "POST", "/api/v1/projects/"+id+"/certificates", nil)
		r := c.must(200, "GET", "/api/v1/projects/"+id+"/certificate", nil)
		if r.body["primary"] != cert || r.body["secondary"] != second {
			t.Errorf("certificates = %v", r.body)
		}
		c.must(200, "POST", "/api/v1/projects/"+id+"/certificates/promote", nil)
		want("promote", true, second)
		// Tokens are signed with the primary.
		tr := c.must(200, "POST", "/api/v1/projects/"+id+"/token", map[string]any{"channel": "room", "uid": "42", "role": "subscriber", "expire": 600})
		tok, err := token.Parse(tr.body["token"].(string))
		if err != nil {
			t.Fatal(err)
		}
		want2 := token.Expect{AppID: appID, Channel: "room", UID: "42"}
		if tok.Verify(second, want2, e.clock.now()) != nil || tok.Verify(cert, want2, e.clock.now()) == nil {
			t.Error("token is not signed with the new primary only")
		}
		c.must(400, "POST", "/api/v1/projects/"+id+"/token", map[string]any{"channel": "room", "uid": "1", "role": "god"})
		// A cluster failure changes nothing.
		e.fc.mu.Lock()
		e.fc.fail = true
		e.fc.mu.Unlock()
		c.must(503, "PATCH", "/api/v1/projects/"+id, map[string]any{"name": "renamed"})
		e.fc.mu.Lock()
		e.fc.fail = false
		e.fc.mu.Unlock()
		if r := c.must(200, "GET", "/api/v1/projects/"+id, nil); r.body["name"] != "app" {
			t.Errorf("name after failed publish = %v", r.body["name"])
		}
		// Pagination.
		for range 2 {
			c.createProject()
		}
		p1 := c.must(200, "GET", "/api/v1/projects?limit=2", nil)
		if len(p1.body["items"].([]any)) != 2 || p1.body["next"] == "" {
			t.Fatalf("page 1 = %s", p1.raw)
		}
		p2 := c.must(200, "GET", "/api/v1/projects?limit=2&after="+p1.body["next"].(string), nil)
		if len(p2.body["items"].([]any)) != 1 || p2.body["next"] != "" {
			t.Errorf("page 2 = %s", p2.raw)
		}
		c.must(400, "GET", "/api/v1/projects?limit=1000", nil)
		// Delete.
		c.must(204, "DELETE", "/api/v1/projects/"+id, nil)
		if !slices.Equal(e.fc.deletes, []string{appID}) {
			t.Errorf("deletes = %v", e.fc.deletes)
		}
		c.must(404, "GET", "/api/v1/projects/"+id, nil)
		// The audit log has the changes, without certificates.
		rows, err := e.db.Query("SELECT action FROM audit_log ORDER BY seq")
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for rows.Next() {
			var a string
			rows.Scan(&a)
			actions = append(actions, a)
		}
		rows.Close()
		for _, a := range []string{"project.create", "project.update", "project.certificate.add", "project.certificate.promote", "project.delete"} {
			if !slices.Contains(actions, a) {
				t.Errorf("audit log lacks %s: %v", a, actions)
			}
		}
		rep, err := audit.Verify(context.Background(), e.db, e.cs.audit.PublicKey())
		if err != nil || !rep.OK() {
			t.Errorf("audit verify: %v %v", rep, err)
		}
		assertNowhere(t, e, cert, second)
	})
}

// TestPasswordNowhere checks that the password appears only as its hash: not in logs, the audit log, the access
// log, any column of any table or any response.
func TestPasswordNowhere(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		c := e.signup("ada@example.com")
		c.must(401, "POST", "/api/v1/login", map[string]string{"email": "ada@example.com", "password": testPassword + "x"})
		c.must(200, "POST", "/api/v1/login", map[string]string{"email": "ada@example.com", "password": testPassword})
		c.createProject()
		c.apiKey()
		var hash string
		e.db.QueryRow("SELECT password_hash FROM accounts").Scan(&hash)
		if !strings.HasPrefix(hash, "$argon2id$v=19$") || !checkPassword(testPassword, hash) {
			t.Errorf("stored hash %q", hash)
		}
		assertNowhere(t, e, testPassword)
	})
}

// assertNowhere fails if any secret is in the logs, any response body, or any text or blob column of any table.
func assertNowhere(t *testing.T, e *env, secrets ...string) {
	t.Helper()
	var tables []string
	q := "SELECT name FROM sqlite_master WHERE type = 'table'"
	if e.db.Dialect == store.Postgres {
		q = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
	}
	rows, err := e.db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	if len(tables) < 5 {
		t.Fatalf("found only tables %v", tables)
	}
	var everything strings.Builder
	for _, tb := range tables {
		rows, err := e.db.Query("SELECT * FROM " + tb)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				switch v := v.(type) {
				case []byte:
					everything.Write(v)
				case string:
					everything.WriteString(v)
				}
				everything.WriteByte('\n')
			}
		}
		rows.Close()
	}
	e.logMu.Lock()
	logs := e.logs.String()
	e.logMu.Unlock()
	for _, s := range secrets {
		if strings.Contains(everything.String(), s) {
			t.Errorf("a secret is stored in the database")
		}
		if strings.Contains(logs, s) {
			t.Errorf("a secret is in the logs")
		}
		if s == testPassword {
			for _, b := range *e.bodies {
				if strings.Contains(b, s) {
					t.Errorf("the password is in a response: %s", b)
				}
			}
		}
	}
}

func TestOpenAPI(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "stoa.db"))
	r := (&client{e: e}).must(200, "GET", "/api/v1/openapi.json", nil)
	if !json.Valid([]byte(r.raw)) || r.body["openapi"] != "3.0.3" {
		t.Fatalf("not an OpenAPI document: %.200s", r.raw)
	}
	paths := r.body["paths"].(map[string]any)
	routes := e.cs.Routes()
	if len(routes) < 17 {
		t.Errorf("only %d routes", len(routes))
	}
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt, " ")
		item, ok := paths[path].(map[string]any)
		if !ok || item[strings.ToLower(method)] == nil {
			t.Errorf("openapi.json lacks %s", rt)
		}
	}
	(&client{e: e}).must(404, "GET", "/api/v1/nothing", nil)
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content []byte
		mode    os.FileMode
		ok      bool
	}{
		{"missing", nil, 0, true},
		{"good", bytes.Repeat([]byte{1}, 32), 0o600, true},
		{"short", []byte{1, 2}, 0o600, false},
		{"world readable", bytes.Repeat([]byte{1}, 32), 0o644, false},
	} {
		path := filepath.Join(dir, tc.name)
		if tc.content != nil {
			os.WriteFile(path, tc.content, tc.mode)
			os.Chmod(path, tc.mode)
		}
		key, err := loadOrCreateKey(path)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v", tc.name, err)
			continue
		}
		if tc.ok {
			st, _ := os.Stat(path)
			if len(key) != 32 || st.Mode().Perm() != 0o600 {
				t.Errorf("%s: key %d bytes, mode %04o", tc.name, len(key), st.Mode().Perm())
			}
		}
	}
}

func TestPasswordHash(t *testing.T) {
	p := Argon2Params{Time: 1, Memory: 64, Threads: 1}
	h := hashPassword("password-123456", p)
	if h == hashPassword("password-123456", p) {
		t.Error("no random salt")
	}
	for _, tc := range []struct {
		pw, hash string
		ok       bool
	}{
		{"password-123456", h, true},
		{"password-123457", h, false},
		{"password-123456", "", false},
		{"password-123456", strings.Replace(h, "argon2id", "argon2i", 1), false},
		{"password-123456", "$argon2id$v=19$m=64,t=0,p=1$AAAA$AAAA", false},
	} {
		if got := checkPassword(tc.pw, tc.hash); got != tc.ok {
			t.Errorf("checkPassword(%q, %q) = %v", tc.pw, tc.hash, got)
		}
	}
}

func TestSessionCookie(t *testing.T) {
	for _, secure := range []bool{false, true} {
		e := newEnv(t, filepath.Join(t.TempDir(), "stoa.db"))
		e.cs.secure = secure
		req := httptest.NewRequest("POST", "/api/v1/signup", strings.NewReader(`{"email":"a@example.com","password":"`+testPassword+`"}`))
		rec := httptest.NewRecorder()
		e.cs.Handler().ServeHTTP(rec, req)
		cookies := rec.Result().Cookies()
		if rec.Code != 201 || len(cookies) != 1 {
			t.Fatalf("signup = %d, cookies %v", rec.Code, cookies)
		}
		c := cookies[0]
		if c.Name != SessionCookie || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != secure || len(c.Value) < 43 {
			t.Errorf("secure=%v: cookie %+v", secure, c)
		}
		var n int
		e.db.QueryRow(e.db.Rebind("SELECT COUNT(*) FROM sessions WHERE id_hash = ?"), sha256Sum(c.Value)).Scan(&n)
		if n != 1 {
			t.Errorf("session not stored by its SHA-256")
		}
	}
}

// TestChangeNeedsItsRecord: when the audit log cannot record a change, the change is not made.
func TestChangeNeedsItsRecord(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		a := e.signup("a@example.com")
		pid, _, _ := a.createProject()
		before := a.must(200, "GET", "/api/v1/projects/"+pid, nil).raw
		keys := a.must(200, "GET", "/api/v1/apikeys", nil).raw
		if _, err := e.db.Exec("DROP TABLE audit_head"); err != nil {
			t.Fatal(err)
		}
		a.must(500, "PATCH", "/api/v1/projects/"+pid, map[string]any{"enabled": false})
		a.must(500, "POST", "/api/v1/projects/"+pid+"/certificates", nil)
		a.must(500, "POST", "/api/v1/apikeys", map[string]string{"name": "unrecorded"})
		a.must(500, "POST", "/api/v1/projects", map[string]string{"name": "unrecorded"})
		if after := a.must(200, "GET", "/api/v1/projects/"+pid, nil).raw; after != before {
			t.Errorf("project changed without a record:\n%s\n%s", before, after)
		}
		if after := a.must(200, "GET", "/api/v1/apikeys", nil).raw; after != keys {
			t.Errorf("API key created without a record: %s", after)
		}
		if items := a.must(200, "GET", "/api/v1/projects", nil).body["items"].([]any); len(items) != 1 {
			t.Errorf("%d projects, want 1", len(items))
		}
		e.fc.mu.Lock()
		n := len(e.fc.puts)
		e.fc.mu.Unlock()
		if n != 1 {
			t.Errorf("%d projects published to the cluster, want only the first", n)
		}
	})
}

// TestProjectAccept006 covers the console's part of finding 1: a project refuses 006 tokens unless an admin opts
// in; the setting is published in the project record, audited, and every record and the deletion's tombstone
// carry a higher version than the one before (finding 9).
func TestProjectAccept006(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		c := e.signup("a@example.com")
		id, appID, _ := c.createProject()
		if r := c.must(200, "GET", "/api/v1/projects/"+id, nil); r.body["accept_006"] != false || e.fc.last().Accept006 {
			t.Fatalf("a new project accepts 006 tokens: %s", r.raw)
		}
		if r := c.must(200, "PATCH", "/api/v1/projects/"+id, map[string]any{"accept_006": true}); r.body["accept_006"] != true {
			t.Errorf("PATCH accept_006: %s", r.raw)
		}
		if p := e.fc.last(); !p.Accept006 || p.AppID != appID || p.Version != 2 {
			t.Errorf("published %+v, want accept_006 at version 2", p.LogValue())
		}
		var after string
		if err := e.db.QueryRow(e.db.Rebind("SELECT after_json FROM audit_log WHERE action = 'project.update' ORDER BY seq DESC LIMIT 1")).Scan(&after); err != nil || !strings.Contains(after, `"accept_006":true`) {
			t.Errorf("audit record %s, %v", after, err)
		}
		// The cluster has seen a higher version than the database (a database restored from a backup): the next
		// record goes above it.
		e.fc.mu.Lock()
		e.fc.puts = append(e.fc.puts, cluster.Project{AppID: appID, Version: 9})
		e.fc.mu.Unlock()
		c.must(200, "PATCH", "/api/v1/projects/"+id, map[string]any{"accept_006": false})
		if p := e.fc.last(); p.Accept006 || p.Version != 10 {
			t.Errorf("published %v, want no 006 at version 10", p.LogValue())
		}
		c.must(204, "DELETE", "/api/v1/projects/"+id, nil)
		if !slices.Equal(e.fc.versions, []uint64{11}) {
			t.Errorf("tombstone versions %v, want [11]", e.fc.versions)
		}
	})
}

// TestRepublish: a project whose record the cluster lacks (lost bus, older record format) is published again
// under a higher version at start; one the cluster holds is left alone.
func TestRepublish(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		c := e.signup("a@example.com")
		id, appID, _ := c.createProject()
		if err := e.cs.Republish(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := len(e.fc.puts); n != 1 {
			t.Fatalf("a project the cluster holds was published again: %d puts", n)
		}
		e.fc.mu.Lock()
		e.fc.puts = nil
		e.fc.mu.Unlock()
		if err := e.cs.Republish(context.Background()); err != nil {
			t.Fatal(err)
		}
		if p := e.fc.last(); p.AppID != appID || p.Version != 2 || len(p.Certificates) != 1 {
			t.Errorf("republished %v", p.LogValue())
		}
		if r := c.must(200, "GET", "/api/v1/projects/"+id, nil); r.header.Get("ETag") != `"2"` {
			t.Errorf("ETag after republish %q", r.header.Get("ETag"))
		}
	})
}
