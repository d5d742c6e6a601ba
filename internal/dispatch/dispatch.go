// Package dispatch implements the entry point of a Stoa network: POST /v1/dispatch verifies a client's token and
// answers with the edges the client may use, in a signed edge ticket. It also holds the scheduling rules that
// pick those edges (Pick, Inflight) and the map that places clients by their address (RegionMap); internal/node
// feeds them with the cluster's state.
package dispatch

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/stoa-rtc/stoa/internal/guard"
	"github.com/stoa-rtc/stoa/internal/ticket"

	"github.com/stoa-rtc/stoa/internal/protocol"
	"github.com/stoa-rtc/stoa/token"
)

// Request is the body of POST /v1/dispatch.
type Request struct {
	AppID   string `json:"app_id"`
	Channel string `json:"channel"`
	UID     string `json:"uid"`
	Token   string `json:"token"`
	Region  string `json:"region,omitempty"`
}

// Edge is one edge a client may connect to.
type Edge struct {
	ID     string `json:"id"`
	Region string `json:"region"`
	// URL is the edge's signaling WebSocket URL.
	URL string `json:"url"`
}

// Response answers a dispatch: edges[0] is the primary, the others are backups in order.
type Response struct {
	Region string `json:"region"`
	Edges  []Edge `json:"edges"`
	Ticket string `json:"ticket"`
}

// Error is a scheduling failure with the HTTP status and code to answer with.
type Error struct {
	Status        int
	Code, Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// ErrorBody is the body of every 4xx/5xx answer.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// maxBody bounds a request body: a token is at most 4 KiB.
const maxBody = 8 << 10

// Handler serves POST /v1/dispatch.
type Handler struct {
	Verifier *token.Verifier
	// Edges schedules a verified request: it returns the region and the edges to offer, primary first, or an
	// *Error to answer with.
	Edges func(req Request) (string, []Edge, error)
	// Signer signs the edge ticket of every answer; nil answers without a ticket.
	Signer *Signer
	// RegionMap, if set, gives the region of a request that names none, from its client's address (as
	// guard.Middleware sees it when the handler is behind one: a trusted proxy's X-Forwarded-For, else the
	// connection's address). An address it does not map leaves the region empty: the scheduler's own.
	RegionMap *RegionMap
	Logger    *slog.Logger
}

// Signer signs edge tickets with one dispatcher's key.
type Signer struct {
	KID string
	Key ed25519.PrivateKey
	// TTL is how long a ticket is valid: long enough for a client to fail over between its edges during a call
	// (default 24 h, the longest a token lives).
	TTL time.Duration
	Now func() time.Time
}

// Sign makes the ticket for req onto edges.
func (s *Signer) Sign(req Request, region string, edges []Edge) (string, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ttl := s.TTL
	if ttl == 0 {
		ttl = 24 * time.Hour
	}
	t := ticket.Ticket{KID: s.KID, AppID: req.AppID, Channel: req.Channel, UID: req.UID, Region: region,
		IssuedAt: now().Unix(), Expires: now().Add(ttl).Unix()}
	for _, e := range edges {
		t.Edges = append(t.Edges, e.ID)
	}
	return ticket.Sign(t, s.Key)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than 8 KiB")
		return
	}
	var req Request
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&req); err != nil {
		guard.ReportBad(r, guard.ReasonBadRequest)
		writeError(w, http.StatusBadRequest, "bad_request", "the body must be a JSON object with app_id, channel, uid and token")
		return
	}
	if err := protocol.CheckChannel(req.Channel); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if err := protocol.CheckUID(req.UID); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if req.AppID == "" || req.Token == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "app_id and token are required")
		return
	}
	if _, err := h.Verifier.Verify(req.Token, token.Expect{AppID: req.AppID, Channel: req.Channel, UID: req.UID}); err != nil {
		code, status := tokenError(err)
		reason := guard.ReasonInvalidToken
		switch code {
		case string(protocol.CodeTokenExpired):
			reason = guard.ReasonTokenExpired
		case string(protocol.CodeUnknownApp):
			reason = guard.ReasonUnknownApp
		}
		guard.ReportBad(r, reason)
		writeError(w, status, code, err.Error())
		return
	}
	if req.Region == "" && h.RegionMap != nil {
		req.Region = h.RegionMap.Lookup(clientIP(r))
	}
	region, edges, err := h.Edges(req)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "scheduling failed"}
		}
		writeError(w, e.Status, e.Code, e.Message)
		return
	}
	if len(edges) == 0 {
		writeError(w, http.StatusServiceUnavailable, "no_edges", "no healthy edge in the region")
		return
	}
	resp := Response{Region: region, Edges: edges}
	if h.Signer != nil {
		var err error
		if resp.Ticket, err = h.Signer.Sign(req, region, edges); err != nil {
			writeError(w, http.StatusInternalServerError, "internal", "could not sign the ticket")
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(resp)
}

// clientIP is the address of r's client, as the guard in front of the handler sees it.
func clientIP(r *http.Request) netip.Addr {
	if g := guard.FromContext(r.Context()); g != nil {
		return g.ClientIP(r)
	}
	ap, _ := netip.ParseAddrPort(r.RemoteAddr)
	return ap.Addr()
}

// tokenError gives the code and HTTP status of a verification error.
func tokenError(err error) (string, int) {
	code := protocol.TokenErrorCode(err)
	switch code {
	case protocol.CodeInvalidToken, protocol.CodeTokenExpired:
		return string(code), http.StatusUnauthorized
	}
	return string(code), http.StatusForbidden
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	var b ErrorBody
	b.Error.Code, b.Error.Message = code, message
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(b)
}
