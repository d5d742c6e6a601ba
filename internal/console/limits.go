package console

// Login throttling and request limits, counted in the database so that every console sharing it enforces the
// same limits: with consoles behind a load balancer, an attacker gains nothing by spreading attempts.

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/stoa-rtc/stoa/internal/store"
)

// limiter keeps fixed-window counters and lockouts per key in the rate_counters table.
type limiter struct{ db *store.DB }

// bump counts one event for key in its current window (a new one starts once the last is period old) and
// returns the window's count and the end of key's lockout (the zero time if it was never locked). It is one
// statement, so that concurrent bumps, from any console sharing the database, each get a count of their own;
// while key is locked out its count stands still.
func (l limiter) bump(ctx context.Context, key string, period time.Duration, now time.Time) (int64, time.Time, error) {
	us, expired := now.UnixMicro(), now.Add(-period).UnixMicro()
	var n, until int64
	err := l.db.QueryRowContext(ctx, l.db.Rebind(`INSERT INTO rate_counters (counter_key, window_start_us, count) VALUES (?, ?, 1)
		ON CONFLICT (counter_key) DO UPDATE SET
			count = CASE WHEN rate_counters.locked_until_us > ? THEN rate_counters.count
				WHEN rate_counters.window_start_us <= ? THEN 1 ELSE rate_counters.count + 1 END,
			window_start_us = CASE WHEN rate_counters.locked_until_us > ? THEN rate_counters.window_start_us
				WHEN rate_counters.window_start_us <= ? THEN ? ELSE rate_counters.window_start_us END
		RETURNING count, locked_until_us`), key, us, us, expired, us, expired, us).Scan(&n, &until)
	if err != nil || until == 0 {
		return n, time.Time{}, err
	}
	return n, time.UnixMicro(until), nil
}

// unbump takes back one event of key's window.
func (l limiter) unbump(ctx context.Context, key string) error {
	_, err := l.db.ExecContext(ctx, l.db.Rebind("UPDATE rate_counters SET count = count - 1 WHERE counter_key = ? AND count > 0"), key)
	return err
}

// lockFull locks key out until until if its window has counted limit events.
func (l limiter) lockFull(ctx context.Context, key string, limit int64, until time.Time) error {
	_, err := l.db.ExecContext(ctx, l.db.Rebind("UPDATE rate_counters SET locked_until_us = ? WHERE counter_key = ? AND count >= ?"),
		until.UnixMicro(), key, limit)
	return err
}

// lockedFor returns how long the longest lockout of keys lasts from now, 0 if none is locked.
func (l limiter) lockedFor(ctx context.Context, now time.Time, keys ...string) (time.Duration, error) {
	var wait time.Duration
	for _, k := range keys {
		var until int64
		err := l.db.QueryRowContext(ctx, l.db.Rebind("SELECT locked_until_us FROM rate_counters WHERE counter_key = ?"), k).Scan(&until)
		if err == sql.ErrNoRows {
			continue
		}
		if err != nil {
			return 0, err
		}
		wait = max(wait, time.UnixMicro(until).Sub(now))
	}
	return wait, nil
}

// clear forgets key.
func (l limiter) clear(ctx context.Context, key string) error {
	_, err := l.db.ExecContext(ctx, l.db.Rebind("DELETE FROM rate_counters WHERE counter_key = ?"), key)
	return err
}

// loginKey is a counter of login attempts and its limit.
type loginKey struct {
	key   string
	limit int64
}

// loginKeys are the counters of login attempts for an email and from an address.
func loginKeys(email, ip string) [2]loginKey {
	return [2]loginKey{{"login:e:" + email, MaxEmailFailures}, {"login:i:" + ip, MaxIPFailures}}
}

// loginLocked returns how long email or ip stays locked out, 0 if neither is. A database failure locks no one
// out (loginAttempt, which follows, fails on the same database) and is logged.
func (cs *Console) loginLocked(ctx context.Context, now time.Time, email, ip string) time.Duration {
	k := loginKeys(email, ip)
	wait, err := cs.limits.lockedFor(ctx, now, k[0].key, k[1].key)
	if err != nil {
		cs.log.Error("reading login counters failed", "err", err)
	}
	return wait
}

