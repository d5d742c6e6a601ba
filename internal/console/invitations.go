package console

// Invitations. An owner or admin invites an email with a role (an admin cannot invite an owner); the token
// (32 random bytes) goes only into the mailed link, {PublicURL}/console/invite?token=..., and the database keeps
// its SHA-256. It is valid for InvitationLifetime and once. Accepting it:
//   - for an email without an account, creates the account with the given password and starts a session on the
//     inviting organisation;
//   - for an existing account, needs the caller to be logged in as that email (session cookie and CSRF token)
//     or to give the account's password (and TOTP code if it has one; failures count in the login throttle),
//     and adds the membership without starting a session.

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// InvitationLifetime is how long an invitation can be accepted.
const InvitationLifetime = 7 * 24 * time.Hour

type invitationCreate struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

type invitationView struct {
	ID        int64  `json:"id"`
	Email     string `json:"email"`
	Role      string `json:"role"`
	InvitedBy string `json:"invited_by"`
	Created   string `json:"created"`
	Expires   string `json:"expires"`
}

type invitationAccept struct {
	Token    string `json:"token"`
	Password string `json:"password,omitempty"`
	TOTP     string `json:"totp,omitempty"`
}

func (invitationAccept) String() string { return "invitationAccept{}" }

func rfc3339(us int64) string { return time.UnixMicro(us).UTC().Format(time.RFC3339) }

func (cs *Console) createInvitation(w http.ResponseWriter, r *http.Request, p *principal) {
	var in invitationCreate
	err := decode(r, &in)
	var email string
	if err == nil {
		email, err = normalizeEmail(in.Email)
	}
	var rl role
	if err == nil {
		rl, err = parseRole(in.Role)
	}
	if err != nil {
		cs.fail(w, err)
		return
	}
	if rl == roleOwner && p.role != roleOwner {
		cs.fail(w, errorf(http.StatusForbidden, "forbidden", "only an owner can invite an owner"))
		return
	}
	tok, hash := newToken()
	now := cs.now()
	v := invitationView{Email: email, Role: string(rl), InvitedBy: p.actor(), Created: now.UTC().Format(time.RFC3339),
		Expires: now.Add(InvitationLifetime).UTC().Format(time.RFC3339)}
	var orgName string
	err = cs.db.InTx(r.Context(), func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(r.Context(), cs.db.Rebind(`SELECT COUNT(*) FROM memberships m JOIN accounts a ON a.id = m.account_id
			WHERE m.organisation_id = ? AND a.email = ?`), p.orgID, email).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return errorf(http.StatusConflict, "already_member", "this email is already a member")
		}
		if err := tx.QueryRowContext(r.Context(), cs.db.Rebind("SELECT name FROM organisations WHERE id = ?"), p.orgID).Scan(&orgName); err != nil {
			return err
		}
		// A new invitation replaces the pending ones for the same email.
		if _, err := tx.ExecContext(r.Context(), cs.db.Rebind("UPDATE invitations SET revoked_us = ? WHERE organisation_id = ? AND email = ? AND accepted_us = 0 AND revoked_us = 0"),
			now.UnixMicro(), p.orgID, email); err != nil {
			return err
		}
		if err := tx.QueryRowContext(r.Context(), cs.db.Rebind(`INSERT INTO invitations (organisation_id, email, role, token_hash, invited_by, created_us, expires_us)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`), p.orgID, email, string(rl), hash, p.actor(), now.UnixMicro(), now.Add(InvitationLifetime).UnixMicro()).Scan(&v.ID); err != nil {
			return err
		}
		return cs.auditTx(r.Context(), tx, p, "invitation.create", "invitation:"+strconv.FormatInt(v.ID, 10), nil,
			map[string]any{"email": email, "role": rl, "organisation_id": p.orgID})
	})
	if err != nil {
		cs.fail(w, err)
		return
	}
	orgName = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, orgName)
	msg := Message{To: email, Subject: "You are invited to " + orgName + " on Stoa",
		Body: p.actor() + " invites you to join the organisation " + orgName + " on the Stoa console as " + string(rl) + ".\n\n" +
			"Accept within 7 days by opening this link:\n\n" + cs.link("/console/invite", tok) + "\n\nIf you did not expect it, ignore this message.\n"}
	if err := cs.send(r.Context(), msg); err != nil {
		// Nobody can accept an invitation whose link was not sent.
		ctx := context.WithoutCancel(r.Context())
		if derr := cs.db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, cs.db.Rebind("DELETE FROM invitations WHERE id = ?"), v.ID); err != nil {
				return err
			}
			return cs.auditTx(ctx, tx, p, "invitation.delete", "invitation:"+strconv.FormatInt(v.ID, 10),
				map[string]any{"email": email, "role": rl, "organisation_id": p.orgID}, map[string]any{"reason": "mail_failed"})
		}); derr != nil {
			cs.log.Error("deleting an unsent invitation failed", "invitation", v.ID, "err", derr)
		}
		cs.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, v)
}

