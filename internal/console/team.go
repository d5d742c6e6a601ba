package console

// Organisations and members (issue 6, item 2). A session acts on one organisation at a time, chosen at login
// (the account's first membership) and switched with POST /session/organisation. Owners and admins manage
// members; an admin can neither create, change nor remove an owner, and the last owner of an organisation can
// never be demoted or removed. Anyone can leave an organisation (DELETE /members/{own id}), the last owner
// excepted. Membership changes of one organisation are serialised by locking its row.

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// team is the state of the team endpoints.
type team struct {
	mailer    Mailer // nil drops messages
	publicURL string // without a trailing slash
}

func newTeam(c Config) team {
	return team{mailer: c.Mailer, publicURL: strings.TrimRight(c.PublicURL, "/")}
}

// teamRoutes are the endpoints for members, invitations, roles, TOTP and passwords.
func (cs *Console) teamRoutes() []route {
	return []route{
		{"GET", "/api/v1/organisations", "The organisations the caller is a member of, with the caller's role", authSession, nil, cs.listOrganisations},
		{"POST", "/api/v1/session/organisation", "Switch the session to another of the caller's organisations", authSession, orgSwitch{OrganisationID: 2}, cs.switchOrganisation},
		{"PATCH", "/api/v1/organisation", "Rename the session's organisation (owner or admin)", authSession, orgRename{Name: "Acme"}, cs.admin(cs.renameOrganisation)},
		{"GET", "/api/v1/members", "The organisation's members and their roles", authAny, nil, cs.listMembers},
		{"PATCH", "/api/v1/members/{id}", "Change a member's role (owner or admin; only owners touch owners)", authSession, memberPatch{Role: "admin"}, cs.admin(cs.patchMember)},
		{"DELETE", "/api/v1/members/{id}", "Remove a member (owner or admin), or leave (own id); never the last owner", authSession, nil, cs.removeMember},
		{"GET", "/api/v1/invitations", "The organisation's pending invitations (owner or admin)", authSession, nil, cs.admin(cs.listInvitations)},
		{"POST", "/api/v1/invitations", "Invite an email to the organisation; the link is mailed, never returned (owner or admin)", authSession, invitationCreate{Email: "bob@example.com", Role: "member"}, cs.admin(cs.createInvitation)},
		{"DELETE", "/api/v1/invitations/{id}", "Revoke a pending invitation (owner or admin)", authSession, nil, cs.admin(cs.revokeInvitation)},
		{"POST", "/api/v1/invitations/accept", "Accept an invitation: creates the account (with password) or adds the membership", authNone, invitationAccept{Token: "mailed token", Password: "correct horse battery"}, cs.acceptInvitation},
		{"POST", "/api/v1/account/password", "Change the password; ends every session and starts a new one", authSession, passwordChange{CurrentPassword: "old password", NewPassword: "new password"}, cs.changePassword},
		{"POST", "/api/v1/password-reset", "Mail a password reset link; always 202", authNone, resetRequest{Email: "ada@example.com"}, cs.requestReset},
		{"POST", "/api/v1/password-reset/confirm", "Set a new password with a mailed reset token; ends every session", authNone, resetConfirm{Token: "mailed token", Password: "new password"}, cs.confirmReset},
		{"POST", "/api/v1/account/totp", "Start TOTP enrolment; the secret is returned only here", authSession, nil, cs.enrolTOTP},
		{"POST", "/api/v1/account/totp/confirm", "Activate TOTP with a current code", authSession, totpCode{Code: "123456"}, cs.confirmTOTP},
		{"DELETE", "/api/v1/account/totp", "Turn TOTP off with a current code", authSession, totpCode{Code: "123456"}, cs.disableTOTP},
	}
}

type orgView struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Role    string `json:"role"`
	Current bool   `json:"current"`
}

type orgSwitch struct {
	OrganisationID int64 `json:"organisation_id"`
}

type memberView struct {
	ID    int64  `json:"id"` // the account id
	Email string `json:"email"`
	Role  string `json:"role"`
}

type memberPatch struct {
	Role string `json:"role"`
}

func parseRole(s string) (role, error) {
	switch r := role(s); r {
	case roleOwner, roleAdmin, roleMember, roleViewer:
		return r, nil
	}
	return "", errorf(http.StatusBadRequest, "invalid_role", "role must be owner, admin, member or viewer")
}

