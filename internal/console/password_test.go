package console

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/store/storetest"
)

const newPassword = "a-completely-new-passphrase"

func TestPasswordChange(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e, _ := newTeamEnv(t, dsn)
		c := e.signup("ada@example.com")
		other := e.login("ada@example.com", testPassword)
		old := c.cookie
		if r := c.must(403, "POST", "/api/v1/account/password", map[string]string{"current_password": "wrong password!!", "new_password": newPassword}); r.errCode() != "invalid_credentials" {
			t.Errorf("wrong current password: %s", r.raw)
		}
		c.must(400, "POST", "/api/v1/account/password", map[string]string{"current_password": testPassword, "new_password": "short"})
		c.must(200, "POST", "/api/v1/account/password", map[string]string{"current_password": testPassword, "new_password": newPassword})
		// Every session from before the change is gone, the caller's included; the caller has a new one.
		if c.cookie == old {
			t.Error("the session id survived the password change")
		}
		(&client{e: e, cookie: old}).must(401, "GET", "/api/v1/session", nil)
		other.must(401, "GET", "/api/v1/session", nil)
		c.must(200, "GET", "/api/v1/session", nil)
		(&client{e: e}).must(401, "POST", "/api/v1/login", map[string]string{"email": "ada@example.com", "password": testPassword})
		e.login("ada@example.com", newPassword)
		// Wrong current passwords count in the login throttle.
		for range MaxEmailFailures {
			c.must(403, "POST", "/api/v1/account/password", map[string]string{"current_password": "wrong password!!", "new_password": newPassword})
		}
		c.must(429, "POST", "/api/v1/account/password", map[string]string{"current_password": newPassword, "new_password": testPassword})
		if !hasAudit(auditEntries(t, e), "account.password.change", "ada@example.com") {
			t.Error("no audit entry")
		}
		assertNowhere(t, e, testPassword, newPassword)
		assertNotInResponses(t, e, newPassword)
	})
}

