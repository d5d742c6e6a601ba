package console

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stoa-rtc/stoa/internal/store/storetest"
)

// TestCrossOrganisationEveryRoute calls every API route with another organisation's session and API key. A route
// with an {id} gets the id of organisation A's resource and must answer 403 or 404, leak nothing of A and change
// nothing; a list or document route must not show A's data. A new {id} route without a resource here fails the
// test, so that no route goes unchecked.
func TestCrossOrganisationEveryRoute(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		a := e.signup("owner-a@example.net")
		b := e.signup("b@example.com")
		pid, appID, cert := a.createProject()
		akey := a.apiKey()
		keys := a.must(200, "GET", "/api/v1/apikeys", nil).body["items"].([]any)
		inv := a.must(201, "POST", "/api/v1/invitations", map[string]string{"email": "invitee-c@example.net", "role": "member"})
		members := a.must(200, "GET", "/api/v1/members", nil).body["items"].([]any)
		ids := map[string]string{
			"/api/v1/projects/{id}":    pid,
			"/api/v1/apikeys/{id}":     fmt.Sprint(keys[0].(map[string]any)["id"]),
			"/api/v1/members/{id}":     fmt.Sprint(members[0].(map[string]any)["id"]),
			"/api/v1/invitations/{id}": fmt.Sprint(inv.body["id"]),
		}
		// Valid bodies, so that no request stops at validation before the organisation check.
		bodies := map[string]any{
			"PATCH /api/v1/projects/{id}":      map[string]any{"enabled": false, "name": "taken"},
			"POST /api/v1/projects/{id}/token": map[string]any{"channel": "c", "uid": "1"},
			"PATCH /api/v1/members/{id}":       map[string]any{"role": "viewer"},
		}
		snapshot := func() string {
			var s strings.Builder
			for _, p := range []string{"/api/v1/projects/" + pid, "/api/v1/projects/" + pid + "/certificate", "/api/v1/apikeys", "/api/v1/members", "/api/v1/invitations"} {
				s.WriteString(a.must(200, "GET", p, nil).raw)
			}
			return s.String()
		}
		before := snapshot()
		secrets := []string{appID, cert, akey.keyID, "owner-a@example.net", "invitee-c@example.net"}
		bkey := b.apiKey()
		tried := 0
		for _, rt := range e.cs.Routes() {
			method, path, _ := strings.Cut(rt, " ")
			i := strings.Index(path, "{id}")
			if i < 0 && method != "GET" {
				continue // creations and account actions concern the caller's own organisation or account
			}
			target := path
			if i >= 0 {
				id, ok := ids[path[:i+len("{id}")]]
				if !ok {
					t.Errorf("%s: no resource of another organisation to try; add one to this test", rt)
					continue
				}
				target = strings.Replace(path, "{id}", id, 1)
			}
			for _, caller := range []*client{b, bkey} {
				r := caller.do(method, target, bodies[rt])
				if i >= 0 && r.status != 403 && r.status != 404 {
					t.Errorf("%s %s by another organisation (API key %v) = %d %s", method, target, caller.keyID != "", r.status, r.raw)
				}
				for _, s := range secrets {
					if strings.Contains(r.raw, s) {
						t.Errorf("%s %s by another organisation (API key %v) shows %q", method, target, caller.keyID != "", s)
					}
				}
				tried++
			}
		}
		if after := snapshot(); after != before {
			t.Errorf("organisation A changed:\nbefore %s\nafter  %s", before, after)
		}
		if tried < 20 {
			t.Errorf("only %d calls tried", tried)
		}
	})
}
