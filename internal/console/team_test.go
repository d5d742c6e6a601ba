package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/store/storetest"
)

// fakeMailer records the messages it is given.
type fakeMailer struct {
	mu   sync.Mutex
	msgs []Message
	fail bool
}

func (f *fakeMailer) Send(_ context.Context, m Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("mail server down")
	}
	f.msgs = append(f.msgs, m)
	return nil
}

func (f *fakeMailer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.msgs)
}

var tokenRE = regexp.MustCompile(`token=([A-Za-z0-9_-]+)`)

// token returns the token in the link of the last message, which must be to to.
func (f *fakeMailer) token(t testing.TB, to string) string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.msgs) == 0 {
		t.Fatal("no mail sent")
	}
	m := f.msgs[len(f.msgs)-1]
	sm := tokenRE.FindStringSubmatch(m.Body)
	if m.To != to || sm == nil {
		t.Fatalf("last mail to %s has no token: %+v", m.To, m)
	}
	return sm[1]
}

const publicURL = "https://console.example"

// newTeamEnv is newEnv with a fake mailer and a public URL.
func newTeamEnv(t *testing.T, dsn string) (*env, *fakeMailer) {
	e := newEnv(t, dsn)
	fm := &fakeMailer{}
	e.cs.team.mailer = fm
	e.cs.team.publicURL = publicURL
	return e, fm
}

func (e *env) login(email, password string) *client {
	c := &client{e: e}
	c.must(200, "POST", "/api/v1/login", map[string]string{"email": email, "password": password})
	return c
}

// memberID returns the account id of the member with email, as c sees it.
func (c *client) memberID(email string) string {
	c.e.t.Helper()
	for _, it := range c.must(200, "GET", "/api/v1/members", nil).body["items"].([]any) {
		if m := it.(map[string]any); m["email"] == email {
			return fmt.Sprint(m["id"])
		}
	}
	c.e.t.Fatalf("no member %s", email)
	return ""
}

// invite invites email with rl and returns the mailed token.
func (c *client) invite(fm *fakeMailer, email, rl string) string {
	c.e.t.Helper()
	c.must(201, "POST", "/api/v1/invitations", map[string]string{"email": email, "role": rl})
	return fm.token(c.e.t, email)
}

// errCode is the error code of r.
func (r resp) errCode() string {
	if e, ok := r.body["error"].(map[string]any); ok {
		return fmt.Sprint(e["code"])
	}
	return ""
}

// auditActions returns the actions and after-JSON of the audit log in order.
func auditEntries(t *testing.T, e *env) []string {
	t.Helper()
	rows, err := e.db.Query("SELECT action, before_json, after_json FROM audit_log ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a, b, af string
		rows.Scan(&a, &b, &af)
		out = append(out, a+" "+b+" "+af)
	}
	return out
}

func hasAudit(entries []string, parts ...string) bool {
	return slices.ContainsFunc(entries, func(s string) bool {
		for _, p := range parts {
			if !strings.Contains(s, p) {
				return false
			}
		}
		return true
	})
}

