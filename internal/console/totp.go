package console

// TOTP second factor (RFC 6238 over HOTP, RFC 4226): HMAC-SHA1, 6 digits, 30-second steps from the Unix epoch.
// A code is accepted for the current step and one step either side (clock skew, RFC 6238 §5.2), and never for a
// step at or before the last accepted one, so that a code cannot be replayed. The 20-byte secret is sealed at
// rest under the console key; it is shown once, when enrolment starts, and takes effect when a code confirms it.
// Wrong codes count as failed logins in the throttle, whether at login, confirmation or disabling.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// TOTP parameters.
const (
	totpDigits   = 6
	totpPeriod   = 30 // seconds
	totpSkew     = 1  // steps accepted either side of the current one
	totpIssuer   = "Stoa"
	totpKeyBytes = 20 // RFC 4226 §4 recommends 160 bits
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// hotp is RFC 4226 §5.3: HMAC-SHA1(key, counter), dynamically truncated, modulo 10^digits, zero-padded.
func hotp(key []byte, counter uint64, digits int) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	s := strconv.FormatUint(uint64(bin%mod), 10)
	for len(s) < digits {
		s = "0" + s
	}
	return s
}

// totpStep is RFC 6238's T: the number of periods since the Unix epoch.
func totpStep(t time.Time) int64 { return t.Unix() / totpPeriod }

// verifyTOTP returns the step whose code is code, among the steps around now after lastStep, and whether
// there is one. Every candidate is compared, in constant time.
func verifyTOTP(key []byte, code string, now time.Time, lastStep int64, digits int) (int64, bool) {
	var found int64
	ok := 0
	cur := totpStep(now)
	for s := cur - totpSkew; s <= cur+totpSkew; s++ {
		if s <= lastStep || s < 0 {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(hotp(key, uint64(s), digits)), []byte(code)) == 1 && ok == 0 {
			found, ok = s, 1
		}
	}
	return found, ok == 1
}

// totpState is an account's TOTP columns.
type totpState struct {
	enabled  int
	sealed   []byte // nil when none
	lastStep int64
}

func totpAD(accountID int64) string { return "totp:" + strconv.FormatInt(accountID, 10) }

// useTOTP checks code against the account's secret and records its step as used; it returns errInvalidTOTP if
// the code is wrong or its step was already used (also by a concurrent request: the update is conditional).
func (cs *Console) useTOTP(ctx context.Context, accountID int64, t totpState, code string) error {
	key, err := cs.seal.open(t.sealed, totpAD(accountID))
	if err != nil {
		return err
	}
	step, ok := verifyTOTP([]byte(key), code, cs.now(), t.lastStep, totpDigits)
	if !ok {
		return errInvalidTOTP
	}
	res, err := cs.db.ExecContext(ctx, cs.db.Rebind("UPDATE accounts SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?"), step, accountID, step)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errInvalidTOTP
	}
	return nil
}

func (cs *Console) totpState(ctx context.Context, accountID int64) (totpState, error) {
	var t totpState
	err := cs.db.QueryRowContext(ctx, cs.db.Rebind("SELECT totp_enabled, totp_secret, totp_last_step FROM accounts WHERE id = ?"), accountID).
		Scan(&t.enabled, &t.sealed, &t.lastStep)
	return t, err
}

type totpCode struct {
	Code string `json:"code"`
}

type totpEnrolment struct {
	Secret string `json:"secret"` // base32, unpadded
	URI    string `json:"uri"`    // otpauth://totp/... for QR codes
}

func (cs *Console) enrolTOTP(w http.ResponseWriter, r *http.Request, p *principal) {
	key := make([]byte, totpKeyBytes)
	rand.Read(key)
	sealed := cs.seal.seal(string(key), totpAD(p.accountID))
	res, err := cs.db.ExecContext(r.Context(), cs.db.Rebind("UPDATE accounts SET totp_secret = ?, totp_last_step = 0 WHERE id = ? AND totp_enabled = 0"), sealed, p.accountID)
	if err != nil {
		cs.fail(w, err)
		return
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		cs.fail(w, errorf(http.StatusConflict, "totp_enabled", "TOTP is already on; turn it off first"))
		return
	}
	secret := b32.EncodeToString(key)
	label := url.PathEscape(totpIssuer + ":" + p.email)
	q := url.Values{"secret": {secret}, "issuer": {totpIssuer}, "algorithm": {"SHA1"}, "digits": {strconv.Itoa(totpDigits)}, "period": {strconv.Itoa(totpPeriod)}}
	writeJSON(w, http.StatusCreated, totpEnrolment{Secret: secret, URI: "otpauth://totp/" + label + "?" + q.Encode()})
}

// checkCode checks a TOTP code given by a logged-in account, counting a wrong one as a failed login.
func (cs *Console) checkCode(r *http.Request, p *principal, t totpState, code string) error {
	now, ip := cs.now(), clientIP(r)
	if err := cs.loginAttempt(r.Context(), now, p.email, ip); err != nil {
		return err
	}
	err := cs.useTOTP(r.Context(), p.accountID, t, code)
	if errors.Is(err, errInvalidTOTP) {
		cs.loginFailed(r.Context(), now, p.email, ip)
	} else {
		cs.loginUncount(r.Context(), p.email, ip)
	}
	return err
}

func (cs *Console) confirmTOTP(w http.ResponseWriter, r *http.Request, p *principal) {
	cs.switchTOTP(w, r, p, true)
}
func (cs *Console) disableTOTP(w http.ResponseWriter, r *http.Request, p *principal) {
	cs.switchTOTP(w, r, p, false)
}

// switchTOTP turns the second factor on (confirming the enrolment in progress) or off, with a current code.
func (cs *Console) switchTOTP(w http.ResponseWriter, r *http.Request, p *principal, on bool) {
	var in totpCode
	if err := decode(r, &in); err != nil {
		cs.fail(w, err)
		return
	}
	t, err := cs.totpState(r.Context(), p.accountID)
	if err != nil {
		cs.fail(w, err)
		return
	}
	action, update := "account.totp.disable", "UPDATE accounts SET totp_enabled = 0, totp_secret = NULL, totp_last_step = 0 WHERE id = ?"
	switch {
	case on && (t.enabled != 0 || t.sealed == nil):
		err = errorf(http.StatusConflict, "no_totp_enrolment", "no TOTP enrolment is in progress")
	case !on && t.enabled == 0:
		err = errorf(http.StatusConflict, "totp_disabled", "TOTP is not on")
	case on:
		action, update = "account.totp.enable", "UPDATE accounts SET totp_enabled = 1 WHERE id = ?"
	}
	if err != nil {
		cs.fail(w, err)
		return
	}
	if err := cs.checkCode(r, p, t, in.Code); err != nil {
		cs.failAuth(w, err)
		return
	}
	// The audit log redacts keys naming TOTP, so the state is called second_factor.
	if err := cs.execAudited(r.Context(), p, action, "account:"+strconv.FormatInt(p.accountID, 10),
		map[string]any{"second_factor": !on}, map[string]any{"second_factor": on}, update, p.accountID); err != nil {
		cs.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
