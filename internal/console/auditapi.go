package console

// The audit log and console access log APIs (issue 6, item 7), for owners and admins (API keys act as admins).
//
// Audit entries record no organisation, so an entry concerns an organisation when
//   - its target is one of the organisation's projects ("project:<app id>"), API keys ("apikey:<key id>") or
//     members' accounts ("account:<id>"), or
//   - its actor is a member (by email) or one of the organisation's API keys ("apikey:<key id>"), and its target
//     is not a project or API key of another organisation.
// Entries about deleted projects are therefore found through their actor. The access log lists the logins
// (successful or not) made with the email of a current member.

import (
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// auditItem is one audit entry as the API returns it. Before and after never hold secrets: callers never put
// them there and the audit log redacts well-known secret keys.
type auditItem struct {
	Seq      int64           `json:"seq"`
	Time     time.Time       `json:"time"`
	Actor    string          `json:"actor"`
	Action   string          `json:"action"`
	Target   string          `json:"target"`
	Before   json.RawMessage `json:"before"`
	After    json.RawMessage `json:"after"`
	Hash     string          `json:"hash"`
	PrevHash string          `json:"prev_hash"`
}

// accessItem is one console login attempt.
type accessItem struct {
	ID        int64     `json:"id"`
	Time      time.Time `json:"time"`
	Email     string    `json:"email"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"user_agent"`
	Result    string    `json:"result"` // "success" or "failure"
}

// Subqueries naming the organisation's members, API keys and projects (each takes the organisation id once).
const (
	orgMemberEmails = "SELECT a.email FROM accounts a JOIN memberships m ON m.account_id = a.id WHERE m.organisation_id = ?"
	orgAccounts     = "SELECT 'account:' || CAST(account_id AS TEXT) FROM memberships WHERE organisation_id = ?"
	orgKeyActors    = "SELECT 'apikey:' || key_id FROM api_keys WHERE organisation_id = ?"
	orgProjects     = "SELECT 'project:' || app_id FROM projects WHERE organisation_id = ?"
	otherKeys       = "SELECT 'apikey:' || key_id FROM api_keys WHERE organisation_id <> ?"
	otherProjects   = "SELECT 'project:' || app_id FROM projects WHERE organisation_id <> ?"
)

// listAudit serves GET /api/v1/audit?limit=&after=: the organisation's audit entries, newest first; after is the
// seq of the previous page's last entry.
func (cs *Console) listAudit(w http.ResponseWriter, r *http.Request, p *principal) {
	limit, after, err := page(r)
	if err != nil {
		cs.fail(w, err)
		return
	}
	o := p.orgID
	q := `SELECT seq, time_us, actor, action, target, before_json, after_json, hash, prev_hash FROM audit_log WHERE (
		target IN (` + orgProjects + `) OR target IN (` + orgKeyActors + `) OR target IN (` + orgAccounts + `)
		OR ((actor IN (` + orgMemberEmails + `) OR actor IN (` + orgKeyActors + `))
			AND target NOT IN (` + otherProjects + `) AND target NOT IN (` + otherKeys + `)))`
	args := []any{o, o, o, o, o, o, o}
	if after > 0 {
		q += " AND seq < ?"
		args = append(args, after)
	}
	q += " ORDER BY seq DESC, id DESC LIMIT ?"
	args = append(args, limit+1)
	items, next, err := queryPage(r.Context(), cs.db, limit, q, args, func(rows *sql.Rows) (auditItem, error) {
		var it auditItem
		var us int64
		var before, afterJSON string
		var hash, prev []byte
		err := rows.Scan(&it.Seq, &us, &it.Actor, &it.Action, &it.Target, &before, &afterJSON, &hash, &prev)
		it.Time = time.UnixMicro(us).UTC()
		it.Before, it.After = rawJSON(before), rawJSON(afterJSON)
		it.Hash, it.PrevHash = hex.EncodeToString(hash), hex.EncodeToString(prev)
		return it, err
	}, func(it auditItem) string { return strconv.FormatInt(it.Seq, 10) })
	cs.writePage(w, items, next, err)
}

// rawJSON returns s as JSON, or null when it is not valid JSON.
func rawJSON(s string) json.RawMessage {
	if s == "" || !json.Valid([]byte(s)) {
		return json.RawMessage("null")
	}
	return json.RawMessage(s)
}

// listAccessLog serves GET /api/v1/access-log?limit=&after=: logins of the organisation's members, newest first;
// after is the id of the previous page's last entry.
func (cs *Console) listAccessLog(w http.ResponseWriter, r *http.Request, p *principal) {
	limit, after, err := page(r)
	if err != nil {
		cs.fail(w, err)
		return
	}
	q := "SELECT id, time_us, email, success, ip, user_agent FROM access_log WHERE email IN (" + orgMemberEmails + ")"
	args := []any{p.orgID}
	if after > 0 {
		q += " AND id < ?"
		args = append(args, after)
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit+1)
	items, next, err := queryPage(r.Context(), cs.db, limit, q, args, func(rows *sql.Rows) (accessItem, error) {
		var it accessItem
		var us, success int64
		err := rows.Scan(&it.ID, &us, &it.Email, &success, &it.IP, &it.UserAgent)
		it.Time = time.UnixMicro(us).UTC()
		it.Result = "failure"
		if success != 0 {
			it.Result = "success"
		}
		return it, err
	}, func(it accessItem) string { return strconv.FormatInt(it.ID, 10) })
	cs.writePage(w, items, next, err)
}
