package console

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/store"
	"github.com/stoa-rtc/stoa/internal/store/storetest"
)

// checkGate counts the password checks of consoles and holds each one until every attempt of a flood has
// either reached its check or been answered. With the lockout checked before the password and the failure
// counted after it (the code of finding 3), every attempt of the flood reached its check before any failure
// was counted; the gate makes that race certain instead of likely.
type checkGate struct {
	checks   atomic.Int64
	answered atomic.Int64
	release  chan struct{}
	once     sync.Once
	total    int64
}

func newCheckGate(total int) *checkGate {
	return &checkGate{release: make(chan struct{}), total: int64(total)}
}

// check is the consoles' onPasswordCheck hook.
func (g *checkGate) check() {
	g.checks.Add(1)
	g.maybeRelease()
	<-g.release
}

// answer records an attempt answered.
func (g *checkGate) answer() {
	g.answered.Add(1)
	g.maybeRelease()
}

func (g *checkGate) maybeRelease() {
	if g.checks.Load()+g.answered.Load() >= g.total {
		g.once.Do(func() { close(g.release) })
	}
}

// sharedConsole starts another console on e's database through a connection pool of its own, as a second
// console process would, calling hook before each password check.
func sharedConsole(t *testing.T, e *env, dsn string, hook func()) *env {
	db, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cs, err := New(Config{DB: db, Audit: e.cs.audit, KeyFile: e.keyFile, Clock: e.clock.now,
		Argon2: &Argon2Params{Time: 1, Memory: 64, Threads: 1}, onPasswordCheck: hook})
	if err != nil {
		t.Fatal(err)
	}
	other := *e
	other.db, other.cs = db, cs
	other.srv = httptest.NewServer(cs.Handler())
	t.Cleanup(other.srv.Close)
	return &other
}

// TestLockoutRace covers finding 3 (the login lockout could be raced: 50 concurrent wrong passwords for one
// email got 44 password checks). Fifty concurrent wrong logins, spread over two consoles sharing the database,
// get at most the limit of password checks, and leave the email (or, with fifty emails, the address) locked out
// on both consoles, even for the right password.
func TestLockoutRace(t *testing.T) {
	const flood = 50
	for _, tc := range []struct {
		name  string
		email func(i int) string
		limit int64
	}{
		{"one email", func(int) string { return "ada@example.com" }, MaxEmailFailures},
		{"one address", func(i int) string { return fmt.Sprintf("u%d@example.com", i) }, MaxIPFailures},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, dsn string) {
				e := newEnv(t, dsn)
				e.signup("ada@example.com")
				g := newCheckGate(flood)
				consoles := []*env{sharedConsole(t, e, dsn, g.check), sharedConsole(t, e, dsn, g.check)}
				statuses := make([]int, flood)
				var wg sync.WaitGroup
				for i := range flood {
					wg.Go(func() {
						defer g.answer()
						body := fmt.Sprintf(`{"email": %q, "password": "wrong password!!"}`, tc.email(i))
						res, err := http.Post(consoles[i%2].srv.URL+"/api/v1/login", "application/json", strings.NewReader(body))
						if err != nil {
							t.Error(err)
							return
						}
						res.Body.Close()
						statuses[i] = res.StatusCode
					})
				}
				wg.Wait()
				var refused int64
				for _, s := range statuses {
					if s == 429 {
						refused++
					} else if s != 401 {
						t.Errorf("status %d, want 401 or 429", s)
					}
				}
				if n := g.checks.Load(); n > tc.limit || n == 0 || n+refused != flood {
					t.Errorf("%d password checks and %d refusals for %d attempts, want at most %d checks", n, refused, flood, tc.limit)
				}
				for _, cs := range consoles {
					(&client{e: cs}).must(429, "POST", "/api/v1/login", map[string]string{"email": "ada@example.com", "password": testPassword})
				}
			})
		})
	}
}

// TestLoginAttemptsTakenBack: attempts are counted before they are checked, and taken back when they prove
// what they checked: right passwords count nothing against the address, and a right password that still needs
// its second factor counts nothing against the email either, without clearing its failures.
func TestLoginAttemptsTakenBack(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		c := e.signup("ada@example.com")
		anon := &client{e: e}
		good := map[string]string{"email": "ada@example.com", "password": testPassword}
		for range MaxIPFailures + 1 {
			anon.must(200, "POST", "/api/v1/login", good)
		}
		var n int64
		if err := e.db.QueryRow(e.db.Rebind("SELECT count FROM rate_counters WHERE counter_key = ?"), "login:i:127.0.0.1").Scan(&n); err != nil || n != 0 {
			t.Errorf("address count after right passwords: %d %v", n, err)
		}

		secret := c.must(201, "POST", "/api/v1/account/totp", nil).body["secret"].(string)
		c.must(204, "POST", "/api/v1/account/totp/confirm", map[string]string{"code": e.code(secret, 0)})
		for range 2 * MaxEmailFailures {
			if r := anon.do("POST", "/api/v1/login", good); r.errCode() != "totp_required" {
				t.Fatalf("right password without a code: %d %s", r.status, r.raw)
			}
		}
		withCode := map[string]string{"email": "ada@example.com", "password": testPassword, "totp": "000000"}
		for range MaxEmailFailures - 1 {
			anon.must(401, "POST", "/api/v1/login", withCode)
		}
		anon.must(401, "POST", "/api/v1/login", good) // totp_required: the failures stay
		anon.must(401, "POST", "/api/v1/login", withCode)
		e.clock.add(time.Minute)
		withCode["totp"] = e.code(secret, 0)
		anon.must(429, "POST", "/api/v1/login", withCode)
	})
}
