package console

// Login throttling and request limits, counted in the database so that every console sharing it enforces the
// same limits: with consoles behind a load balancer, an attacker gains nothing by spreading attempts.

import (
	"context"
	"database/sql"
	"time"

	"github.com/stoa-rtc/stoa/internal/store"
)

// limiter keeps fixed-window counters and lockouts per key in the rate_counters table.
type limiter struct{ db *store.DB }

// bump counts one event for key in its current window (a new one starts once the last is period old) and
// returns the window's count.
func (l limiter) bump(ctx context.Context, key string, period time.Duration, now time.Time) (int64, error) {
	var n int64
	err := l.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, l.db.Rebind(`INSERT INTO rate_counters (counter_key, window_start_us, count) VALUES (?, ?, 0)
			ON CONFLICT (counter_key) DO NOTHING`), key, now.UnixMicro()); err != nil {
			return err
		}
		var start int64
		if err := tx.QueryRowContext(ctx, l.db.Rebind("SELECT window_start_us, count FROM rate_counters WHERE counter_key = ?"+l.db.ForUpdate()),
			key).Scan(&start, &n); err != nil {
			return err
		}
		if now.UnixMicro()-start >= period.Microseconds() {
			start, n = now.UnixMicro(), 0
		}
		n++
		_, err := tx.ExecContext(ctx, l.db.Rebind("UPDATE rate_counters SET window_start_us = ?, count = ? WHERE counter_key = ?"), start, n, key)
		return err
	})
	return n, err
}

// lock locks key out until until and starts a new window.
func (l limiter) lock(ctx context.Context, key string, now, until time.Time) error {
	_, err := l.db.ExecContext(ctx, l.db.Rebind("UPDATE rate_counters SET locked_until_us = ?, window_start_us = ?, count = 0 WHERE counter_key = ?"),
		until.UnixMicro(), now.UnixMicro(), key)
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

// loginKeys are the counters of failed logins for an email and an address, with their limits.
func loginKeys(email, ip string) [2]struct {
	key   string
	limit int64
} {
	return [2]struct {
		key   string
		limit int64
	}{{"login:e:" + email, MaxEmailFailures}, {"login:i:" + ip, MaxIPFailures}}
}

// loginLocked returns how long email or ip stays locked out, 0 if neither is. A database failure locks no one
// out (the login that follows fails on the same database anyway) and is logged.
func (cs *Console) loginLocked(ctx context.Context, now time.Time, email, ip string) time.Duration {
	k := loginKeys(email, ip)
	wait, err := cs.limits.lockedFor(ctx, now, k[0].key, k[1].key)
	if err != nil {
		cs.log.Error("reading login counters failed", "err", err)
	}
	return wait
}

// loginFailed counts a failed login (or second factor, or current password) for email and ip, locking each out
// for LockoutPeriod once it reaches its limit within LockoutPeriod.
func (cs *Console) loginFailed(ctx context.Context, now time.Time, email, ip string) {
	for _, k := range loginKeys(email, ip) {
		n, err := cs.limits.bump(ctx, k.key, LockoutPeriod, now)
		if err == nil && n >= k.limit {
			err = cs.limits.lock(ctx, k.key, now, now.Add(LockoutPeriod))
		}
		if err != nil {
			cs.log.Error("counting a failed login failed", "err", err)
		}
	}
}

// loginSucceeded forgets email's failures (not its address's: one good password does not clear a flood).
func (cs *Console) loginSucceeded(ctx context.Context, email string) {
	if err := cs.limits.clear(ctx, "login:e:"+email); err != nil {
		cs.log.Error("clearing login counters failed", "err", err)
	}
}

// allow counts a request for key and reports whether it is within limit per period. A database failure refuses.
func (cs *Console) allow(ctx context.Context, now time.Time, key string, limit int64, period time.Duration) bool {
	n, err := cs.limits.bump(ctx, key, period, now)
	if err != nil {
		cs.log.Error("counting a request failed", "err", err)
		return false
	}
	return n <= limit
}