// loginAttempt counts an attempt to prove who email is (a password, a second-factor code or a current password)
// from ip before it is checked, so that concurrent attempts cannot all pass a lockout check made before any of
// them failed: within LockoutPeriod at most MaxEmailFailures attempts for an email and MaxIPFailures from an
// address are checked, on every console sharing the database. It returns a *lockedError when the attempt must
// not be checked (and then it counts on neither key), or the database's error if it cannot count. The caller
// reports the outcome of a checked attempt with loginFailed, loginUncount or loginSucceeded.
func (cs *Console) loginAttempt(ctx context.Context, now time.Time, email, ip string) error {
	if wait := cs.loginLocked(ctx, now, email, ip); wait > 0 {
		return &lockedError{wait} // the common case, without writing
	}
	keys := loginKeys(email, ip)
	if err := cs.loginCount(ctx, now, keys[0]); err != nil {
		return err
	}
	if err := cs.loginCount(ctx, now, keys[1]); err != nil {
		if err := cs.limits.unbump(ctx, keys[0].key); err != nil {
			cs.log.Error("uncounting a login attempt failed", "err", err)
		}
		return err
	}
	return nil
}

// loginCount counts an attempt on k, refusing it while k is locked out or over its limit.
func (cs *Console) loginCount(ctx context.Context, now time.Time, k loginKey) error {
	n, until, err := cs.limits.bump(ctx, k.key, LockoutPeriod, now)
	if err != nil {
		return fmt.Errorf("console: counting a login attempt: %w", err)
	}
	if wait := until.Sub(now); wait > 0 {
		return &lockedError{wait}
	}
	if n > k.limit { // this attempt raced others past the lockout check; the count stays, so that they lock out
		if err := cs.limits.lockFull(ctx, k.key, k.limit, now.Add(LockoutPeriod)); err != nil {
			return fmt.Errorf("console: locking out: %w", err)
		}
		return &lockedError{LockoutPeriod}
	}
	return nil
}

// loginFailed reports a counted attempt for email from ip that failed, locking out for LockoutPeriod the email
// or the address whose window has reached its limit.
func (cs *Console) loginFailed(ctx context.Context, now time.Time, email, ip string) {
	for _, k := range loginKeys(email, ip) {
		if err := cs.limits.lockFull(ctx, k.key, k.limit, now.Add(LockoutPeriod)); err != nil {
			cs.log.Error("locking out failed", "err", err)
		}
	}
}

// loginUncount takes back a counted attempt that proved what it checked without completing a login (a right
// password still waiting for its second factor, a right current password).
func (cs *Console) loginUncount(ctx context.Context, email, ip string) {
	for _, k := range loginKeys(email, ip) {
		if err := cs.limits.unbump(ctx, k.key); err != nil {
			cs.log.Error("uncounting a login attempt failed", "err", err)
		}
	}
}

// loginSucceeded reports a counted attempt that logged in: email's failures are forgotten, and the attempt is
// taken back from ip's count (but not ip's failures: one good password does not clear a flood).
func (cs *Console) loginSucceeded(ctx context.Context, email, ip string) {
	cs.loginForget(ctx, email)
	if err := cs.limits.unbump(ctx, loginKeys(email, ip)[1].key); err != nil {
		cs.log.Error("uncounting a login attempt failed", "err", err)
	}
}

// loginForget forgets email's failures and lifts its lockout.
func (cs *Console) loginForget(ctx context.Context, email string) {
	if err := cs.limits.clear(ctx, "login:e:"+email); err != nil {
		cs.log.Error("clearing login counters failed", "err", err)
	}
}

// allow counts a request for key and reports whether it is within limit per period. A database failure refuses.
func (cs *Console) allow(ctx context.Context, now time.Time, key string, limit int64, period time.Duration) bool {
	n, _, err := cs.limits.bump(ctx, key, period, now)
	if err != nil {
		cs.log.Error("counting a request failed", "err", err)
		return false
	}
	return n <= limit
}