func (cs *Console) listInvitations(w http.ResponseWriter, r *http.Request, p *principal) {
	items, err := queryList(r.Context(), cs.db, `SELECT id, email, role, invited_by, created_us, expires_us FROM invitations
		WHERE organisation_id = ? AND accepted_us = 0 AND revoked_us = 0 AND expires_us > ? ORDER BY id`, []any{p.orgID, cs.us()},
		func(rows *sql.Rows) (v invitationView, err error) {
			var created, expires int64
			err = rows.Scan(&v.ID, &v.Email, &v.Role, &v.InvitedBy, &created, &expires)
			v.Created, v.Expires = rfc3339(created), rfc3339(expires)
			return v, err
		})
	cs.writeList(w, items, err)
}

func (cs *Console) revokeInvitation(w http.ResponseWriter, r *http.Request, p *principal) {
	id, err := pathID(r)
	if err != nil {
		cs.fail(w, err)
		return
	}
	err = cs.db.InTx(r.Context(), func(tx *sql.Tx) error {
		var email, rl string
		err := tx.QueryRowContext(r.Context(), cs.db.Rebind(`UPDATE invitations SET revoked_us = ? WHERE id = ? AND organisation_id = ? AND accepted_us = 0 AND revoked_us = 0
			RETURNING email, role`), cs.us(), id, p.orgID).Scan(&email, &rl)
		if errors.Is(err, sql.ErrNoRows) {
			return errNotFound
		}
		if err != nil {
			return err
		}
		return cs.auditTx(r.Context(), tx, p, "invitation.revoke", "invitation:"+strconv.FormatInt(id, 10),
			map[string]any{"email": email, "role": rl, "organisation_id": p.orgID, "revoked": false},
			map[string]any{"email": email, "role": rl, "organisation_id": p.orgID, "revoked": true})
	})
	if err != nil {
		cs.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// invitation is a row of invitations being accepted.
type invitation struct {
	id, orgID int64
	email     string
	role      role
}

// findInvitation returns the pending invitation whose token is tok, or the token's error.
func (cs *Console) findInvitation(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, tok string, forUpdate string) (invitation, error) {
	var (
		inv                        invitation
		rl                         string
		expires, accepted, revoked int64
	)
	err := q.QueryRowContext(ctx, cs.db.Rebind("SELECT id, organisation_id, email, role, expires_us, accepted_us, revoked_us FROM invitations WHERE token_hash = ?"+forUpdate),
		sha256Sum(tok)).Scan(&inv.id, &inv.orgID, &inv.email, &rl, &expires, &accepted, &revoked)
	inv.role = role(rl)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return inv, errInvalidToken
	case err != nil:
		return inv, err
	case revoked != 0:
		return inv, errInvalidToken
	case accepted != 0:
		return inv, errTokenUsed
	case expires <= cs.us():
		return inv, errTokenExpired
	}
	return inv, nil
}

func (cs *Console) acceptInvitation(w http.ResponseWriter, r *http.Request, _ *principal) {
	var in invitationAccept
	if err := decode(r, &in); err != nil {
		cs.fail(w, err)
		return
	}
	inv, err := cs.findInvitation(r.Context(), cs.db, in.Token, "")
	if err != nil {
		cs.fail(w, err)
		return
	}
	var accountID int64
	err = cs.db.QueryRowContext(r.Context(), cs.db.Rebind("SELECT id FROM accounts WHERE email = ?"), inv.email).Scan(&accountID)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		cs.fail(w, err)
		return
	}
	newAccount := accountID == 0
	var hash string
	if newAccount {
		if err := checkPasswordLen(in.Password); err != nil {
			cs.fail(w, err)
			return
		}
		hash = hashPassword(in.Password, cs.argon)
	} else if !cs.sessionIs(r, inv.email) {
		if in.Password == "" {
			cs.fail(w, errorf(http.StatusUnauthorized, "login_required", "log in as the invited email, or give its password"))
			return
		}
		if _, err := cs.authenticate(r, inv.email, in.Password, in.TOTP); err != nil {
			cs.failAuth(w, err)
			return
		}
	}
	now := cs.us()
	err = cs.db.InTx(r.Context(), func(tx *sql.Tx) error {
		// Again under lock: the token is single use even against concurrent requests.
		if _, err := cs.findInvitation(r.Context(), tx, in.Token, cs.db.ForUpdate()); err != nil {
			return err
		}
		if newAccount {
			if err := tx.QueryRowContext(r.Context(), cs.db.Rebind("INSERT INTO accounts (email, created_us, password_hash) VALUES (?, ?, ?) RETURNING id"),
				inv.email, now, hash).Scan(&accountID); err != nil {
				return err
			}
		} else {
			var n int
			if err := tx.QueryRowContext(r.Context(), cs.db.Rebind("SELECT COUNT(*) FROM memberships WHERE organisation_id = ? AND account_id = ?"),
				inv.orgID, accountID).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return errorf(http.StatusConflict, "already_member", "you are already a member of this organisation")
			}
		}
		if _, err := tx.ExecContext(r.Context(), cs.db.Rebind("INSERT INTO memberships (organisation_id, account_id, role) VALUES (?, ?, ?)"),
			inv.orgID, accountID, string(inv.role)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(r.Context(), cs.db.Rebind("UPDATE invitations SET accepted_us = ? WHERE id = ?"), now, inv.id); err != nil {
			return err
		}
		p := &principal{email: inv.email, orgID: inv.orgID} // the member.add entry belongs to the organisation joined
		target := "account:" + strconv.FormatInt(accountID, 10)
		if newAccount {
			if err := cs.auditTx(r.Context(), tx, p, "account.create", target, nil, map[string]any{"email": inv.email, "invitation_id": inv.id}); err != nil {
				return err
			}
		}
		return cs.auditTx(r.Context(), tx, p, "member.add", target, nil,
			map[string]any{"email": inv.email, "organisation_id": inv.orgID, "role": inv.role, "invitation_id": inv.id})
	})
	if err != nil {
		// Two acceptances creating the same account race on the UNIQUE email: the loser finds the token used.
		cs.fail(w, err)
		return
	}
	if newAccount {
		cs.startSession(w, r, accountID, inv.email, inv.orgID, inv.role, http.StatusCreated)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"organisation_id": inv.orgID, "role": inv.role})
}

// sessionIs reports whether r carries a valid session of email with its CSRF token: the check that wrap makes
// for session routes, made here for a route open to anyone.
func (cs *Console) sessionIs(r *http.Request, email string) bool {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return false
	}
	p, err := cs.sessionPrincipal(r.Context(), c.Value)
	if err != nil || p.email != email {
		return false
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(p.csrf)) != 1 {
		return false
	}
	return r.Header.Get("Origin") == "" || sameOrigin(r.Header.Get("Origin"), r.Host)
}
