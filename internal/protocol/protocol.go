// Package protocol defines Stoa's signaling protocol, version 1: JSON text messages over a WebSocket between a
// client and an edge. docs/protocol.md describes it for client authors; this package is the reference.
//
// Every message is an envelope {"type": T, "id": N, T: {...}} whose payload sits under the key named by its type.
// Requests from the client carry an id; the edge answers each with "ok" or "error" carrying the same id (and, for
// join and offer, with "joined" or "answer" carrying it). Events from the edge carry no id.
//
// Media does not travel here: each client holds two WebRTC peer connections with the edge, a publisher connection
// that the client offers and a subscriber connection that the edge offers. SDP is exchanged whole, with its ICE
// candidates in it (no trickle).
package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Version is the protocol version this package speaks; clients send it in join.
const Version = 1

// Limits. A message larger than MaxMessageSize is refused before it is decoded.
const (
	MaxMessageSize = 64 << 10
	MaxTokenLength = 4096
	MaxChannelLen  = 64
	MaxUIDLen      = 255
	MaxSDPLength   = 48 << 10
	MaxTrackIDLen  = 64
	MaxTicketLen   = 4096
	MaxReasonLen   = 256
)

// Type names a message.
type Type string

// Client to edge.
const (
	TypeJoin        Type = "join"        // Join → joined
	TypeOffer       Type = "offer"       // SDP: client's publisher offer → answer; edge's subscriber offer
	TypeAnswer      Type = "answer"      // SDP: edge's answer to the publisher offer; client's answer to the subscriber offer
	TypePublish     Type = "publish"     // Publish → ok{track_id}
	TypeUnpublish   Type = "unpublish"   // TrackRef → ok
	TypeSubscribe   Type = "subscribe"   // TrackRef → ok
	TypeUnsubscribe Type = "unsubscribe" // TrackRef → ok
	TypeRenew       Type = "renew"       // Renew → renewed
	TypeLeave       Type = "leave"       // no payload; the edge closes the session
	TypePing        Type = "ping"        // no payload → pong
)

// Edge to client.
const (
	TypeJoined              Type = "joined"
	TypeOK                  Type = "ok"
	TypeError               Type = "error"
	TypeRenewed             Type = "renewed"
	TypePong                Type = "pong"
	TypeParticipantJoined   Type = "participant_joined"
	TypeParticipantLeft     Type = "participant_left"
	TypeTrackPublished      Type = "track_published"
	TypeTrackUnpublished    Type = "track_unpublished"
	TypePrivilegeWillExpire Type = "privilege_will_expire"
	TypePrivilegeExpired    Type = "privilege_expired"
	TypeRemoved             Type = "removed" // the edge removed the participant; the session ends
)

// Kind is the kind of a track.
type Kind string

const (
	KindAudio Kind = "audio"
	KindVideo Kind = "video"
	KindData  Kind = "data"
)

// Valid reports whether k is one of the three kinds.
func (k Kind) Valid() bool { return k == KindAudio || k == KindVideo || k == KindData }

// Message is the envelope of every message. Exactly the payload named by Type is set (none for leave, ping, pong).
type Message struct {
	Type Type   `json:"type"`
	ID   uint32 `json:"id,omitempty"`

	Join                *Join            `json:"join,omitempty"`
	Joined              *Joined          `json:"joined,omitempty"`
	Offer               *SDP             `json:"offer,omitempty"`
	Answer              *SDP             `json:"answer,omitempty"`
	Publish             *Publish         `json:"publish,omitempty"`
	Unpublish           *TrackRef        `json:"unpublish,omitempty"`
	Subscribe           *TrackRef        `json:"subscribe,omitempty"`
	Unsubscribe         *TrackRef        `json:"unsubscribe,omitempty"`
	Renew               *Renew           `json:"renew,omitempty"`
	Renewed             *Renewed         `json:"renewed,omitempty"`
	OK                  *OK              `json:"ok,omitempty"`
	Error               *Error           `json:"error,omitempty"`
	ParticipantJoined   *Participant     `json:"participant_joined,omitempty"`
	ParticipantLeft     *ParticipantLeft `json:"participant_left,omitempty"`
	TrackPublished      *Track           `json:"track_published,omitempty"`
	TrackUnpublished    *TrackRef        `json:"track_unpublished,omitempty"`
	PrivilegeWillExpire *PrivilegeState  `json:"privilege_will_expire,omitempty"`
	PrivilegeExpired    *PrivilegeState  `json:"privilege_expired,omitempty"`
	Removed             *Removed         `json:"removed,omitempty"`
}

