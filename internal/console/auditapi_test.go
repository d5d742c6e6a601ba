package console

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stoa-rtc/stoa/internal/store/storetest"
)

// pageAll walks path with ?limit=n&after=, returning every item in order.
func pageAll(t *testing.T, c *client, path string, n int) []map[string]any {
	t.Helper()
	var out []map[string]any
	next := ""
	for range 100 {
		q := path + "?limit=" + itoa(int64(n))
		if next != "" {
			q += "&after=" + next
		}
		r := c.must(200, "GET", q, nil)
		got := items(r)
		if len(got) > n {
			t.Fatalf("page of %d > limit %d", len(got), n)
		}
		out = append(out, got...)
		next, _ = r.body["next"].(string)
		if next == "" {
			return out
		}
	}
	t.Fatal("pagination does not end")
	return nil
}

func setRole(t *testing.T, e *env, email string, r role) {
	t.Helper()
	if _, err := e.db.Exec(e.db.Rebind("UPDATE memberships SET role = ? WHERE account_id = (SELECT id FROM accounts WHERE email = ?)"), string(r), email); err != nil {
		t.Fatal(err)
	}
}

func TestAuditAPI(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		alice, bob := e.signup("alice@example.com"), e.signup("bob@example.com")
		aID, aApp, aCert := alice.createProject()
		akey := alice.apiKey()
		_, aApp2, aCert2 := akey.createProject()
		aCert3 := alice.must(201, "POST", "/api/v1/projects/"+aID+"/certificates", nil).body["app_certificate"].(string)
		alice.must(200, "POST", "/api/v1/projects/"+aID+"/certificates/promote", nil)
		bID, bApp, bCert := bob.createProject()
		bkey := bob.apiKey()
		bkey.must(204, "DELETE", "/api/v1/projects/"+bID, nil)

		all := pageAll(t, alice, "/api/v1/audit", 100)
		if len(all) < 6 {
			t.Fatalf("alice sees %d entries: %v", len(all), all)
		}
		hexRE := regexp.MustCompile(`^[0-9a-f]{64}$`)
		var actions []string
		for i, it := range all {
			actions = append(actions, it["action"].(string))
			if i > 0 && it["seq"].(float64) >= all[i-1]["seq"].(float64) {
				t.Errorf("not newest first at %d: %v", i, all)
			}
			if !hexRE.MatchString(it["hash"].(string)) || !hexRE.MatchString(it["prev_hash"].(string)) {
				t.Errorf("hashes: %v", it)
			}
			for _, k := range []string{"time", "actor", "target", "before", "after"} {
				if _, ok := it[k]; !ok {
					t.Errorf("entry lacks %s: %v", k, it)
				}
			}
			s := it["actor"].(string) + " " + it["target"].(string)
			if strings.Contains(s, "bob") || strings.Contains(s, bApp) || strings.Contains(s, bkey.keyID) {
				t.Errorf("alice sees bob's entry: %v", it)
			}
		}
		joined := strings.Join(actions, ",")
		for _, want := range []string{"organisation.create", "project.create", "apikey.create"} {
			if !strings.Contains(joined, want) {
				t.Errorf("alice's audit lacks %s: %s", want, joined)
			}
		}
		// The project created with the API key appears, by actor and by target.
		found := false
		for _, it := range all {
			if it["target"] == "project:"+aApp2 && it["actor"] == "apikey:"+akey.keyID {
				found = true
			}
		}
		if !found {
			t.Errorf("API key's project.create missing: %v", all)
		}
		// Pagination: one at a time gives the same entries.
		if paged := pageAll(t, alice, "/api/v1/audit", 1); len(paged) != len(all) || paged[len(paged)-1]["seq"] != all[len(all)-1]["seq"] {
			t.Errorf("paged %d entries, want %d", len(paged), len(all))
		}
		// Bob sees his own entries (including his deletion by API key) and none of alice's.
		ball := pageAll(t, bob, "/api/v1/audit", 100)
		sawDelete := false
		for _, it := range ball {
			s := it["actor"].(string) + " " + it["target"].(string)
			if strings.Contains(s, "alice") || strings.Contains(s, aApp) || strings.Contains(s, aApp2) || strings.Contains(s, akey.keyID) {
				t.Errorf("bob sees alice's entry: %v", it)
			}
			if it["action"] == "project.delete" && it["target"] == "project:"+bApp {
				sawDelete = true
			}
		}
		if !sawDelete {
			t.Errorf("bob's deletion of a project missing: %v", ball)
		}
		// An organisation's API key acts as an admin and sees the same entries.
		if got := pageAll(t, akey, "/api/v1/audit", 100); len(got) != len(all) {
			t.Errorf("api key sees %d entries, want %d", len(got), len(all))
		}
		alice.must(400, "GET", "/api/v1/audit?after=x", nil)
		alice.must(400, "GET", "/api/v1/audit?limit=0", nil)
		(&client{e: e}).must(401, "GET", "/api/v1/audit", nil)

		// Never a secret: certificates, API key secrets, passwords.
		for _, c := range []*client{alice, bob, akey} {
			for _, p := range []string{"/api/v1/audit?limit=100", "/api/v1/access-log?limit=100"} {
				raw := c.do("GET", p, nil).raw
				for _, secret := range []string{aCert, aCert2, aCert3, bCert, akey.secret, bkey.secret, testPassword} {
					if strings.Contains(raw, secret) {
						t.Errorf("%s leaks a secret", p)
					}
				}
			}
		}

		// Members and viewers are refused the audit log, not their own logins.
		for _, r := range []role{roleMember, roleViewer} {
			setRole(t, e, "alice@example.com", r)
			alice.must(http.StatusForbidden, "GET", "/api/v1/audit", nil)
			alice.must(http.StatusOK, "GET", "/api/v1/access-log", nil)
		}
		setRole(t, e, "alice@example.com", roleAdmin)
		alice.must(200, "GET", "/api/v1/audit", nil)
	})
}

