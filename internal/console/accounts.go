package console

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"
)

type credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	TOTP     string `json:"totp,omitempty"` // the current code, for accounts with TOTP (totp.go)
}

// String keeps the password and code out of logs and error messages should credentials be printed by mistake.
func (c credentials) String() string { return "credentials{" + c.Email + "}" }

type sessionView struct {
	Email          string `json:"email"`
	OrganisationID int64  `json:"organisation_id"`
	Role           string `json:"role"`
	CSRFToken      string `json:"csrf_token"`
	Expires        string `json:"expires,omitempty"`
}

// normalizeEmail lowercases and trims email and checks that it is a bare address.
func normalizeEmail(email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || len(e) > 254 || !strings.Contains(e[strings.LastIndexByte(e, '@')+1:], ".") {
		return "", errorf(http.StatusBadRequest, "invalid_email", "not a valid email address")
	}
	return e, nil
}

func (cs *Console) signup(w http.ResponseWriter, r *http.Request, _ *principal) {
	var c credentials
	if err := decode(r, &c); err != nil {
		cs.fail(w, err)
		return
	}
	email, err := normalizeEmail(c.Email)
	if err != nil {
		cs.fail(w, err)
		return
	}
	if n := len(c.Password); n < MinPasswordLen || n > MaxPasswordLen {
		writeError(w, http.StatusBadRequest, "invalid_password", "the password must be 12 to 128 bytes long")
		return
	}
	hash := hashPassword(c.Password, cs.argon) // before the transaction: hashing takes a while
	var accountID, orgID int64
	err = cs.db.InTx(r.Context(), func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(r.Context(), cs.db.Rebind("SELECT COUNT(*) FROM accounts WHERE email = ?"), email).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return errorf(http.StatusConflict, "email_taken", "an account with this email exists")
		}
		accountID, orgID, err = cs.createAccount(r.Context(), tx, email, hash, email)
		return err
	})
	if err != nil {
		cs.fail(w, err)
		return
	}
	cs.startSession(w, r, accountID, email, orgID, roleOwner, http.StatusCreated)
}

// createAccount creates, in tx, the account email with the password hash and the organisation orgName that it
// owns, and records both in the audit log.
func (cs *Console) createAccount(ctx context.Context, tx *sql.Tx, email, hash, orgName string) (accountID, orgID int64, err error) {
	now := cs.us()
	if err := tx.QueryRowContext(ctx, cs.db.Rebind("INSERT INTO accounts (email, created_us, password_hash) VALUES (?, ?, ?) RETURNING id"),
		email, now, hash).Scan(&accountID); err != nil {
		return 0, 0, err
	}
	if err := tx.QueryRowContext(ctx, cs.db.Rebind("INSERT INTO organisations (name, created_us) VALUES (?, ?) RETURNING id"),
		orgName, now).Scan(&orgID); err != nil {
		return 0, 0, err
	}
	if _, err := tx.ExecContext(ctx, cs.db.Rebind("INSERT INTO memberships (organisation_id, account_id, role) VALUES (?, ?, ?)"),
		orgID, accountID, string(roleOwner)); err != nil {
		return 0, 0, err
	}
	p := &principal{email: email, orgID: orgID}
	if err := cs.auditTx(ctx, tx, p, "account.create", "account:"+strconv.FormatInt(accountID, 10),
		nil, map[string]any{"email": email, "organisation_id": orgID}); err != nil {
		return 0, 0, err
	}
	return accountID, orgID, cs.auditTx(ctx, tx, p, "organisation.create", "organisation:"+strconv.FormatInt(orgID, 10),
		nil, map[string]any{"name": orgName, "owner": email})
}