func TestPasswordReset(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e, fm := newTeamEnv(t, dsn)
		c := e.signup("ada@example.com")
		anon := &client{e: e}
		// Known and unknown emails get the same answer, and a mail each.
		known := anon.must(202, "POST", "/api/v1/password-reset", map[string]string{"email": "ADA@example.com"})
		tok := fm.token(t, "ada@example.com")
		if !strings.Contains(fm.msgs[0].Body, publicURL+"/console/reset-password?token="+tok) {
			t.Errorf("reset mail: %q", fm.msgs[0].Body)
		}
		unknown := anon.must(202, "POST", "/api/v1/password-reset", map[string]string{"email": "nobody@example.com"})
		if known.raw != unknown.raw || known.header.Get("Content-Type") != unknown.header.Get("Content-Type") {
			t.Errorf("answers differ: %s / %s", known.raw, unknown.raw)
		}
		if fm.count() != 2 || fm.msgs[1].To != "nobody@example.com" || strings.Contains(fm.msgs[1].Body, "token=") {
			t.Errorf("unknown email's mail: %+v", fm.msgs)
		}
		anon.must(400, "POST", "/api/v1/password-reset", map[string]string{"email": "not an email"})

		confirm := func(tok, pw string) resp {
			return anon.do("POST", "/api/v1/password-reset/confirm", map[string]string{"token": tok, "password": pw})
		}
		if r := confirm(strings.Repeat("A", 43), newPassword); r.status != 400 || r.errCode() != "invalid_token" {
			t.Errorf("unknown token: %d %s", r.status, r.raw)
		}
		if r := confirm(tok, "short"); r.status != 400 || r.errCode() != "invalid_password" {
			t.Errorf("short password: %d %s", r.status, r.raw)
		}
		other := e.login("ada@example.com", testPassword)
		if r := confirm(tok, newPassword); r.status != 204 {
			t.Fatalf("confirm: %d %s", r.status, r.raw)
		}
		// Every session ended; only the new password works; the token is single use.
		c.must(401, "GET", "/api/v1/session", nil)
		other.must(401, "GET", "/api/v1/session", nil)
		(&client{e: e}).must(401, "POST", "/api/v1/login", map[string]string{"email": "ada@example.com", "password": testPassword})
		e.login("ada@example.com", newPassword)
		if r := confirm(tok, testPassword); r.status != 409 || r.errCode() != "token_used" {
			t.Errorf("used token: %d %s", r.status, r.raw)
		}
		// Tokens expire after an hour.
		anon.must(202, "POST", "/api/v1/password-reset", map[string]string{"email": "ada@example.com"})
		etok := fm.token(t, "ada@example.com")
		e.clock.add(ResetLifetime + time.Second)
		if r := confirm(etok, testPassword); r.status != 410 || r.errCode() != "token_expired" {
			t.Errorf("expired token: %d %s", r.status, r.raw)
		}
		// A reset keeps TOTP.
		c = e.login("ada@example.com", newPassword)
		secret := c.must(201, "POST", "/api/v1/account/totp", nil).body["secret"].(string)
		c.must(204, "POST", "/api/v1/account/totp/confirm", map[string]string{"code": e.code(secret, 0)})
		anon.must(202, "POST", "/api/v1/password-reset", map[string]string{"email": "ada@example.com"})
		ttok := fm.token(t, "ada@example.com")
		if r := confirm(ttok, testPassword); r.status != 204 {
			t.Fatalf("confirm: %d %s", r.status, r.raw)
		}
		if r := anon.do("POST", "/api/v1/login", map[string]string{"email": "ada@example.com", "password": testPassword}); r.errCode() != "totp_required" {
			t.Errorf("login after reset with TOTP: %s", r.raw)
		}
		// A password change voids pending reset tokens.
		e.clock.add(time.Hour)
		anon.must(202, "POST", "/api/v1/password-reset", map[string]string{"email": "ada@example.com"})
		vtok := fm.token(t, "ada@example.com")
		c = &client{e: e}
		c.must(200, "POST", "/api/v1/login", map[string]string{"email": "ada@example.com", "password": testPassword, "totp": e.code(secret, 0)})
		c.must(200, "POST", "/api/v1/account/password", map[string]string{"current_password": testPassword, "new_password": newPassword})
		if r := confirm(vtok, testPassword); r.errCode() != "token_used" {
			t.Errorf("token after password change: %s", r.raw)
		}
		entries := auditEntries(t, e)
		if !hasAudit(entries, "account.password.reset ") || !hasAudit(entries, "account.password.reset_request") {
			t.Errorf("audit: %v", entries)
		}
		assertNowhere(t, e, tok, etok, ttok, vtok, newPassword, testPassword)
		assertNotInResponses(t, e, tok, etok, ttok, vtok, newPassword, testPassword)
	})
}

func TestPasswordResetLimits(t *testing.T) {
	e, fm := newTeamEnv(t, t.TempDir()+"/stoa.db")
	e.signup("ada@example.com")
	anon := &client{e: e}
	// Per email: beyond the limit nothing is sent, and the answer is the same.
	for range ResetsPerEmail + 2 {
		anon.must(202, "POST", "/api/v1/password-reset", map[string]string{"email": "ada@example.com"})
	}
	if fm.count() != ResetsPerEmail {
		t.Errorf("%d mails, want %d", fm.count(), ResetsPerEmail)
	}
	// Per address: 429.
	for i := range ResetsPerIP - ResetsPerEmail - 2 {
		anon.must(202, "POST", "/api/v1/password-reset", map[string]string{"email": fmt.Sprintf("u%d@example.com", i)})
	}
	if r := anon.must(429, "POST", "/api/v1/password-reset", map[string]string{"email": "z@example.com"}); r.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	e.clock.add(time.Hour + time.Second)
	anon.must(202, "POST", "/api/v1/password-reset", map[string]string{"email": "ada@example.com"})
	if fm.count() != ResetsPerIP-1 {
		t.Errorf("%d mails, want %d", fm.count(), ResetsPerIP-1)
	}
}