func (cs *Console) listOrganisations(w http.ResponseWriter, r *http.Request, p *principal) {
	items, err := queryList(r.Context(), cs.db, `SELECT o.id, o.name, m.role FROM memberships m
		JOIN organisations o ON o.id = m.organisation_id WHERE m.account_id = ? ORDER BY o.id`, []any{p.accountID},
		func(rows *sql.Rows) (o orgView, err error) {
			err = rows.Scan(&o.ID, &o.Name, &o.Role)
			o.Current = o.ID == p.orgID
			return o, err
		})
	cs.writeList(w, items, err)
}

type orgRename struct {
	Name string `json:"name"`
}

func (cs *Console) renameOrganisation(w http.ResponseWriter, r *http.Request, p *principal) {
	name, err := nameRequest(r)
	if err != nil {
		cs.fail(w, err)
		return
	}
	err = cs.db.InTx(r.Context(), func(tx *sql.Tx) error {
		var old string
		if err := tx.QueryRowContext(r.Context(), cs.db.Rebind("SELECT name FROM organisations WHERE id = ?"+cs.db.ForUpdate()), p.orgID).Scan(&old); err != nil {
			return err
		}
		if old == name {
			return nil
		}
		if _, err := tx.ExecContext(r.Context(), cs.db.Rebind("UPDATE organisations SET name = ? WHERE id = ?"), name, p.orgID); err != nil {
			return err
		}
		return cs.auditTx(r.Context(), tx, p, "organisation.rename", "organisation:"+strconv.FormatInt(p.orgID, 10),
			map[string]any{"name": old}, map[string]any{"name": name})
	})
	if err != nil {
		cs.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, orgView{ID: p.orgID, Name: name, Role: string(p.role), Current: true})
}

func (cs *Console) switchOrganisation(w http.ResponseWriter, r *http.Request, p *principal) {
	var in orgSwitch
	if err := decode(r, &in); err != nil {
		cs.fail(w, err)
		return
	}
	var rl string
	err := cs.db.QueryRowContext(r.Context(), cs.db.Rebind("SELECT role FROM memberships WHERE organisation_id = ? AND account_id = ?"),
		in.OrganisationID, p.accountID).Scan(&rl)
	if errors.Is(err, sql.ErrNoRows) {
		cs.fail(w, errNotFound)
		return
	}
	if err == nil {
		_, err = cs.db.ExecContext(r.Context(), cs.db.Rebind("UPDATE sessions SET organisation_id = ? WHERE id_hash = ?"), in.OrganisationID, p.sessionID)
	}
	if err != nil {
		cs.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, sessionView{Email: p.email, OrganisationID: in.OrganisationID, Role: rl, CSRFToken: p.csrf})
}

func (cs *Console) listMembers(w http.ResponseWriter, r *http.Request, p *principal) {
	items, err := queryList(r.Context(), cs.db, `SELECT a.id, a.email, m.role FROM memberships m
		JOIN accounts a ON a.id = m.account_id WHERE m.organisation_id = ? ORDER BY a.id`, []any{p.orgID},
		func(rows *sql.Rows) (m memberView, err error) {
			err = rows.Scan(&m.ID, &m.Email, &m.Role)
			return m, err
		})
	cs.writeList(w, items, err)
}

// lockMember locks the organisation's row (serialising its membership changes, so that two owners cannot
// demote each other at once), updates the caller's role to the one it has under the lock, and returns the
// member's email and role.
func (cs *Console) lockMember(ctx context.Context, tx *sql.Tx, p *principal, accountID int64) (string, role, error) {
	orgID := p.orgID
	var id int64
	if err := tx.QueryRowContext(ctx, cs.db.Rebind("SELECT id FROM organisations WHERE id = ?"+cs.db.ForUpdate()), orgID).Scan(&id); err != nil {
		return "", "", err
	}
	var email, rl string
	err := tx.QueryRowContext(ctx, cs.db.Rebind("SELECT role FROM memberships WHERE organisation_id = ? AND account_id = ?"), orgID, p.accountID).Scan(&rl)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", errForbidden // removed meanwhile
	}
	if err != nil {
		return "", "", err
	}
	p.role = role(rl)
	err = tx.QueryRowContext(ctx, cs.db.Rebind(`SELECT a.email, m.role FROM memberships m JOIN accounts a ON a.id = m.account_id
		WHERE m.organisation_id = ? AND m.account_id = ?`), orgID, accountID).Scan(&email, &rl)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", errNotFound
	}
	return email, role(rl), err
}