func (cs *Console) login(w http.ResponseWriter, r *http.Request, _ *principal) {
	var c credentials
	if err := decode(r, &c); err != nil {
		cs.fail(w, err)
		return
	}
	email := strings.ToLower(strings.TrimSpace(c.Email))
	accountID, err := cs.authenticate(r, email, c.Password, c.TOTP)
	if err != nil {
		cs.failAuth(w, err)
		return
	}
	// The session acts on the account's first organisation; POST /session/organisation switches.
	var (
		orgID int64
		rl    string
	)
	err = cs.db.QueryRowContext(r.Context(), cs.db.Rebind("SELECT organisation_id, role FROM memberships WHERE account_id = ? ORDER BY organisation_id LIMIT 1"),
		accountID).Scan(&orgID, &rl)
	if errors.Is(err, sql.ErrNoRows) {
		writeError(w, http.StatusForbidden, "no_organisation", "this account is in no organisation; accept an invitation to join one")
		return
	}
	if err != nil {
		cs.fail(w, err)
		return
	}
	cs.startSession(w, r, accountID, email, orgID, role(rl), http.StatusOK)
}

// lockedError is returned by authenticate while the email or the client's address is locked out.
type lockedError struct{ wait time.Duration }

func (e *lockedError) Error() string { return "locked for " + e.wait.String() }

var (
	errInvalidCredentials = errorf(http.StatusUnauthorized, "invalid_credentials", "wrong email or password")
	errTOTPRequired       = errorf(http.StatusUnauthorized, "totp_required", "this account needs a TOTP code")
	errInvalidTOTP        = errorf(http.StatusUnauthorized, "invalid_totp", "wrong, expired or already used TOTP code")
)

// authenticate checks email's password and, if the account has TOTP, code, and records the attempt in the access
// log; it returns the account id. Every attempt is counted by the login throttle before its password is checked
// (see loginAttempt); a wrong password or code locks out once the limit is reached, and a right password
// without its code is taken back. Unknown emails cost a password hash too, so that timing does not tell them
// apart.
func (cs *Console) authenticate(r *http.Request, email, password, code string) (_ int64, err error) {
	defer func() { cs.accessLog(r, email, err == nil) }() // every attempt, whichever route makes it
	ip := clientIP(r)
	now := cs.now()
	if err := cs.loginAttempt(r.Context(), now, email, ip); err != nil {
		return 0, err
	}
	var (
		accountID int64
		hash      string
		t         totpState
	)
	qerr := cs.db.QueryRowContext(r.Context(), cs.db.Rebind("SELECT id, password_hash, totp_enabled, totp_secret, totp_last_step FROM accounts WHERE email = ?"), email).
		Scan(&accountID, &hash, &t.enabled, &t.sealed, &t.lastStep)
	if qerr != nil && !errors.Is(qerr, sql.ErrNoRows) {
		return 0, qerr
	}
	if qerr != nil || hash == "" {
		hash = cs.dummy // same work for unknown emails
		accountID = 0
	}
	if !cs.passwordMatches(password, hash) || accountID == 0 {
		cs.loginFailed(r.Context(), now, email, ip)
		return 0, errInvalidCredentials
	}
	if t.enabled != 0 {
		if code == "" {
			cs.loginUncount(r.Context(), email, ip) // a right password, not a guess: the next attempt brings the code
			return 0, errTOTPRequired
		}
		if err := cs.useTOTP(r.Context(), accountID, t, code); err != nil {
			if errors.Is(err, errInvalidTOTP) {
				cs.loginFailed(r.Context(), now, email, ip)
			}
			return 0, err
		}
	}
	cs.loginSucceeded(r.Context(), email, ip)
	return accountID, nil
}

// passwordMatches checks password against the PHC string encoded (an argon2id hash), telling the test hook
// first.
func (cs *Console) passwordMatches(password, encoded string) bool {
	if cs.onPasswordCheck != nil {
		cs.onPasswordCheck()
	}
	return checkPassword(password, encoded)
}

