package console

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/token"
)

// project is a project row; the certificates stay encrypted until needed.
type project struct {
	ID        int64  `json:"id"`
	AppID     string `json:"app_id"`
	Name      string `json:"name"`
	Enabled   bool   `json:"enabled"`
	Accept006 bool   `json:"accept_006"`
	Version   int64  `json:"version"`
	Rotating  bool   `json:"has_secondary_certificate"`
	Created   string `json:"created"`
	Updated   string `json:"updated"`
	orgID     int64
	primary   []byte
	secondary []byte
}

type projectCreate struct {
	Name string `json:"name"`
}

type projectPatch struct {
	Name    *string `json:"name,omitempty"`
	Enabled *bool   `json:"enabled,omitempty"`
	// Accept006 admits legacy 006 tokens, weaker than AccessToken2 (docs/tokens.md); off by default.
	Accept006 *bool `json:"accept_006,omitempty"`
}

type tokenRequest struct {
	Channel string `json:"channel"`
	UID     string `json:"uid"`
	Role    string `json:"role"`   // publisher or subscriber
	Expire  int64  `json:"expire"` // seconds, 1..86400
}

const projectColumns = "id, organisation_id, app_id, name, enabled, accept_006, version, created_us, updated_us, cert_primary, cert_secondary"

type scanner interface{ Scan(...any) error }

func scanProject(s scanner) (*project, error) {
	var (
		p                project
		enabled, legacy  int
		created, updated int64
	)
	if err := s.Scan(&p.ID, &p.orgID, &p.AppID, &p.Name, &enabled, &legacy, &p.Version, &created, &updated, &p.primary, &p.secondary); err != nil {
		return nil, err
	}
	p.Enabled, p.Accept006 = enabled != 0, legacy != 0
	p.Rotating = len(p.secondary) > 0
	p.Created = time.UnixMicro(created).UTC().Format(time.RFC3339)
	p.Updated = time.UnixMicro(updated).UTC().Format(time.RFC3339)
	return &p, nil
}

func (p *project) etag() string { return `"` + strconv.FormatInt(p.Version, 10) + `"` }

// audit is the project's state for the audit log: no certificates.
func (p *project) audit() map[string]any {
	return map[string]any{"app_id": p.AppID, "name": p.Name, "enabled": p.Enabled, "accept_006": p.Accept006,
		"version": p.Version, "rotating": p.Rotating}
}

func validName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return "", errorf(http.StatusBadRequest, "invalid_name", "the name must be 1 to 100 bytes")
	}
	return name, nil
}

func (cs *Console) listProjects(w http.ResponseWriter, r *http.Request, p *principal) {
	limit, after, err := page(r)
	if err != nil {
		cs.fail(w, err)
		return
	}
	items, next, err := queryPage(r.Context(), cs.db, limit,
		"SELECT "+projectColumns+" FROM projects WHERE organisation_id = ? AND id > ? ORDER BY id LIMIT ?",
		[]any{p.orgID, after, limit + 1}, func(rows *sql.Rows) (*project, error) { return scanProject(rows) },
		func(pr *project) string { return strconv.FormatInt(pr.ID, 10) })
	cs.writePage(w, items, next, err)
}

