package console

// The audit log and console access log APIs (issue 6, item 7).
//
// Who reads what (finding 4 of the hardening review: an owner of organisation A who joined E as a viewer made
// A's entries and logins readable by E's owner, because entries were matched to organisations by their actor):
//   - every audit entry belongs to the organisation in which the change was made (organisation_id, set when it
//     is appended), or to none: changes to an account ("account." actions), which spans organisations, and
//     system entries. GET /api/v1/audit returns the entries of the caller's organisation, to its owners,
//     admins and API keys, and nothing else, whoever the actor;
//   - every access-log entry (a login attempt) belongs to the account whose email it names, or to none, and
//     never to an organisation: GET /api/v1/access-log returns the caller's own logins, to any signed-in user.

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

// listAudit serves GET /api/v1/audit?limit=&after=: the organisation's audit entries, newest first; after is the
// seq of the previous page's last entry.
func (cs *Console) listAudit(w http.ResponseWriter, r *http.Request, p *principal) {
	limit, after, err := page(r)
	if err != nil {
		cs.fail(w, err)
		return
	}
	q := `SELECT seq, time_us, actor, action, target, before_json, after_json, hash, prev_hash FROM audit_log
		WHERE organisation_id = ?`
	args := []any{p.orgID}
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

// listAccessLog serves GET /api/v1/access-log?limit=&after=: the caller's own login attempts, newest first;
// after is the id of the previous page's last entry.
func (cs *Console) listAccessLog(w http.ResponseWriter, r *http.Request, p *principal) {
	limit, after, err := page(r)
	if err != nil {
		cs.fail(w, err)
		return
	}
	q := "SELECT id, time_us, email, success, ip, user_agent FROM access_log WHERE account_id = ?"
	args := []any{p.accountID}
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
