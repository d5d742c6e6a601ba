package console

// Password change and reset. A change needs the current password (a wrong one counts as a failed login) and
// ends every session of the account, the caller's included, then starts a new session for the caller: no
// session id from before the change survives it. A reset mails a single-use token valid for ResetLifetime to
// the account's email; using it sets the password and ends every session of the account. A reset keeps TOTP:
// the mailbox alone must not be enough to take over an account with a second factor, and a reset leaves it
// in place (an operator removes a lost second factor).
//
// POST /password-reset answers 202 whatever the email, so that it does not tell which accounts exist; for an
// unknown email it mails a notice that no account exists, so that the time taken does not tell either.
// Requests are limited per email (ResetsPerEmail an hour, beyond which nothing is sent) and per client address
// (ResetsPerIP an hour, beyond which 429).

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Password reset policy.
const (
	// ResetLifetime is how long a password reset token is valid.
	ResetLifetime = time.Hour
	// ResetsPerEmail and ResetsPerIP bound the reset requests per hour.
	ResetsPerEmail = 3
	ResetsPerIP    = 20
)

type passwordChange struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

func (passwordChange) String() string { return "passwordChange{}" }

type resetRequest struct {
	Email string `json:"email"`
}

type resetConfirm struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

func (resetConfirm) String() string { return "resetConfirm{}" }

var errInvalidPassword = errorf(http.StatusBadRequest, "invalid_password", "the password must be 12 to 128 bytes long")

func checkPasswordLen(pw string) error {
	if n := len(pw); n < MinPasswordLen || n > MaxPasswordLen {
		return errInvalidPassword
	}
	return nil
}

// newToken returns a mailed token (32 random bytes, base64url) and the SHA-256 kept in its place.
func newToken() (string, []byte) {
	raw := make([]byte, 32)
	rand.Read(raw)
	t := base64.RawURLEncoding.EncodeToString(raw)
	return t, sha256Sum(t)
}

// Errors of mailed tokens.
var (
	errInvalidToken = errorf(http.StatusBadRequest, "invalid_token", "unknown or revoked token")
	errTokenExpired = errorf(http.StatusGone, "token_expired", "the token has expired")
	errTokenUsed    = errorf(http.StatusConflict, "token_used", "the token has already been used")
)

func (cs *Console) changePassword(w http.ResponseWriter, r *http.Request, p *principal) {
	var in passwordChange
	if err := decode(r, &in); err != nil {
		cs.fail(w, err)
		return
	}
	if err := checkPasswordLen(in.NewPassword); err != nil {
		cs.fail(w, err)
		return
	}
	now := cs.now()
	ip := clientIP(r)
	var hash string
	if err := cs.db.QueryRowContext(r.Context(), cs.db.Rebind("SELECT password_hash FROM accounts WHERE id = ?"), p.accountID).Scan(&hash); err != nil {
		cs.fail(w, err)
		return
	}
	if err := cs.loginAttempt(r.Context(), now, p.email, ip); err != nil {
		cs.failAuth(w, err)
		return
	}
	if !cs.passwordMatches(in.CurrentPassword, hash) {
		cs.loginFailed(r.Context(), now, p.email, ip)
		cs.fail(w, errorf(http.StatusForbidden, "invalid_credentials", "wrong current password"))
		return
	}
	cs.loginUncount(r.Context(), p.email, ip)
	err := cs.db.InTx(r.Context(), func(tx *sql.Tx) error {
		if err := cs.setPassword(r.Context(), tx, p.accountID, in.NewPassword); err != nil {
			return err
		}
		return cs.auditTx(r.Context(), tx, p, "account.password.change", "account:"+strconv.FormatInt(p.accountID, 10), nil, map[string]any{"email": p.email})
	})
	if err != nil {
		cs.fail(w, err)
		return
	}
	cs.startSession(w, r, p.accountID, p.email, p.orgID, p.role, http.StatusOK)
}

// setPassword stores password's hash for the account, ends all its sessions and voids its reset tokens.
func (cs *Console) setPassword(ctx context.Context, tx *sql.Tx, accountID int64, password string) error {
	if _, err := tx.ExecContext(ctx, cs.db.Rebind("UPDATE accounts SET password_hash = ? WHERE id = ?"), hashPassword(password, cs.argon), accountID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, cs.db.Rebind("DELETE FROM sessions WHERE account_id = ?"), accountID); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, cs.db.Rebind("UPDATE password_resets SET used_us = ? WHERE account_id = ? AND used_us = 0"), cs.us(), accountID)
	return err
}