func TestMembers(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e, fm := newTeamEnv(t, dsn)
		a := e.signup("a@example.com")
		orgA := a.must(200, "GET", "/api/v1/session", nil).body["organisation_id"]
		b := e.signup("b@example.com")
		orgB := b.must(200, "GET", "/api/v1/session", nil).body["organisation_id"]

		// b, logged in, accepts an invitation to A as admin: a membership, no new session.
		tok := a.invite(fm, "b@example.com", "admin")
		if r := b.must(200, "POST", "/api/v1/invitations/accept", map[string]string{"token": tok}); r.body["role"] != "admin" {
			t.Errorf("accept = %s", r.raw)
		}
		orgs := b.must(200, "GET", "/api/v1/organisations", nil).body["items"].([]any)
		if len(orgs) != 2 || orgs[0].(map[string]any)["current"] != false || orgs[1].(map[string]any)["current"] != true {
			t.Errorf("b's organisations = %v", orgs)
		}
		b.must(404, "POST", "/api/v1/session/organisation", map[string]any{"organisation_id": 999})
		if r := b.must(200, "POST", "/api/v1/session/organisation", map[string]any{"organisation_id": orgA}); r.body["role"] != "admin" {
			t.Errorf("switch = %s", r.raw)
		}
		if r := b.must(200, "GET", "/api/v1/session", nil); r.body["organisation_id"] != orgA || r.body["role"] != "admin" {
			t.Errorf("session after switch = %s", r.raw)
		}
		// A new login starts on the first organisation (B's id is larger, so A's).
		if r := e.login("b@example.com", testPassword).must(200, "GET", "/api/v1/session", nil); r.body["organisation_id"] != orgA {
			t.Errorf("login organisation = %v, want %v (B is %v)", r.body["organisation_id"], orgA, orgB)
		}

		// c has no account: accepting creates it and logs in on A as viewer.
		ctok := a.invite(fm, "c@example.com", "viewer")
		c := &client{e: e}
		c.must(400, "POST", "/api/v1/invitations/accept", map[string]string{"token": ctok, "password": "short"})
		if r := c.must(201, "POST", "/api/v1/invitations/accept", map[string]string{"token": ctok, "password": testPassword}); r.body["role"] != "viewer" || r.body["organisation_id"] != orgA {
			t.Errorf("accept as new account = %s", r.raw)
		}
		if got := len(c.must(200, "GET", "/api/v1/members", nil).body["items"].([]any)); got != 3 {
			t.Errorf("A has %d members", got)
		}
		aID, bID, cID := a.memberID("a@example.com"), a.memberID("b@example.com"), a.memberID("c@example.com")

		// Viewers and members cannot manage.
		for _, rl := range []string{"viewer", "member"} {
			a.must(200, "PATCH", "/api/v1/members/"+cID, map[string]string{"role": rl})
			c.must(403, "PATCH", "/api/v1/members/"+bID, map[string]string{"role": "viewer"})
			c.must(403, "PATCH", "/api/v1/members/"+cID, map[string]string{"role": "admin"})
			c.must(403, "DELETE", "/api/v1/members/"+bID, nil)
			c.must(403, "POST", "/api/v1/invitations", map[string]string{"email": "d@example.com", "role": "viewer"})
			c.must(403, "GET", "/api/v1/invitations", nil)
		}
		// An admin cannot make, change or remove an owner, nor invite one.
		b.must(403, "PATCH", "/api/v1/members/"+aID, map[string]string{"role": "admin"})
		b.must(403, "DELETE", "/api/v1/members/"+aID, nil)
		b.must(403, "PATCH", "/api/v1/members/"+cID, map[string]string{"role": "owner"})
		b.must(403, "POST", "/api/v1/invitations", map[string]string{"email": "d@example.com", "role": "owner"})
		b.must(400, "PATCH", "/api/v1/members/"+cID, map[string]string{"role": "god"})
		b.must(200, "PATCH", "/api/v1/members/"+cID, map[string]string{"role": "viewer"})
		if !hasAudit(auditEntries(t, e), "member.update", `"role":"member"`, `"role":"viewer"`) {
			t.Errorf("no member.update audit entry with both roles: %v", auditEntries(t, e))
		}

		// The last owner can be neither demoted nor removed, nor leave.
		if r := a.must(409, "PATCH", "/api/v1/members/"+aID, map[string]string{"role": "admin"}); r.errCode() != "last_owner" {
			t.Errorf("demote last owner: %s", r.raw)
		}
		a.must(409, "DELETE", "/api/v1/members/"+aID, nil)
		a.must(200, "PATCH", "/api/v1/members/"+bID, map[string]string{"role": "owner"})
		a.must(200, "PATCH", "/api/v1/members/"+aID, map[string]string{"role": "admin"})
		// Now b is the last owner; a (admin) cannot remove b.
		a.must(403, "DELETE", "/api/v1/members/"+bID, nil)
		b.must(409, "DELETE", "/api/v1/members/"+bID, nil)

		// c leaves; its session on A stops working.
		c.must(204, "DELETE", "/api/v1/members/"+cID, nil)
		c.must(401, "GET", "/api/v1/session", nil)
		// b (owner) removes a.
		b.must(204, "DELETE", "/api/v1/members/"+aID, nil)
		a.must(401, "GET", "/api/v1/members", nil)
		// a and c, in no organisation any more, cannot log in.
		for _, email := range []string{"a@example.com", "c@example.com"} {
			if r := (&client{e: e}).must(403, "POST", "/api/v1/login", map[string]string{"email": email, "password": testPassword}); r.errCode() != "no_organisation" {
				t.Errorf("login without organisation: %s", r.raw)
			}
		}
		// b can invite a back; a accepts with its password.
		atok := b.invite(fm, "a@example.com", "member")
		(&client{e: e}).must(200, "POST", "/api/v1/invitations/accept", map[string]string{"token": atok, "password": testPassword})
		e.login("a@example.com", testPassword)
		entries := auditEntries(t, e)
		for _, want := range [][]string{
			{"member.add", `"role":"admin"`, "b@example.com"},
			{"account.create", "c@example.com"},
			{"member.leave", "c@example.com", `"role":"viewer"`},
			{"member.remove", "a@example.com", `"role":"admin"`},
			{"invitation.create", "c@example.com", `"role":"viewer"`},
		} {
			if !hasAudit(entries, want...) {
				t.Errorf("audit log lacks %v", want)
			}
		}
		assertNowhere(t, e, tok, ctok)
		assertNotInResponses(t, e, tok, ctok)
	})
}