// Join asks to enter a channel. It must be the first message of a session.
type Join struct {
	Version int    `json:"version"`
	Token   string `json:"token"`
	AppID   string `json:"app_id"`
	Channel string `json:"channel"`
	UID     string `json:"uid"`
	// Ticket is the dispatcher's edge ticket, when the network uses one.
	Ticket string `json:"ticket,omitempty"`
	// AutoSubscribe subscribes to every track in the channel, present and future (default true).
	AutoSubscribe *bool `json:"auto_subscribe,omitempty"`
	// Client names the SDK and its version, for logs ("stoa-go/0.1").
	Client string `json:"client,omitempty"`
	// Hidden joins without being announced to the other participants, as a recorder does; it needs the token's
	// join-hidden privilege (100), and a hidden participant cannot publish.
	Hidden bool `json:"hidden,omitempty"`
}

// Joined answers a join: who is in the channel and what the token grants.
type Joined struct {
	// Session identifies this session in the edge's logs and events.
	Session      string           `json:"session"`
	Edge         string           `json:"edge"`
	Participants []Participant    `json:"participants"`
	Privileges   []PrivilegeState `json:"privileges"`
	// ServerTime is the edge's clock in Unix milliseconds, so clients can judge expiry times.
	ServerTime int64 `json:"server_time"`
}

// Participant is another member of the channel and the tracks it publishes.
type Participant struct {
	UID    string  `json:"uid"`
	Tracks []Track `json:"tracks,omitempty"`
}

// Track describes a published track.
type Track struct {
	ID   string `json:"id"`
	UID  string `json:"uid"` // the publisher
	Kind Kind   `json:"kind"`
	// MID is the media section of the subscriber connection that carries the track, once it is subscribed.
	MID string `json:"mid,omitempty"`
}

// SDP carries a whole session description, ICE candidates included.
type SDP struct {
	SDP string `json:"sdp"`
}

// Publish asks to publish a track of a kind; the edge checks the privilege and answers ok{track_id}. The client
// then adds a track with that id (the SDP msid track id) to its publisher connection, or for data opens a data
// channel labelled with that id, and sends an offer.
type Publish struct {
	Kind Kind `json:"kind"`
}

// TrackRef names a track.
type TrackRef struct {
	TrackID string `json:"track_id"`
}

// Renew replaces the session's token with a fresh one without leaving.
type Renew struct {
	Token string `json:"token"`
}

// Renewed confirms a renewal with the new privileges.
type Renewed struct {
	Privileges []PrivilegeState `json:"privileges"`
}

// PrivilegeState tells when a privilege expires. Privilege uses the token's numbers (1 join, 2 publish audio,
// 3 publish video, 4 publish data, 100 join hidden).
type PrivilegeState struct {
	Privilege uint16 `json:"privilege"`
	Name      string `json:"name"`
	// ExpiresAt is Unix seconds.
	ExpiresAt int64 `json:"expires_at"`
}

// OK acknowledges a request; TrackID is set for publish.
type OK struct {
	TrackID string `json:"track_id,omitempty"`
}

// ParticipantLeft tells that a participant left and why.
type ParticipantLeft struct {
	UID    string `json:"uid"`
	Reason Code   `json:"reason,omitempty"`
}

// Removed ends a session from the edge's side.
type Removed struct {
	Reason  Code   `json:"reason"`
	Message string `json:"message,omitempty"`
}

// Error answers a request that failed, or reports a problem with no request (ID 0).
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Code is a stable error or reason code; clients act on codes, never on messages.
type Code string