// checkNotLastOwner fails if the organisation has no owner but accountID.
func (cs *Console) checkNotLastOwner(ctx context.Context, tx *sql.Tx, orgID, accountID int64) error {
	var n int
	if err := tx.QueryRowContext(ctx, cs.db.Rebind("SELECT COUNT(*) FROM memberships WHERE organisation_id = ? AND role = ? AND account_id <> ?"),
		orgID, string(roleOwner), accountID).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return errorf(http.StatusConflict, "last_owner", "the organisation's last owner cannot be demoted or removed")
	}
	return nil
}

func (cs *Console) patchMember(w http.ResponseWriter, r *http.Request, p *principal) {
	id, err := pathID(r)
	var in memberPatch
	if err == nil {
		err = decode(r, &in)
	}
	var to role
	if err == nil {
		to, err = parseRole(in.Role)
	}
	if err != nil {
		cs.fail(w, err)
		return
	}
	var email string
	var from role
	err = cs.db.InTx(r.Context(), func(tx *sql.Tx) error {
		var err error
		if email, from, err = cs.lockMember(r.Context(), tx, p, id); err != nil {
			return err
		}
		if !p.role.canAdminister() {
			return errForbidden
		}
		if p.role != roleOwner && (from == roleOwner || to == roleOwner) {
			return errorf(http.StatusForbidden, "forbidden", "only an owner can make or change an owner")
		}
		if from == roleOwner && to != roleOwner {
			if err := cs.checkNotLastOwner(r.Context(), tx, p.orgID, id); err != nil {
				return err
			}
		}
		if from == to {
			return nil
		}
		if _, err = tx.ExecContext(r.Context(), cs.db.Rebind("UPDATE memberships SET role = ? WHERE organisation_id = ? AND account_id = ?"), string(to), p.orgID, id); err != nil {
			return err
		}
		return cs.auditTx(r.Context(), tx, p, "member.update", "account:"+strconv.FormatInt(id, 10),
			map[string]any{"email": email, "organisation_id": p.orgID, "role": from},
			map[string]any{"email": email, "organisation_id": p.orgID, "role": to})
	})
	if err != nil {
		cs.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, memberView{ID: id, Email: email, Role: string(to)})
}

func (cs *Console) removeMember(w http.ResponseWriter, r *http.Request, p *principal) {
	id, err := pathID(r)
	if err != nil {
		cs.fail(w, err)
		return
	}
	leave := id == p.accountID
	if !leave && !p.role.canAdminister() {
		cs.fail(w, errForbidden)
		return
	}
	var email string
	var from role
	err = cs.db.InTx(r.Context(), func(tx *sql.Tx) error {
		var err error
		if email, from, err = cs.lockMember(r.Context(), tx, p, id); err != nil {
			return err
		}
		if !leave && !p.role.canAdminister() {
			return errForbidden
		}
		if !leave && p.role != roleOwner && from == roleOwner {
			return errorf(http.StatusForbidden, "forbidden", "only an owner can remove an owner")
		}
		if from == roleOwner {
			if err := cs.checkNotLastOwner(r.Context(), tx, p.orgID, id); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(r.Context(), cs.db.Rebind("DELETE FROM memberships WHERE organisation_id = ? AND account_id = ?"), p.orgID, id); err != nil {
			return err
		}
		// The member's sessions on this organisation stop working anyway (see sessionPrincipal); drop them.
		if _, err = tx.ExecContext(r.Context(), cs.db.Rebind("DELETE FROM sessions WHERE account_id = ? AND organisation_id = ?"), id, p.orgID); err != nil {
			return err
		}
		action := "member.remove"
		if leave {
			action = "member.leave"
		}
		return cs.auditTx(r.Context(), tx, p, action, "account:"+strconv.FormatInt(id, 10),
			map[string]any{"email": email, "organisation_id": p.orgID, "role": from}, nil)
	})
	if err != nil {
		cs.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// send mails m, or drops it with a warning when no mailer is configured. The warning names the recipient and
// subject only: the body holds a token.
func (cs *Console) send(ctx context.Context, m Message) error {
	if cs.team.mailer == nil {
		cs.log.Warn("no mailer configured; message dropped", "to", m.To, "subject", m.Subject)
		return nil
	}
	if err := cs.team.mailer.Send(ctx, m); err != nil {
		// The error of an SMTP exchange does not quote the message.
		cs.log.Error("mail not sent", "to", m.To, "subject", m.Subject, "err", err)
		return errorf(http.StatusBadGateway, "mail_failed", "the mail could not be sent; try again later")
	}
	return nil
}

// link returns the console URL of path with the query parameter token.
func (cs *Console) link(path, token string) string {
	return cs.team.publicURL + path + "?token=" + token
}