// assertNotInResponses fails if any response body holds one of secrets.
func assertNotInResponses(t *testing.T, e *env, secrets ...string) {
	t.Helper()
	for _, b := range *e.bodies {
		for _, s := range secrets {
			if strings.Contains(b, s) {
				t.Errorf("a secret is in a response: %.200s", b)
			}
		}
	}
}

func TestTeamCrossOrganisation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e, fm := newTeamEnv(t, dsn)
		a := e.signup("a@example.com")
		orgA := a.must(200, "GET", "/api/v1/session", nil).body["organisation_id"]
		a.invite(fm, "m@example.com", "member")
		m := &client{e: e}
		m.must(201, "POST", "/api/v1/invitations/accept", map[string]string{"token": fm.token(t, "m@example.com"), "password": testPassword})
		a.invite(fm, "pending@example.com", "admin")
		inv := fmt.Sprint(a.must(200, "GET", "/api/v1/invitations", nil).body["items"].([]any)[0].(map[string]any)["id"])
		aID, mID := a.memberID("a@example.com"), a.memberID("m@example.com")
		before := a.must(200, "GET", "/api/v1/members", nil).raw

		b := e.signup("b@example.com")
		bkey := b.apiKey()
		for _, caller := range []*client{b, bkey} {
			for _, rt := range []struct {
				method, path string
				body         any
			}{
				{"PATCH", "/api/v1/members/" + mID, map[string]string{"role": "viewer"}},
				{"PATCH", "/api/v1/members/" + aID, map[string]string{"role": "viewer"}},
				{"DELETE", "/api/v1/members/" + mID, nil},
				{"DELETE", "/api/v1/members/" + aID, nil},
				{"DELETE", "/api/v1/invitations/" + inv, nil},
				{"POST", "/api/v1/session/organisation", map[string]any{"organisation_id": orgA}},
			} {
				if r := caller.do(rt.method, rt.path, rt.body); r.status != 403 && r.status != 404 {
					t.Errorf("%s %s by other org (apikey %v) = %d %s", rt.method, rt.path, caller.keyID != "", r.status, r.raw)
				}
			}
			for _, list := range []string{"/api/v1/members", "/api/v1/invitations", "/api/v1/organisations"} {
				if r := caller.do("GET", list, nil); strings.Contains(r.raw, "a@example.com") || strings.Contains(r.raw, "pending@example.com") {
					t.Errorf("GET %s by other org shows A's: %s", list, r.raw)
				}
			}
		}
		// API keys cannot manage members or invitations at all.
		akey := a.apiKey()
		akey.must(403, "PATCH", "/api/v1/members/"+mID, map[string]string{"role": "viewer"})
		akey.must(403, "POST", "/api/v1/invitations", map[string]string{"email": "x@example.com", "role": "owner"})
		akey.must(200, "GET", "/api/v1/members", nil)
		if after := a.must(200, "GET", "/api/v1/members", nil).raw; after != before {
			t.Errorf("members changed: %s -> %s", before, after)
		}
		if n := len(a.must(200, "GET", "/api/v1/invitations", nil).body["items"].([]any)); n != 1 {
			t.Errorf("%d pending invitations, want 1", n)
		}
		m.must(200, "GET", "/api/v1/session", nil)
		// Revocation works for the owner.
		a.must(204, "DELETE", "/api/v1/invitations/"+inv, nil)
		a.must(404, "DELETE", "/api/v1/invitations/"+inv, nil)
	})
}