// loadProject reads the caller's project {id}; another organisation's project is not found.
func (cs *Console) loadProject(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, r *http.Request, p *principal, lock bool) (*project, error) {
	id, err := pathID(r)
	if err != nil {
		return nil, err
	}
	query := "SELECT " + projectColumns + " FROM projects WHERE id = ? AND organisation_id = ?"
	if lock {
		query += cs.db.ForUpdate()
	}
	pr, err := scanProject(q.QueryRowContext(ctx, cs.db.Rebind(query), id, p.orgID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	return pr, err
}

func (cs *Console) getProject(w http.ResponseWriter, r *http.Request, p *principal) {
	pr, err := cs.loadProject(r.Context(), cs.db, r, p, false)
	if err != nil {
		cs.fail(w, err)
		return
	}
	w.Header().Set("ETag", pr.etag())
	writeJSON(w, http.StatusOK, pr)
}

// certificates decrypts pr's live certificates, primary first.
func (cs *Console) certificates(pr *project) ([]string, error) {
	var out []string
	for _, c := range [][]byte{pr.primary, pr.secondary} {
		if len(c) == 0 {
			continue
		}
		s, err := cs.seal.open(c, pr.AppID)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// nextVersion is the version of pr's next record: above the database's and above the highest the cluster has
// seen, so that a console whose database was restored from a backup does not publish records that nodes refuse
// as older than theirs.
func (cs *Console) nextVersion(pr *project) int64 {
	v := pr.Version
	if cs.cluster != nil {
		v = max(v, int64(min(cs.cluster.ProjectVersion(pr.AppID), math.MaxInt64-1)))
	}
	return v + 1
}

// publish sends pr to the cluster under pr.Version.
func (cs *Console) publish(ctx context.Context, pr *project) error {
	if cs.cluster == nil {
		return nil
	}
	certs, err := cs.certificates(pr)
	if err != nil {
		return err
	}
	if err := cs.cluster.PutProject(ctx, cluster.Project{AppID: pr.AppID, Version: uint64(pr.Version), Certificates: certs,
		Enabled: pr.Enabled, Accept006: pr.Accept006, Updated: cs.now().UTC()}); err != nil {
		cs.log.Error("publishing project failed", "app_id", pr.AppID, "err", err)
		return errorf(http.StatusServiceUnavailable, "cluster_unavailable", "the cluster did not accept the change; nothing was changed")
	}
	return nil
}

// Republish publishes again every project whose record the cluster lacks at the database's version: after an
// upgrade that changed the record's format, a lost bus, or a console given a sealing key. Each goes out under
// the next version, which the database then keeps.
func (cs *Console) Republish(ctx context.Context) error {
	if cs.cluster == nil {
		return nil
	}
	var ids []int64
	rows, err := cs.db.QueryContext(ctx, "SELECT id, app_id, version FROM projects ORDER BY id")
	if err != nil {
		return err
	}
	for rows.Next() {
		var (
			id      int64
			appID   string
			version int64
		)
		if err := rows.Scan(&id, &appID, &version); err != nil {
			rows.Close()
			return err
		}
		if cs.cluster.ProjectVersion(appID) < uint64(version) {
			ids = append(ids, id)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	for _, id := range ids {
		err := cs.db.InTx(ctx, func(tx *sql.Tx) error {
			pr, err := scanProject(tx.QueryRowContext(ctx, cs.db.Rebind("SELECT "+projectColumns+" FROM projects WHERE id = ?"+cs.db.ForUpdate()), id))
			if err != nil {
				return err
			}
			pr.Version = cs.nextVersion(pr)
			if _, err := tx.ExecContext(ctx, cs.db.Rebind("UPDATE projects SET version = ? WHERE id = ?"), pr.Version, pr.ID); err != nil {
				return err
			}
			return cs.publish(ctx, pr)
		})
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	}
	return nil
}

// nameRequest reads the {"name"} body shared by the create and rename requests (projectCreate, apiKeyCreate,
// orgRename) and returns the valid name.
func nameRequest(r *http.Request) (string, error) {
	var in projectCreate
	if err := decode(r, &in); err != nil {
		return "", err
	}
	return validName(in.Name)
}

func (cs *Console) createProject(w http.ResponseWriter, r *http.Request, p *principal) {
	name, err := nameRequest(r)
	if err != nil {
		cs.fail(w, err)
		return
	}
	cert := randomHex(16)
	var pr *project
	err = cs.db.InTx(r.Context(), func(tx *sql.Tx) error {
		var err error
		pr, err = cs.insertProject(r.Context(), tx, p, project{AppID: randomHex(16), Name: name, Enabled: true, Version: 1}, cert)
		return err
	})
	if err != nil {
		cs.fail(w, err)
		return
	}
	w.Header().Set("ETag", pr.etag())
	writeJSON(w, http.StatusCreated, struct {
		*project
		Certificate string `json:"app_certificate"`
	}{pr, cert})
}

// insertProject creates, in tx, the project in p's organisation with the App Certificate cert, records it and
// publishes it; it returns the project as stored.
func (cs *Console) insertProject(ctx context.Context, tx *sql.Tx, p *principal, in project, cert string) (*project, error) {
	now := cs.us()
	var id int64
	if err := tx.QueryRowContext(ctx, cs.db.Rebind(`INSERT INTO projects (organisation_id, app_id, name, enabled, accept_006, created_us, cert_primary, version, updated_us)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`), p.orgID, in.AppID, in.Name, boolInt(in.Enabled), boolInt(in.Accept006), now,
		cs.seal.seal(cert, in.AppID), in.Version, now).Scan(&id); err != nil {
		return nil, err
	}
	pr, err := scanProject(tx.QueryRowContext(ctx, cs.db.Rebind("SELECT "+projectColumns+" FROM projects WHERE id = ?"), id))
	if err != nil {
		return nil, err
	}
	// Recorded before it is published: a failure to publish rolls both back.
	if err := cs.auditTx(ctx, tx, p, "project.create", "project:"+pr.AppID, nil, pr.audit()); err != nil {
		return nil, err
	}
	return pr, cs.publish(ctx, pr)
}

// change runs fn on the caller's locked project {id} in a transaction, bumps its version, publishes it and
// records the change as action. fn returns the new certificate when it creates one (returned to the caller).
func (cs *Console) change(w http.ResponseWriter, r *http.Request, p *principal, action string,
	fn func(tx *sql.Tx, pr *project) (string, error)) {
	var pr *project
	var cert string
	err := cs.db.InTx(r.Context(), func(tx *sql.Tx) error {
		var err error
		pr, err = cs.loadProject(r.Context(), tx, r, p, true)
		if err != nil {
			return err
		}
		if m := r.Header.Get("If-Match"); m != "" && m != "*" && m != pr.etag() {
			return errorf(http.StatusPreconditionFailed, "version_mismatch", "the project changed; reload it (ETag %s)", pr.etag())
		}
		before := pr.audit()
		if cert, err = fn(tx, pr); err != nil {
			return err
		}
		return cs.saveProject(r.Context(), tx, p, action, before, pr)
	})
	if err != nil {
		cs.fail(w, err)
		return
	}
	w.Header().Set("ETag", pr.etag())
	if cert != "" {
		writeJSON(w, http.StatusCreated, struct {
			*project
			Certificate string `json:"app_certificate"`
		}{pr, cert})
		return
	}
	writeJSON(w, http.StatusOK, pr)
}

// saveProject stores, in tx, the changes made to pr under its next version, records them as action (before: the
// project's audit state before them) and publishes pr.
func (cs *Console) saveProject(ctx context.Context, tx *sql.Tx, p *principal, action string, before map[string]any, pr *project) error {
	pr.Version = cs.nextVersion(pr)
	now := cs.now()
	pr.Updated = now.UTC().Format(time.RFC3339)
	pr.Rotating = len(pr.secondary) > 0
	if _, err := tx.ExecContext(ctx, cs.db.Rebind(`UPDATE projects SET name = ?, enabled = ?, accept_006 = ?, cert_primary = ?,
		cert_secondary = ?, version = ?, updated_us = ? WHERE id = ?`), pr.Name, boolInt(pr.Enabled), boolInt(pr.Accept006),
		pr.primary, pr.secondary, pr.Version, now.UnixMicro(), pr.ID); err != nil {
		return err
	}
	if err := cs.auditTx(ctx, tx, p, action, "project:"+pr.AppID, before, pr.audit()); err != nil {
		return err
	}
	return cs.publish(ctx, pr)
}

func (cs *Console) patchProject(w http.ResponseWriter, r *http.Request, p *principal) {
	var in projectPatch
	if err := decode(r, &in); err != nil {
		cs.fail(w, err)
		return
	}
	cs.change(w, r, p, "project.update", func(_ *sql.Tx, pr *project) (string, error) {
		if in.Name != nil {
			name, err := validName(*in.Name)
			if err != nil {
				return "", err
			}
			pr.Name = name
		}
		if in.Enabled != nil {
			pr.Enabled = *in.Enabled
		}
		if in.Accept006 != nil {
			pr.Accept006 = *in.Accept006
		}
		return "", nil
	})
}

func (cs *Console) addCertificate(w http.ResponseWriter, r *http.Request, p *principal) {
	cs.change(w, r, p, "project.certificate.add", func(_ *sql.Tx, pr *project) (string, error) {
		if len(pr.secondary) > 0 {
			return "", errorf(http.StatusConflict, "rotation_in_progress", "the project already has a secondary certificate; promote it first")
		}
		cert := randomHex(16)
		pr.secondary = cs.seal.seal(cert, pr.AppID)
		return cert, nil
	})
}

func (cs *Console) promoteCertificate(w http.ResponseWriter, r *http.Request, p *principal) {
	cs.change(w, r, p, "project.certificate.promote", func(_ *sql.Tx, pr *project) (string, error) {
		if len(pr.secondary) == 0 {
			return "", errorf(http.StatusConflict, "no_secondary", "the project has no secondary certificate")
		}
		pr.primary, pr.secondary = pr.secondary, nil
		return "", nil
	})
}

func (cs *Console) deleteProject(w http.ResponseWriter, r *http.Request, p *principal) {
	var pr *project
	err := cs.db.InTx(r.Context(), func(tx *sql.Tx) error {
		var err error
		if pr, err = cs.loadProject(r.Context(), tx, r, p, true); err != nil {
			return err
		}
		if m := r.Header.Get("If-Match"); m != "" && m != "*" && m != pr.etag() {
			return errorf(http.StatusPreconditionFailed, "version_mismatch", "the project changed; reload it (ETag %s)", pr.etag())
		}
		if _, err := tx.ExecContext(r.Context(), cs.db.Rebind("DELETE FROM projects WHERE id = ?"), pr.ID); err != nil {
			return err
		}
		if err := cs.auditTx(r.Context(), tx, p, "project.delete", "project:"+pr.AppID, pr.audit(), nil); err != nil {
			return err
		}
		if cs.cluster != nil {
			// A signed tombstone above every version published: no older record of the project is taken again.
			if err := cs.cluster.DeleteProject(r.Context(), pr.AppID, uint64(cs.nextVersion(pr))); err != nil {
				cs.log.Error("deleting project from the cluster failed", "app_id", pr.AppID, "err", err)
				return errorf(http.StatusServiceUnavailable, "cluster_unavailable", "the cluster did not accept the change; nothing was changed")
			}
		}
		return nil
	})
	if err != nil {
		cs.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (cs *Console) getCertificate(w http.ResponseWriter, r *http.Request, p *principal) {
	pr, err := cs.loadProject(r.Context(), cs.db, r, p, false)
	if err != nil {
		cs.fail(w, err)
		return
	}
	certs, err := cs.certificates(pr)
	if err != nil {
		cs.fail(w, err)
		return
	}
	out := map[string]string{"app_id": pr.AppID, "primary": certs[0]}
	if len(certs) > 1 {
		out["secondary"] = certs[1]
	}
	writeJSON(w, http.StatusOK, out)
}

func (cs *Console) projectToken(w http.ResponseWriter, r *http.Request, p *principal) {
	if !p.role.canUse() {
		cs.fail(w, errForbidden)
		return
	}
	var in tokenRequest
	if err := decode(r, &in); err != nil {
		cs.fail(w, err)
		return
	}
	var rl token.Role
	switch in.Role {
	case "publisher", "":
		rl = token.RolePublisher
	case "subscriber":
		rl = token.RoleSubscriber
	default:
		cs.fail(w, errorf(http.StatusBadRequest, "invalid_role", "role must be publisher or subscriber"))
		return
	}
	if in.Expire == 0 {
		in.Expire = 3600
	}
	if in.Expire < 1 || in.Expire > 86400 {
		cs.fail(w, errorf(http.StatusBadRequest, "invalid_expire", "expire must be 1..86400 seconds"))
		return
	}
	if in.Channel == "" || len(in.Channel) > 64 || len(in.UID) > 255 {
		cs.fail(w, errorf(http.StatusBadRequest, "invalid_channel", "channel must be 1..64 bytes and uid at most 255"))
		return
	}
	pr, err := cs.loadProject(r.Context(), cs.db, r, p, false)
	if err != nil {
		cs.fail(w, err)
		return
	}
	if !pr.Enabled {
		cs.fail(w, errorf(http.StatusConflict, "project_disabled", "the project is disabled"))
		return
	}
	certs, err := cs.certificates(pr)
	if err != nil {
		cs.fail(w, err)
		return
	}
	tok, err := token.BuildRTC(certs[0], token.RTCOptions{AppID: pr.AppID, Channel: in.Channel, UID: in.UID, Role: rl,
		Expire: time.Duration(in.Expire) * time.Second, IssuedAt: cs.now()})
	if err != nil {
		cs.fail(w, errorf(http.StatusBadRequest, "invalid_token_request", "%v", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": tok, "app_id": pr.AppID, "channel": in.Channel, "uid": in.UID, "expire": in.Expire})
}