func TestAccessLogAPI(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		alice, bob := e.signup("alice@example.com"), e.signup("bob@example.com")
		anon := &client{e: e}
		anon.do("POST", "/api/v1/login", map[string]string{"email": "alice@example.com", "password": "wrong-password-123"})
		anon.must(200, "POST", "/api/v1/login", map[string]string{"email": "alice@example.com", "password": testPassword})
		anon.do("POST", "/api/v1/login", map[string]string{"email": "bob@example.com", "password": "wrong-password-456"})
		(&client{e: e}).must(200, "POST", "/api/v1/login", map[string]string{"email": "bob@example.com", "password": testPassword})
		anon.do("POST", "/api/v1/login", map[string]string{"email": "nobody@example.com", "password": "wrong-password-789"})

		got := pageAll(t, alice, "/api/v1/access-log", 100)
		var results []string
		for i, it := range got {
			if it["email"] != "alice@example.com" {
				t.Errorf("alice sees %v", it)
			}
			if it["ip"] == "" || it["user_agent"] != "console-test" || it["time"] == "" {
				t.Errorf("fields: %v", it)
			}
			if i > 0 && it["id"].(float64) >= got[i-1]["id"].(float64) {
				t.Errorf("not newest first: %v", got)
			}
			results = append(results, it["result"].(string))
		}
		if strings.Join(results, ",") != "success,failure" {
			t.Errorf("alice's logins: %v", got)
		}
		if paged := pageAll(t, alice, "/api/v1/access-log", 1); len(paged) != len(got) || paged[0]["id"] != got[0]["id"] {
			t.Errorf("paged: %v", paged)
		}
		bgot := pageAll(t, bob, "/api/v1/access-log", 100)
		if len(bgot) != 2 || bgot[0]["email"] != "bob@example.com" || bgot[1]["email"] != "bob@example.com" {
			t.Errorf("bob's logins: %v", bgot)
		}
		for _, c := range []*client{alice, bob} {
			raw := c.must(200, "GET", "/api/v1/access-log", nil).raw
			for _, s := range []string{"wrong-password", testPassword, "nobody@"} {
				if strings.Contains(raw, s) {
					t.Errorf("access log shows %q", s)
				}
			}
		}
		bob.apiKey().must(http.StatusForbidden, "GET", "/api/v1/access-log", nil) // an API key has no logins
		alice.must(400, "GET", "/api/v1/access-log?after=-1", nil)
		(&client{e: e}).must(401, "GET", "/api/v1/access-log", nil)
	})
}