func TestInvitationTokens(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e, fm := newTeamEnv(t, dsn)
		a := e.signup("a@example.com")
		b := e.signup("b@example.com")
		anon := &client{e: e}
		accept := func(tok, pw string) resp {
			return anon.do("POST", "/api/v1/invitations/accept", map[string]string{"token": tok, "password": pw})
		}
		// The link is built from PublicURL, whatever Host the request names; the token is in no response.
		a.header = map[string]string{"X-Forwarded-Host": "evil.example"}
		r := a.must(201, "POST", "/api/v1/invitations", map[string]string{"email": "new@example.com", "role": "member"})
		a.header = nil
		tok := fm.token(t, "new@example.com")
		if len(tok) != 43 || !strings.Contains(fm.msgs[0].Body, publicURL+"/console/invite?token="+tok) {
			t.Errorf("mail body %q", fm.msgs[0].Body)
		}
		if strings.Contains(r.raw, tok) || r.body["email"] != "new@example.com" {
			t.Errorf("create invitation = %s", r.raw)
		}
		for _, tc := range []struct {
			name, tok, code string
			status          int
		}{
			{"unknown", strings.Repeat("A", 43), "invalid_token", 400},
			{"empty", "", "invalid_token", 400},
		} {
			if r := accept(tc.tok, testPassword); r.status != tc.status || r.errCode() != tc.code {
				t.Errorf("%s: %d %s", tc.name, r.status, r.raw)
			}
		}
		(&client{e: e}).must(201, "POST", "/api/v1/invitations/accept", map[string]string{"token": tok, "password": testPassword})
		if r := accept(tok, testPassword); r.status != 409 || r.errCode() != "token_used" {
			t.Errorf("used: %d %s", r.status, r.raw)
		}
		// Expired.
		etok := a.invite(fm, "late@example.com", "member")
		e.clock.add(InvitationLifetime + time.Second)
		a = e.login("a@example.com", testPassword)
		b = e.login("b@example.com", testPassword)
		if r := accept(etok, testPassword); r.status != 410 || r.errCode() != "token_expired" {
			t.Errorf("expired: %d %s", r.status, r.raw)
		}
		if n := len(a.must(200, "GET", "/api/v1/invitations", nil).body["items"].([]any)); n != 0 {
			t.Errorf("expired invitation still listed")
		}
		// Revoked, and replaced by a newer invitation.
		rtok := a.invite(fm, "rev@example.com", "member")
		rtok2 := a.invite(fm, "rev@example.com", "viewer")
		if r := accept(rtok, testPassword); r.status != 400 || r.errCode() != "invalid_token" {
			t.Errorf("replaced: %d %s", r.status, r.raw)
		}
		items := a.must(200, "GET", "/api/v1/invitations", nil).body["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["role"] != "viewer" {
			t.Fatalf("pending = %v", items)
		}
		a.must(204, "DELETE", "/api/v1/invitations/"+fmt.Sprint(items[0].(map[string]any)["id"]), nil)
		if r := accept(rtok2, testPassword); r.status != 400 || r.errCode() != "invalid_token" {
			t.Errorf("revoked: %d %s", r.status, r.raw)
		}
		// An existing account: neither anonymous nor another account's session may accept; the password may.
		btok := a.invite(fm, "b@example.com", "member")
		if r := accept(btok, ""); r.status != 401 || r.errCode() != "login_required" {
			t.Errorf("anonymous for existing account: %d %s", r.status, r.raw)
		}
		if r := a.do("POST", "/api/v1/invitations/accept", map[string]string{"token": btok}); r.status != 401 {
			t.Errorf("accept by another account's session: %d %s", r.status, r.raw)
		}
		stolen := &client{e: e, cookie: b.cookie} // b's cookie without its CSRF token
		if r := stolen.do("POST", "/api/v1/invitations/accept", map[string]string{"token": btok}); r.status != 401 {
			t.Errorf("accept without CSRF token: %d %s", r.status, r.raw)
		}
		if r := accept(btok, "wrong password!!"); r.status != 401 || r.errCode() != "invalid_credentials" {
			t.Errorf("wrong password: %d %s", r.status, r.raw)
		}
		anon.must(200, "POST", "/api/v1/invitations/accept", map[string]string{"token": btok, "password": testPassword})
		a.must(409, "POST", "/api/v1/invitations", map[string]string{"email": "b@example.com", "role": "member"})
		// A mail failure leaves no invitation behind.
		fm.mu.Lock()
		fm.fail = true
		fm.mu.Unlock()
		if r := a.must(502, "POST", "/api/v1/invitations", map[string]string{"email": "z@example.com", "role": "member"}); r.errCode() != "mail_failed" {
			t.Errorf("mail failure: %s", r.raw)
		}
		if n := len(a.must(200, "GET", "/api/v1/invitations", nil).body["items"].([]any)); n != 0 {
			t.Errorf("an unsent invitation is pending")
		}
		assertNowhere(t, e, tok, etok, rtok, rtok2, btok)
		assertNotInResponses(t, e, tok, etok, rtok, rtok2, btok)
	})
}

