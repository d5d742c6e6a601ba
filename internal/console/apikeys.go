package console

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// API keys: the key id ("ak_" and 16 hex digits) is the Basic user name and the secret (64 hex digits, 256
// random bits) the password. Only SHA-256(secret) is stored: the secret's entropy makes a slow hash needless.
// A key acts with the admin role in its organisation, on projects only.

type apiKeyCreate struct {
	Name string `json:"name"`
}

type apiKeyView struct {
	ID      int64  `json:"id"`
	KeyID   string `json:"key_id"`
	Name    string `json:"name"`
	Created string `json:"created"`
	Revoked string `json:"revoked,omitempty"`
	Secret  string `json:"secret,omitempty"` // only in the creation response
}

func (cs *Console) apiKeyPrincipal(ctx context.Context, keyID, secret string) (*principal, error) {
	var (
		orgID   int64
		hash    []byte
		revoked int64
	)
	err := cs.db.QueryRowContext(ctx, cs.db.Rebind("SELECT organisation_id, secret_hash, revoked_us FROM api_keys WHERE key_id = ?"), keyID).
		Scan(&orgID, &hash, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		subtle.ConstantTimeCompare(sha256Sum(secret), sha256Sum("")) // keep timing alike
		return nil, errUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(sha256Sum(secret), hash) != 1 || revoked != 0 {
		return nil, errUnauthenticated
	}
	return &principal{orgID: orgID, role: roleAdmin, apiKeyID: keyID}, nil
}

func (cs *Console) listAPIKeys(w http.ResponseWriter, r *http.Request, p *principal) {
	limit, after, err := page(r)
	if err != nil {
		cs.fail(w, err)
		return
	}
	items, next, err := queryPage(r.Context(), cs.db, limit, `SELECT id, key_id, name, created_us, revoked_us FROM api_keys
		WHERE organisation_id = ? AND id > ? ORDER BY id LIMIT ?`, []any{p.orgID, after, limit + 1},
		func(rows *sql.Rows) (apiKeyView, error) {
			var k apiKeyView
			var created, revoked int64
			err := rows.Scan(&k.ID, &k.KeyID, &k.Name, &created, &revoked)
			k.Created = time.UnixMicro(created).UTC().Format(time.RFC3339)
			if revoked != 0 {
				k.Revoked = time.UnixMicro(revoked).UTC().Format(time.RFC3339)
			}
			return k, err
		},
		func(k apiKeyView) string { return strconv.FormatInt(k.ID, 10) })
	cs.writePage(w, items, next, err)
}

func (cs *Console) createAPIKey(w http.ResponseWriter, r *http.Request, p *principal) {
	name, err := nameRequest(r)
	if err != nil {
		cs.fail(w, err)
		return
	}
	k := apiKeyView{KeyID: "ak_" + randomHex(8), Name: name, Secret: randomHex(32)}
	now := cs.now()
	k.Created = now.UTC().Format(time.RFC3339)
	err = cs.db.InTx(r.Context(), func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(r.Context(), cs.db.Rebind(`INSERT INTO api_keys (key_id, organisation_id, name, secret_hash, created_by, created_us)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING id`), k.KeyID, p.orgID, name, sha256Sum(k.Secret), p.actor(), now.UnixMicro()).Scan(&k.ID); err != nil {
			return err
		}
		return cs.auditTx(r.Context(), tx, p, "apikey.create", "apikey:"+k.KeyID, nil, map[string]any{"key_id": k.KeyID, "name": name, "organisation_id": p.orgID})
	})
	if err != nil {
		cs.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, k)
}

func (cs *Console) revokeAPIKey(w http.ResponseWriter, r *http.Request, p *principal) {
	id, err := pathID(r)
	if err != nil {
		cs.fail(w, err)
		return
	}
	err = cs.db.InTx(r.Context(), func(tx *sql.Tx) error {
		var keyID, name string
		err := tx.QueryRowContext(r.Context(), cs.db.Rebind(`UPDATE api_keys SET revoked_us = ? WHERE id = ? AND organisation_id = ? AND revoked_us = 0
			RETURNING key_id, name`), cs.us(), id, p.orgID).Scan(&keyID, &name)
		if errors.Is(err, sql.ErrNoRows) {
			return errNotFound
		}
		if err != nil {
			return err
		}
		return cs.auditTx(r.Context(), tx, p, "apikey.revoke", "apikey:"+keyID, map[string]any{"key_id": keyID, "name": name, "revoked": false},
			map[string]any{"key_id": keyID, "name": name, "revoked": true})
	})
	if err != nil {
		cs.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