// TestAuditStaysInItsOrganisation performs finding 4's attack: the owner of organisation A works in A, then
// accepts a viewer invitation to organisation E. E's owner reads the audit log and the access log, through the
// API and the web page, and must see nothing of A: not its name, projects (deleted or not), invitations, API
// keys, nor the owner's logins. Entries used to be matched to organisations by their actor's membership.
func TestAuditStaysInItsOrganisation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e, fm := newTeamEnv(t, dsn)
		const aOwner, eOwner = "owner-a@alpha.example", "owner-e@echo.example"
		a := e.signup(aOwner)
		a.must(200, "PATCH", "/api/v1/organisation", map[string]string{"name": "Alpha Hidden Works"})
		gone, goneApp, _ := a.createProject()
		a.must(204, "DELETE", "/api/v1/projects/"+gone, nil)
		_, keptApp, _ := a.createProject()
		a.invite(fm, "invitee@alpha.example", "member")
		akey := a.apiKey()
		a.must(200, "POST", "/api/v1/account/password", map[string]string{"current_password": testPassword, "new_password": testPassword + "-2"})
		(&client{e: e}).do("POST", "/api/v1/login", map[string]string{"email": aOwner, "password": "not-the-password"})
		e.login(aOwner, testPassword+"-2")

		ev := e.signup(eOwner)
		e.login(eOwner, testPassword)
		a.must(200, "POST", "/api/v1/invitations/accept", map[string]string{"token": ev.invite(fm, aOwner, "viewer")})
		_, laterApp, _ := a.createProject() // A's owner keeps working in A after joining E

		secrets := []string{"Alpha Hidden Works", goneApp, keptApp, laterApp, "invitee@alpha.example", akey.keyID}
		audit := pageAll(t, ev, "/api/v1/audit", 100)
		var actions []string
		for _, it := range audit {
			actions = append(actions, it["action"].(string))
			if it["actor"] == aOwner && it["action"] != "member.add" {
				t.Errorf("E's owner sees an entry of A's owner: %v", it)
			}
		}
		if got := strings.Join(actions, ","); got != "member.add,invitation.create,organisation.create" {
			t.Errorf("E's audit log = %s, want only E's own entries", got)
		}
		for _, it := range pageAll(t, ev, "/api/v1/access-log", 100) {
			if it["email"] != eOwner {
				t.Errorf("E's owner sees a login of another account: %v", it)
			}
		}
		webPage := ev.page("/console/audit")
		if webPage.status != 200 || !strings.Contains(webPage.raw, "member.add") {
			t.Fatalf("audit page: %d %s", webPage.status, webPage.raw)
		}
		for _, raw := range []string{ev.must(200, "GET", "/api/v1/audit?limit=100", nil).raw, ev.must(200, "GET", "/api/v1/access-log?limit=100", nil).raw, webPage.raw} {
			for _, s := range secrets {
				if strings.Contains(raw, s) {
					t.Errorf("E's owner sees %q of organisation A", s)
				}
			}
		}
		if _, logins, ok := strings.Cut(webPage.raw, `<table id="access">`); !ok || strings.Contains(logins, aOwner) || !strings.Contains(logins, eOwner) {
			t.Errorf("the audit page's logins: %s", logins)
		}

		// A's owner still sees all of A, and every login of her own, failures included.
		var aActions []string
		for _, it := range pageAll(t, a, "/api/v1/audit", 100) {
			aActions = append(aActions, it["action"].(string))
		}
		if got := strings.Join(aActions, ","); !strings.Contains(got, "project.delete") || !strings.Contains(got, "organisation.rename") ||
			!strings.Contains(got, "invitation.create") || strings.Contains(got, "member.add") || strings.Contains(got, "account.") {
			t.Errorf("A's audit log = %s", got)
		}
		var results []string
		for _, it := range pageAll(t, a, "/api/v1/access-log", 100) {
			results = append(results, it["result"].(string))
		}
		if strings.Join(results, ",") != "success,failure" {
			t.Errorf("A's owner's logins: %v", results)
		}
	})
}