// TestNoMailer checks that without a mailer messages are dropped with a warning that names the recipient but
// not the token, and that without PublicURL links are relative.
func TestNoMailer(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/stoa.db")
	a := e.signup("a@example.com")
	a.must(201, "POST", "/api/v1/invitations", map[string]string{"email": "new@example.com", "role": "member"})
	e.logMu.Lock()
	logs := e.logs.String()
	e.logMu.Unlock()
	if !strings.Contains(logs, "message dropped") || !strings.Contains(logs, "new@example.com") || strings.Contains(logs, "token=") {
		t.Errorf("logs: %s", logs)
	}
	fm := &fakeMailer{}
	e.cs.team.mailer = fm
	a.must(201, "POST", "/api/v1/invitations", map[string]string{"email": "new@example.com", "role": "member"})
	if !strings.Contains(fm.msgs[0].Body, "\n/console/invite?token=") {
		t.Errorf("link is not relative: %q", fm.msgs[0].Body)
	}
}

// TestOwnersDemoteEachOther checks that two owners demoting each other at once leave one owner: membership
// changes of an organisation are serialised.
func TestOwnersDemoteEachOther(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e, fm := newTeamEnv(t, dsn)
		a := e.signup("a@example.com")
		b := &client{e: e}
		b.must(201, "POST", "/api/v1/invitations/accept", map[string]string{"token": a.invite(fm, "b@example.com", "owner"), "password": testPassword})
		aID, bID := a.memberID("a@example.com"), a.memberID("b@example.com")
		for round := range 5 {
			statuses := make([]int, 2)
			var wg sync.WaitGroup
			for i, call := range []struct {
				c  *client
				id string
			}{{a, bID}, {b, aID}} {
				wg.Go(func() {
					req, _ := http.NewRequest("PATCH", e.srv.URL+"/api/v1/members/"+call.id, strings.NewReader(`{"role":"admin"}`))
					req.AddCookie(&http.Cookie{Name: SessionCookie, Value: call.c.cookie})
					req.Header.Set("X-CSRF-Token", call.c.csrf)
					res, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					res.Body.Close()
					statuses[i] = res.StatusCode
				})
			}
			wg.Wait()
			slices.Sort(statuses)
			// The loser is refused as the last owner, or as an admin by then.
			if statuses[0] != 200 || (statuses[1] != 409 && statuses[1] != 403) {
				t.Fatalf("round %d: statuses %v, want one 200 and one 409 or 403", round, statuses)
			}
			var owners int
			e.db.QueryRow(e.db.Rebind("SELECT COUNT(*) FROM memberships WHERE role = 'owner'")).Scan(&owners)
			if owners != 1 {
				t.Fatalf("round %d: %d owners", round, owners)
			}
			// Whoever is still owner makes the other owner again.
			var owner string
			e.db.QueryRow(e.db.Rebind("SELECT a.email FROM memberships m JOIN accounts a ON a.id = m.account_id WHERE m.role = 'owner'")).Scan(&owner)
			if owner == "a@example.com" {
				a.must(200, "PATCH", "/api/v1/members/"+bID, map[string]string{"role": "owner"})
			} else {
				b.must(200, "PATCH", "/api/v1/members/"+aID, map[string]string{"role": "owner"})
			}
		}
	})
}