func (cs *Console) requestReset(w http.ResponseWriter, r *http.Request, _ *principal) {
	var in resetRequest
	if err := decode(r, &in); err != nil {
		cs.fail(w, err)
		return
	}
	email, err := normalizeEmail(in.Email)
	if err != nil {
		cs.fail(w, err)
		return
	}
	now := cs.now()
	if !cs.allow(r.Context(), now, "reset:i:"+clientIP(r), ResetsPerIP, time.Hour) {
		w.Header().Set("Retry-After", "3600")
		writeError(w, http.StatusTooManyRequests, "rate_limited", "too many password reset requests; try again later")
		return
	}
	accepted := func() {
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "if an account exists for this email, a reset link has been sent"})
	}
	if !cs.allow(r.Context(), now, "reset:e:"+email, ResetsPerEmail, time.Hour) {
		accepted() // silently: the answer must not depend on the email
		return
	}
	var accountID int64
	err = cs.db.QueryRowContext(r.Context(), cs.db.Rebind("SELECT id FROM accounts WHERE email = ?"), email).Scan(&accountID)
	if errors.Is(err, sql.ErrNoRows) {
		// Mailing the unknown address too makes the answer take as long.
		cs.send(r.Context(), Message{To: email, Subject: "Stoa password reset",
			Body: "Someone asked to reset the password of the Stoa console account for this address, but there is no such account.\n" +
				"If it was not you, ignore this message.\n"})
		accepted()
		return
	}
	if err != nil {
		cs.fail(w, err)
		return
	}
	tok, hash := newToken()
	err = cs.db.InTx(r.Context(), func(tx *sql.Tx) error {
		var id int64
		if err := tx.QueryRowContext(r.Context(), cs.db.Rebind("INSERT INTO password_resets (token_hash, account_id, created_us, expires_us) VALUES (?, ?, ?, ?) RETURNING id"),
			hash, accountID, now.UnixMicro(), now.Add(ResetLifetime).UnixMicro()).Scan(&id); err != nil {
			return err
		}
		// Anyone may ask: the actor is not the account.
		return cs.auditTx(r.Context(), tx, &principal{email: "anonymous"}, "account.password.reset_request", "account:"+strconv.FormatInt(accountID, 10),
			nil, map[string]any{"email": email, "reset_id": id, "ip": clientIP(r)})
	})
	if err != nil {
		cs.fail(w, err)
		return
	}
	cs.send(r.Context(), Message{To: email, Subject: "Stoa password reset",
		Body: "To choose a new password for your Stoa console account, open this link within an hour:\n\n" +
			cs.link("/console/reset-password", tok) + "\n\nIf you did not ask for it, ignore this message: your password stays as it is.\n"})
	accepted()
}

func (cs *Console) confirmReset(w http.ResponseWriter, r *http.Request, _ *principal) {
	var in resetConfirm
	if err := decode(r, &in); err != nil {
		cs.fail(w, err)
		return
	}
	if err := checkPasswordLen(in.Password); err != nil {
		cs.fail(w, err)
		return
	}
	var (
		accountID int64
		email     string
	)
	err := cs.db.InTx(r.Context(), func(tx *sql.Tx) error {
		var id, expires, used int64
		err := tx.QueryRowContext(r.Context(), cs.db.Rebind("SELECT id, account_id, expires_us, used_us FROM password_resets WHERE token_hash = ?"+cs.db.ForUpdate()),
			sha256Sum(in.Token)).Scan(&id, &accountID, &expires, &used)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return errInvalidToken
		case err != nil:
			return err
		case used != 0:
			return errTokenUsed
		case expires <= cs.us():
			return errTokenExpired
		}
		if err := tx.QueryRowContext(r.Context(), cs.db.Rebind("SELECT email FROM accounts WHERE id = ?"), accountID).Scan(&email); err != nil {
			return err
		}
		if err := cs.setPassword(r.Context(), tx, accountID, in.Password); err != nil {
			return err
		}
		return cs.auditTx(r.Context(), tx, &principal{email: email}, "account.password.reset", "account:"+strconv.FormatInt(accountID, 10), nil, map[string]any{"email": email})
	})
	if err != nil {
		cs.fail(w, err)
		return
	}
	cs.loginForget(r.Context(), email)
	w.WriteHeader(http.StatusNoContent)
}