const (
	CodeBadRequest         Code = "bad_request"         // malformed or invalid message
	CodeMessageTooLarge    Code = "message_too_large"   // over MaxMessageSize
	CodeRateLimited        Code = "rate_limited"        // too many messages
	CodeBlocked            Code = "blocked"             // the client's address is blocked for repeated bad requests
	CodeUnsupportedVersion Code = "unsupported_version" // join.version not spoken by the edge
	CodeNotJoined          Code = "not_joined"          // request before join
	CodeAlreadyJoined      Code = "already_joined"      // a second join in one session
	CodeInvalidToken       Code = "invalid_token"       // malformed token or bad signature
	CodeUnknownApp         Code = "unknown_app"         // no project with this App ID
	CodeTokenExpired       Code = "token_expired"       // the token (or its join privilege) has expired
	CodeChannelMismatch    Code = "channel_mismatch"    // the token is for another channel
	CodeUIDMismatch        Code = "uid_mismatch"        // the token is for another uid
	CodeAppMismatch        Code = "app_mismatch"        // the token is for another App ID (renew)
	CodeToken006Refused    Code = "token_006_refused"   // a legacy 006 token, and the project does not accept them
	CodeToken006Ambiguous  Code = "token_006_ambiguous" // a 006 token for a channel and uid it cannot bind (docs/tokens.md)
	CodeNoPrivilege        Code = "no_privilege"        // the token does not grant this action
	CodePrivilegeExpired   Code = "privilege_expired"   // the privilege for this action has expired
	CodeInvalidTicket      Code = "invalid_ticket"      // the edge ticket is invalid or names other edges
	CodeUnknownTrack       Code = "unknown_track"       // no such track
	CodeTooManyTracks      Code = "too_many_tracks"     // publication limit reached
	CodeNegotiation        Code = "negotiation_failed"  // an SDP could not be applied
	CodeReplaced           Code = "replaced"            // another session joined with the same uid
	CodeLeft               Code = "left"                // the participant left
	CodeTimeout            Code = "timeout"             // the session went silent
	CodeShuttingDown       Code = "shutting_down"       // the edge is draining
	CodeInternal           Code = "internal"            // an edge fault; retry
)

// DecodeError explains why a message was refused; its Code is what the edge answers with.
type DecodeError struct {
	Code   Code
	Reason string
}

func (e *DecodeError) Error() string { return "protocol: " + e.Reason }

func bad(format string, a ...any) error {
	return &DecodeError{Code: CodeBadRequest, Reason: fmt.Sprintf(format, a...)}
}