// failAuth writes an error of authenticate: 429 with Retry-After while locked.
func (cs *Console) failAuth(w http.ResponseWriter, err error) {
	var le *lockedError
	if errors.As(err, &le) {
		secs := int((le.wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, http.StatusTooManyRequests, "locked", "too many failed logins; try again later")
		return
	}
	cs.fail(w, err)
}

// startSession issues a new session (a fresh id, so that no id chosen before login survives it), ending the
// caller's previous one.
func (cs *Console) startSession(w http.ResponseWriter, r *http.Request, accountID int64, email string, orgID int64, rl role, status int) {
	if old, err := r.Cookie(SessionCookie); err == nil {
		cs.db.ExecContext(r.Context(), cs.db.Rebind("DELETE FROM sessions WHERE id_hash = ?"), sha256Sum(old.Value))
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	id := base64.RawURLEncoding.EncodeToString(raw)
	csrf := randomHex(32)
	now := cs.now()
	exp := now.Add(SessionLifetime)
	_, err := cs.db.ExecContext(r.Context(), cs.db.Rebind("INSERT INTO sessions (id_hash, account_id, organisation_id, csrf_token, created_us, expires_us) VALUES (?, ?, ?, ?, ?, ?)"),
		sha256Sum(id), accountID, orgID, csrf, now.UnixMicro(), exp.UnixMicro())
	if err != nil {
		cs.fail(w, err)
		return
	}
	// Expired sessions are purged on every login.
	cs.db.ExecContext(r.Context(), cs.db.Rebind("DELETE FROM sessions WHERE expires_us < ?"), now.UnixMicro())
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: id, Path: "/", Expires: exp, HttpOnly: true,
		Secure: cs.secure, SameSite: http.SameSiteLaxMode})
	writeJSON(w, status, sessionView{Email: email, OrganisationID: orgID, Role: string(rl), CSRFToken: csrf, Expires: exp.UTC().Format(time.RFC3339)})
}

func (cs *Console) logout(w http.ResponseWriter, r *http.Request, p *principal) {
	if _, err := cs.db.ExecContext(r.Context(), cs.db.Rebind("DELETE FROM sessions WHERE id_hash = ?"), p.sessionID); err != nil {
		cs.fail(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: cs.secure, SameSite: http.SameSiteLaxMode})
	w.WriteHeader(http.StatusNoContent)
}

func (cs *Console) session(w http.ResponseWriter, r *http.Request, p *principal) {
	writeJSON(w, http.StatusOK, sessionView{Email: p.email, OrganisationID: p.orgID, Role: string(p.role), CSRFToken: p.csrf})
}

// sessionPrincipal looks up the session whose id is the cookie value. The session acts on its organisation
// with the account's current role there; a session whose account has left that organisation is no longer valid
// (rather than silently acting on another organisation).
func (cs *Console) sessionPrincipal(ctx context.Context, id string) (*principal, error) {
	p := &principal{sessionID: sha256Sum(id)}
	var rl string
	var exp int64
	err := cs.db.QueryRowContext(ctx, cs.db.Rebind(`SELECT a.id, a.email, s.csrf_token, s.expires_us, m.organisation_id, m.role
		FROM sessions s JOIN accounts a ON a.id = s.account_id
		JOIN memberships m ON m.account_id = a.id AND m.organisation_id = s.organisation_id
		WHERE s.id_hash = ?`), p.sessionID).Scan(&p.accountID, &p.email, &p.csrf, &exp, &p.orgID, &rl)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && exp <= cs.us()) {
		return nil, errUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	p.role = role(rl)
	return p, nil
}

// accessLog records a login attempt: never the password. It belongs to the account with that email, if any,
// which alone reads it: a login is made to the console, not to one of the account's organisations.
func (cs *Console) accessLog(r *http.Request, email string, ok bool) {
	ua := r.UserAgent()
	if len(ua) > 512 {
		ua = ua[:512]
	}
	if len(email) > 254 {
		email = email[:254]
	}
	success := 0
	if ok {
		success = 1
	}
	if _, err := cs.db.ExecContext(r.Context(), cs.db.Rebind(`INSERT INTO access_log (time_us, email, success, ip, user_agent, account_id)
		VALUES (?, ?, ?, ?, ?, (SELECT id FROM accounts WHERE email = ?))`),
		cs.us(), email, success, clientIP(r), ua, email); err != nil {
		cs.log.Error("access log insert failed", "err", err)
	}
}
