package console

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/store/storetest"
)

// TestEnsureDevAccount: stoa dev's owner account and demo project are created once, with a generated password
// that logs in and a project its organisation lists; kept values change nothing; a changed certificate or 006
// setting is published; a lost password is replaced (ending the old one's sessions); another organisation's
// project is refused.
func TestEnsureDevAccount(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := context.Background()
		const appID, cert, cert2 = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210", "00112233445566778899aabbccddeeff"
		// A record of the project on the bus from before it was the console's (stoa dev used to publish it itself).
		e.fc.PutProject(ctx, cluster.Project{AppID: appID, Version: 5, Certificates: []string{cert}, Enabled: true})

		a, fresh, err := e.cs.EnsureDevAccount(ctx, DevAccount{Email: " Dev@Stoa.Local", AppID: appID, Certificate: cert})
		if err != nil {
			t.Fatal(err)
		}
		if !fresh || len(a.Password) != 32 || a.Email != "dev@stoa.local" {
			t.Fatalf("first run: fresh %v, account %v with a %d-byte password", fresh, a, len(a.Password))
		}
		if p := e.fc.last(); p.AppID != appID || p.Version != 6 || !slices.Equal(p.Certificates, []string{cert}) || !p.Enabled {
			t.Errorf("published %+v, want version 6 with the certificate", p)
		}
		owner := &client{e: e}
		login := func(c *client, password string) resp {
			return c.do("POST", "/api/v1/login", map[string]string{"email": a.Email, "password": password})
		}
		if r := login(owner, a.Password); r.status != 200 || r.body["role"] != "owner" {
			t.Fatalf("login with the generated password: %d %s", r.status, r.raw)
		}
		projects := func() []any {
			t.Helper()
			items, _ := owner.must(200, "GET", "/api/v1/projects", nil).body["items"].([]any)
			return items
		}
		if ps := projects(); len(ps) != 1 || ps[0].(map[string]any)["app_id"] != appID || ps[0].(map[string]any)["name"] != "demo" {
			t.Fatalf("projects: %v", ps)
		}
		id := fmt.Sprint(projects()[0].(map[string]any)["id"])

		puts := len(e.fc.puts)
		if _, fresh, err := e.cs.EnsureDevAccount(ctx, a); err != nil || fresh || len(e.fc.puts) != puts || len(projects()) != 1 {
			t.Errorf("second run: fresh %v, %v, %d publications (want %d), %d projects", fresh, err, len(e.fc.puts), puts, len(projects()))
		}
		owner.must(200, "GET", "/api/v1/session", nil) // the kept password ends no session

		b := a
		b.Certificate, b.Accept006 = cert2, true
		if _, _, err := e.cs.EnsureDevAccount(ctx, b); err != nil {
			t.Fatal(err)
		}
		if p := e.fc.last(); p.Version != 7 || !slices.Equal(p.Certificates, []string{cert2}) || !p.Accept006 {
			t.Errorf("after a new certificate and --accept-006: published %+v", p)
		}
		if r := owner.must(200, "GET", "/api/v1/projects/"+id+"/certificate", nil); r.body["primary"] != cert2 {
			t.Errorf("certificate: %s", r.raw)
		}

		lost := b
		lost.Password = ""
		c, fresh, err := e.cs.EnsureDevAccount(ctx, lost)
		if err != nil || !fresh || c.Password == a.Password {
			t.Fatalf("a lost password: fresh %v, %v", fresh, err)
		}
		owner.must(401, "GET", "/api/v1/session", nil)
		if r := login(&client{e: e}, a.Password); r.status != 401 {
			t.Errorf("the old password: %d", r.status)
		}
		if r := login(owner, c.Password); r.status != 200 || len(projects()) != 1 {
			t.Errorf("the new password: %d %s, %d projects", r.status, r.raw, len(projects()))
		}

		_, otherApp, _ := e.signup("ada@example.com").createProject()
		if _, _, err := e.cs.EnsureDevAccount(ctx, DevAccount{Email: a.Email, Password: c.Password, AppID: otherApp, Certificate: cert}); err == nil ||
			!strings.Contains(err.Error(), "another organisation") {
			t.Errorf("another organisation's project: %v", err)
		}
		if _, _, err := e.cs.EnsureDevAccount(ctx, DevAccount{Email: "not an email", AppID: appID, Certificate: cert}); err == nil {
			t.Error("a bad email was taken")
		}

		rows, err := e.db.Query("SELECT action FROM audit_log ORDER BY seq")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var actions []string
		for rows.Next() {
			var s string
			rows.Scan(&s)
			actions = append(actions, s)
		}
		want := []string{"account.create", "organisation.create", "project.create", "project.update", "account.password.reset"}
		if len(actions) < len(want) || !slices.Equal(actions[:len(want)], want) {
			t.Errorf("audit log: %v, want it to start with %v", actions, want)
		}
	})
}