// Decode parses and validates one message: its size, its JSON (unknown fields are refused), its type and that
// exactly the payload of its type is present, and the limits on every field. It never panics.
func Decode(b []byte) (*Message, error) {
	if len(b) > MaxMessageSize {
		return nil, &DecodeError{Code: CodeMessageTooLarge, Reason: fmt.Sprintf("message is %d bytes, limit %d", len(b), MaxMessageSize)}
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var m Message
	if err := d.Decode(&m); err != nil {
		return nil, bad("invalid JSON: %s", jsonReason(err))
	}
	if d.More() {
		return nil, bad("more than one JSON value")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

func jsonReason(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type)
	}
	// Unknown-field errors name the field, which is the client's own input; keep it short.
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// Encode returns the JSON of m.
func Encode(m *Message) ([]byte, error) { return json.Marshal(m) }

// payloads lists which payload each type carries; "" for none.
func (m *Message) payloads() (present []string) {
	for name, set := range map[string]bool{
		"join": m.Join != nil, "joined": m.Joined != nil, "offer": m.Offer != nil, "answer": m.Answer != nil,
		"publish": m.Publish != nil, "unpublish": m.Unpublish != nil, "subscribe": m.Subscribe != nil,
		"unsubscribe": m.Unsubscribe != nil, "renew": m.Renew != nil, "renewed": m.Renewed != nil, "ok": m.OK != nil,
		"error": m.Error != nil, "participant_joined": m.ParticipantJoined != nil,
		"participant_left": m.ParticipantLeft != nil, "track_published": m.TrackPublished != nil,
		"track_unpublished": m.TrackUnpublished != nil, "privilege_will_expire": m.PrivilegeWillExpire != nil,
		"privilege_expired": m.PrivilegeExpired != nil, "removed": m.Removed != nil,
	} {
		if set {
			present = append(present, name)
		}
	}
	return present
}

var noPayload = map[Type]bool{TypeLeave: true, TypePing: true, TypePong: true}

var optionalPayload = map[Type]bool{TypeOK: true}

// Validate checks the envelope and the limits of the payload.
func (m *Message) Validate() error {
	present := m.payloads()
	switch {
	case m.Type == "":
		return bad("missing type")
	case !knownType(m.Type):
		return bad("unknown type %.32q", string(m.Type))
	case noPayload[m.Type]:
		if len(present) != 0 {
			return bad("%s carries no payload, got %q", m.Type, present[0])
		}
		return nil
	case len(present) == 0 && optionalPayload[m.Type]:
		return nil
	case len(present) != 1 || present[0] != string(m.Type):
		return bad("%s needs exactly its own payload under %q", m.Type, string(m.Type))
	}
	switch m.Type {
	case TypeJoin:
		j := m.Join
		if err := checkString("join.token", j.Token, 1, MaxTokenLength); err != nil {
			return err
		}
		if err := checkString("join.app_id", j.AppID, 1, 64); err != nil {
			return err
		}
		if err := CheckChannel(j.Channel); err != nil {
			return err
		}
		if err := CheckUID(j.UID); err != nil {
			return err
		}
		if err := checkString("join.ticket", j.Ticket, 0, MaxTicketLen); err != nil {
			return err
		}
		return checkString("join.client", j.Client, 0, 64)
	case TypeOffer:
		return checkString("offer.sdp", m.Offer.SDP, 1, MaxSDPLength)
	case TypeAnswer:
		return checkString("answer.sdp", m.Answer.SDP, 1, MaxSDPLength)
	case TypePublish:
		if !m.Publish.Kind.Valid() {
			return bad("publish.kind must be audio, video or data")
		}
	case TypeUnpublish:
		return checkString("unpublish.track_id", m.Unpublish.TrackID, 1, MaxTrackIDLen)
	case TypeSubscribe:
		return checkString("subscribe.track_id", m.Subscribe.TrackID, 1, MaxTrackIDLen)
	case TypeUnsubscribe:
		return checkString("unsubscribe.track_id", m.Unsubscribe.TrackID, 1, MaxTrackIDLen)
	case TypeRenew:
		return checkString("renew.token", m.Renew.Token, 1, MaxTokenLength)
	}
	return nil
}

func knownType(t Type) bool {
	switch t {
	case TypeJoin, TypeOffer, TypeAnswer, TypePublish, TypeUnpublish, TypeSubscribe, TypeUnsubscribe, TypeRenew,
		TypeLeave, TypePing, TypeJoined, TypeOK, TypeError, TypeRenewed, TypePong, TypeParticipantJoined,
		TypeParticipantLeft, TypeTrackPublished, TypeTrackUnpublished, TypePrivilegeWillExpire,
		TypePrivilegeExpired, TypeRemoved:
		return true
	}
	return false
}

func checkString(field, s string, min, max int) error {
	if len(s) < min {
		if min == 1 {
			return bad("%s is required", field)
		}
		return bad("%s is shorter than %d bytes", field, min)
	}
	if len(s) > max {
		return bad("%s is longer than %d bytes", field, max)
	}
	if !utf8.ValidString(s) {
		return bad("%s is not valid UTF-8", field)
	}
	return nil
}

// CheckChannel checks a channel name: 1 to 64 bytes of printable ASCII.
func CheckChannel(s string) error { return checkPrintable("channel", s, MaxChannelLen) }

// CheckUID checks a uid or user account: 1 to 255 bytes of printable ASCII.
func CheckUID(s string) error { return checkPrintable("uid", s, MaxUIDLen) }

func checkPrintable(field, s string, max int) error {
	if s == "" {
		return bad("%s is required", field)
	}
	if len(s) > max {
		return bad("%s is longer than %d bytes", field, max)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return bad("%s must be printable ASCII", field)
		}
	}
	return nil
}
