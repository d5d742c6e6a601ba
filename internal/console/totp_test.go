package console

import (
	"encoding/base32"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/store/storetest"
)

// code returns the TOTP code of the base32 secret at e's time plus d.
func (e *env) code(secret string, d time.Duration) string {
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		e.t.Fatal(err)
	}
	return hotp(key, uint64(totpStep(e.clock.now().Add(d))), 6)
}

func TestTOTP(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e, _ := newTeamEnv(t, dsn)
		c := e.signup("ada@example.com")
		c.must(409, "POST", "/api/v1/account/totp/confirm", map[string]string{"code": "123456"})
		c.must(409, "DELETE", "/api/v1/account/totp", map[string]string{"code": "123456"})
		r := c.must(201, "POST", "/api/v1/account/totp", nil)
		secret := r.body["secret"].(string)
		u, err := url.Parse(r.body["uri"].(string))
		if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("secret") != secret || u.Query().Get("issuer") != "Stoa" ||
			u.Query().Get("digits") != "6" || u.Query().Get("period") != "30" || !strings.Contains(u.Path, "ada@example.com") || len(secret) != 32 {
			t.Errorf("enrolment = %s", r.raw)
		}
		// Until confirmed, login needs no code.
		e.login("ada@example.com", testPassword)
		if r := c.must(401, "POST", "/api/v1/account/totp/confirm", map[string]string{"code": e.code(secret, -time.Minute)}); r.errCode() != "invalid_totp" {
			t.Errorf("confirm with old code: %s", r.raw)
		}
		first := e.code(secret, 0)
		c.must(204, "POST", "/api/v1/account/totp/confirm", map[string]string{"code": first})
		c.must(409, "POST", "/api/v1/account/totp", nil)

		login := func(code string) resp {
			body := map[string]string{"email": "ada@example.com", "password": testPassword}
			if code != "" {
				body["totp"] = code
			}
			return (&client{e: e}).do("POST", "/api/v1/login", body)
		}
		for _, tc := range []struct {
			name, code, want string
		}{
			{"no code", "", "totp_required"},
			{"wrong code", "000000", "invalid_totp"},
			{"replayed code", first, "invalid_totp"},
		} {
			if r := login(tc.code); r.status != 401 || r.errCode() != tc.want {
				t.Errorf("%s: %d %s", tc.name, r.status, r.raw)
			}
		}
		// A wrong password with the right code is a wrong password.
		if r := (&client{e: e}).do("POST", "/api/v1/login", map[string]string{"email": "ada@example.com", "password": "wrong password!!", "totp": e.code(secret, 30*time.Second)}); r.errCode() != "invalid_credentials" {
			t.Errorf("wrong password: %s", r.raw)
		}
		e.clock.add(30 * time.Second)
		next := e.code(secret, 0)
		if r := login(next); r.status != 200 {
			t.Errorf("login with code: %d %s", r.status, r.raw)
		}
		if r := login(next); r.errCode() != "invalid_totp" {
			t.Errorf("same code twice: %s", r.raw)
		}
		// Wrong codes count as failures: one since the last success, then four more.
		for range MaxEmailFailures - 1 {
			login("111111")
		}
		if r := login(e.code(secret, 30*time.Second)); r.status != 429 {
			t.Errorf("after %d failures: %d %s", MaxEmailFailures, r.status, r.raw)
		}
		e.clock.add(LockoutPeriod)
		c = &client{e: e}
		c.must(200, "POST", "/api/v1/login", map[string]string{"email": "ada@example.com", "password": testPassword, "totp": e.code(secret, 0)})
		// Disabling needs a fresh code.
		c.must(401, "DELETE", "/api/v1/account/totp", map[string]string{"code": e.code(secret, 0)})
		e.clock.add(30 * time.Second)
		c.must(204, "DELETE", "/api/v1/account/totp", map[string]string{"code": e.code(secret, 0)})
		e.login("ada@example.com", testPassword)
		entries := auditEntries(t, e)
		if !hasAudit(entries, "account.totp.enable", `"second_factor":true`) || !hasAudit(entries, "account.totp.disable", `"second_factor":false`) {
			t.Errorf("audit: %v", entries)
		}
		// The secret is sealed at rest and appears in no response but the enrolment's.
		assertNowhere(t, e, secret)
		n := 0
		for _, b := range *e.bodies {
			if strings.Contains(b, secret) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("the TOTP secret is in %d responses", n)
		}
	})
}
