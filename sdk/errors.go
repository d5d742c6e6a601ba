package sdk

import (
	"errors"
	"fmt"
)

// Code is a stable error or reason code from a dispatcher or an edge (docs/protocol.md, "Error codes"). Programs act
// on codes; messages are for people.
type Code string

// Codes of the signaling protocol. Dispatchers answer with the same codes where they apply.
const (
	CodeBadRequest         Code = "bad_request"
	CodeMessageTooLarge    Code = "message_too_large"
	CodeRateLimited        Code = "rate_limited"
	CodeUnsupportedVersion Code = "unsupported_version"
	CodeNotJoined          Code = "not_joined"
	CodeAlreadyJoined      Code = "already_joined"
	CodeInvalidToken       Code = "invalid_token"
	CodeUnknownApp         Code = "unknown_app"
	CodeTokenExpired       Code = "token_expired"
	CodeChannelMismatch    Code = "channel_mismatch"
	CodeUIDMismatch        Code = "uid_mismatch"
	CodeAppMismatch        Code = "app_mismatch"
	CodeNoPrivilege        Code = "no_privilege"
	CodePrivilegeExpired   Code = "privilege_expired"
	CodeInvalidTicket      Code = "invalid_ticket"
	CodeUnknownTrack       Code = "unknown_track"
	CodeTooManyTracks      Code = "too_many_tracks"
	CodeNegotiation        Code = "negotiation_failed"
	CodeReplaced           Code = "replaced"
	CodeLeft               Code = "left"
	CodeTimeout            Code = "timeout"
	CodeShuttingDown       Code = "shutting_down"
	CodeInternal           Code = "internal"
)

// Error is a refusal from the network: a dispatcher's error body, an edge's error answer to a request, or the reason
// an edge removed the client. Use errors.As to get it and act on its Code.
type Error struct {
	// Op is what was refused: "dispatch", "join", "publish", "renew", "removed", ...
	Op string
	// Code is the stable code.
	Code Code
	// Message explains the refusal to people. It never contains the token or the channel secret.
	Message string
	// Status is the HTTP status of a dispatcher's answer; 0 for an edge's.
	Status int
}

// Error returns "sdk: OP: CODE (HTTP STATUS): MESSAGE".
func (e *Error) Error() string {
	s := "sdk: " + e.Op + ": " + string(e.Code)
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Errors that callers act on.
var (
	// ErrClosed is returned by the methods of a Client that has left, was closed or was disconnected for good.
	ErrClosed = errors.New("sdk: client closed")
	// ErrReconnecting is returned while the client has no live session with an edge: it is reconnecting. A frame
	// or message refused with it was not sent; keep going, the client resumes once Reconnected is delivered.
	ErrReconnecting = errors.New("sdk: not connected, reconnecting")
	// ErrUnpublished is returned when writing to a track that was unpublished, by the application or by the edge
	// (its privilege expired).
	ErrUnpublished = errors.New("sdk: track is not published")
	// ErrMessageTooLarge is returned by DataTrack.Send for a message that does not fit the edge's limit once
	// encrypted (MaxDataMessage).
	ErrMessageTooLarge = errors.New("sdk: data message too large")
	// ErrBackpressure is returned by DataTrack.Send while more than MaxDataBuffered bytes wait to be sent.
	ErrBackpressure = errors.New("sdk: data channel send buffer full")
)

// final reports whether a refusal ends the client for good: retrying elsewhere or later with the same token cannot
// succeed (bad or expired token, missing privilege, replaced by another session, ...).
func final(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case CodeInternal, CodeShuttingDown, CodeTimeout, CodeRateLimited, CodeInvalidTicket, CodeNegotiation:
		return false
	}
	if e.Status >= 500 || e.Status == 429 {
		return false
	}
	return true
}

// ticketRefused reports whether an edge refused the dispatcher's ticket. Every edge the ticket names verifies it
// alike (the same signature, key and expiry), so the next edge would refuse it too, or, if the refusal was
// transient, admit the client away from the other participants of its channel: a split call. The ticket's other
// edges are not tried after it.
func ticketRefused(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == CodeInvalidTicket
}

// shorten bounds text that comes from the network before it goes into an error or a log.
func shorten(s string) string {
	const max = 256
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