// TestAcceptWithPasswordIsLogged: proving an account's password to accept an invitation is a login attempt, and
// the access log records it like one, failed or not.
func TestAcceptWithPasswordIsLogged(t *testing.T) {
	e, fm := newTeamEnv(t, filepath.Join(t.TempDir(), "c.db"))
	owner := e.signup("owner@example.com")
	bea := e.signup("bea@example.com")
	tok := owner.invite(fm, "bea@example.com", "member")
	anon := &client{e: e}
	anon.must(401, "POST", "/api/v1/invitations/accept", map[string]string{"token": tok, "password": "not her password!"})
	anon.must(200, "POST", "/api/v1/invitations/accept", map[string]string{"token": tok, "password": testPassword})
	var got []string
	for _, it := range bea.must(200, "GET", "/api/v1/access-log", nil).body["items"].([]any) { // hers alone
		m := it.(map[string]any)
		got = append(got, fmt.Sprint(m["email"], " ", m["result"]))
	}
	if want := []string{"bea@example.com success", "bea@example.com failure"}; !slices.Equal(got, want) {
		t.Errorf("access log %v, want %v", got, want)
	}
}

func TestRenameOrganisation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e, fm := newTeamEnv(t, dsn)
		owner := e.signup("owner@example.com")
		owner.must(400, "PATCH", "/api/v1/organisation", map[string]string{"name": "  "})
		if r := owner.must(200, "PATCH", "/api/v1/organisation", map[string]string{"name": "Acme Voice"}); r.body["name"] != "Acme Voice" {
			t.Errorf("rename: %s", r.raw)
		}
		orgs := owner.must(200, "GET", "/api/v1/organisations", nil).body["items"].([]any)
		if orgs[0].(map[string]any)["name"] != "Acme Voice" {
			t.Errorf("organisations: %v", orgs)
		}
		tok := owner.invite(fm, "viewer@example.com", "viewer")
		viewer := &client{e: e}
		viewer.must(201, "POST", "/api/v1/invitations/accept", map[string]string{"token": tok, "password": testPassword})
		viewer.must(403, "PATCH", "/api/v1/organisation", map[string]string{"name": "Mine now"})
		owner.apiKey().must(403, "PATCH", "/api/v1/organisation", map[string]string{"name": "Key's"})
		if got := auditEntries(t, e); !slices.ContainsFunc(got, func(s string) bool {
			return strings.Contains(s, "organisation.rename") && strings.Contains(s, "Acme Voice")
		}) {
			t.Errorf("no organisation.rename entry: %v", got)
		}
	})
}
