package console

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// DevAccount is the owner account and demo project that stoa dev keeps in its console, so that the console shows
// the calls made with the demo project.
type DevAccount struct {
	// Email is the account's address.
	Email string
	// Password is the account's password as stoa dev kept it; empty when it kept none, and then
	// [Console.EnsureDevAccount] gives the account a new one.
	Password string
	// AppID and Certificate are the demo project's credentials; Accept006 lets it accept legacy 006 tokens.
	AppID, Certificate string
	Accept006          bool
}

// String keeps the password and the certificate out of logs should a DevAccount be printed by mistake.
func (a DevAccount) String() string { return "DevAccount{" + a.Email + ", " + a.AppID + "}" }

// devOrganisation names the organisation created with the dev account, and devProjectName its demo project.
const (
	devOrganisation = "stoa dev"
	devProjectName  = "demo"
)

// EnsureDevAccount makes the console hold a, in one transaction: the account (created if missing, with an
// organisation that it owns) and, in the first organisation it owns, the project a.AppID (created if missing,
// else given a.Certificate as primary unless it is already one of its certificates, and a.Accept006). Changes
// are recorded in the audit log and projects published to the cluster. When a.Password is empty the account
// gets a new password from crypto/rand (its sessions end). It returns a with the password, and whether that is
// new. Given the same a again, it changes nothing; a project a.AppID in another organisation is an error.
func (cs *Console) EnsureDevAccount(ctx context.Context, a DevAccount) (DevAccount, bool, error) {
	email, err := normalizeEmail(a.Email)
	if err != nil {
		return a, false, fmt.Errorf("console: dev account %q: %w", a.Email, err)
	}
	a.Email = email
	fresh := a.Password == ""
	if fresh {
		a.Password = randomHex(16)
	}
	err = cs.db.InTx(ctx, func(tx *sql.Tx) error {
		p, err := cs.devOwner(ctx, tx, a.Email, a.Password, fresh)
		if err != nil {
			return err
		}
		pr, err := scanProject(tx.QueryRowContext(ctx, cs.db.Rebind("SELECT "+projectColumns+" FROM projects WHERE app_id = ?"+cs.db.ForUpdate()), a.AppID))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			// Above any version the cluster holds: stoa dev published the demo project itself before it was the
			// console's.
			in := project{AppID: a.AppID, Name: devProjectName, Enabled: true, Accept006: a.Accept006}
			in.Version = cs.nextVersion(&in)
			_, err = cs.insertProject(ctx, tx, p, in, a.Certificate)
			return err
		case err != nil:
			return err
		case pr.orgID != p.orgID:
			return fmt.Errorf("console: the project %s belongs to another organisation than %s's", a.AppID, a.Email)
		}
		certs, err := cs.certificates(pr)
		if err != nil {
			return err
		}
		known := slices.Contains(certs, a.Certificate)
		if known && pr.Accept006 == a.Accept006 {
			return nil
		}
		before := pr.audit()
		if !known {
			pr.primary = cs.seal.seal(a.Certificate, pr.AppID)
		}
		pr.Accept006 = a.Accept006
		return cs.saveProject(ctx, tx, p, "project.update", before, pr)
	})
	if err != nil {
		return a, false, err
	}
	return a, fresh, nil
}

// devOwner returns, in tx, the dev account email as the owner of its first organisation: created with password
// if missing, else given password when reset is set.
func (cs *Console) devOwner(ctx context.Context, tx *sql.Tx, email, password string, reset bool) (*principal, error) {
	p := &principal{email: email, role: roleOwner}
	err := tx.QueryRowContext(ctx, cs.db.Rebind("SELECT id FROM accounts WHERE email = ?"), email).Scan(&p.accountID)
	if errors.Is(err, sql.ErrNoRows) {
		p.accountID, p.orgID, err = cs.createAccount(ctx, tx, email, hashPassword(password, cs.argon), devOrganisation)
		return p, err
	}
	if err != nil {
		return nil, err
	}
	if reset {
		if err := cs.setPassword(ctx, tx, p.accountID, password); err != nil {
			return nil, err
		}
		if err := cs.auditTx(ctx, tx, p, "account.password.reset", "account:"+strconv.FormatInt(p.accountID, 10), nil, map[string]any{"email": email}); err != nil {
			return nil, err
		}
	}
	err = tx.QueryRowContext(ctx, cs.db.Rebind("SELECT organisation_id FROM memberships WHERE account_id = ? AND role = ? ORDER BY organisation_id LIMIT 1"),
		p.accountID, string(roleOwner)).Scan(&p.orgID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("console: the dev account %s owns no organisation", email)
	}
	return p, err
}
