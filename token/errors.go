package token

import (
	"errors"
	"fmt"
	"time"
)

// Errors that callers act on. Every error returned by this package wraps exactly one of them.
var (
	// ErrMalformed: the token cannot be decoded (bad version, base64, zlib, layout, length or an unknown service).
	ErrMalformed = errors.New("token: malformed token")
	// ErrSignature: the token was not signed with any certificate that the verifier holds for its App ID.
	ErrSignature = errors.New("token: bad signature")
	// ErrExpired: the token as a whole has expired.
	ErrExpired = errors.New("token: token expired")
	// ErrPrivilegeExpired: a privilege the caller needs has expired (see [PrivilegeExpiredError]).
	ErrPrivilegeExpired = errors.New("token: privilege expired")
	// ErrAppIDMismatch: the token was issued for another App ID.
	ErrAppIDMismatch = errors.New("token: app id mismatch")
	// ErrChannelMismatch: the token grants no access to the requested channel.
	ErrChannelMismatch = errors.New("token: channel mismatch")
	// ErrUIDMismatch: the token was issued for another uid or user account.
	ErrUIDMismatch = errors.New("token: uid mismatch")
	// ErrNoService: the token carries no service of the kind that was asked for (e.g. no RTC service).
	ErrNoService = errors.New("token: no matching service")
	// ErrNoPrivilege: the token lacks a privilege the caller needs (e.g. join channel).
	ErrNoPrivilege = errors.New("token: privilege not granted")
	// ErrUnknownApp: the verifier holds no certificate for the token's App ID.
	ErrUnknownApp = errors.New("token: unknown app id")
	// ErrInvalidInput: the values given to a builder cannot make a valid token.
	ErrInvalidInput = errors.New("token: invalid input")
	// Err006Refused: the token is a legacy "006" token and its app does not accept them (see [App.Accept006]).
	Err006Refused = errors.New("token: 006 tokens are not accepted for this app")
	// ErrAmbiguous006: a "006" token was presented for a channel and uid that the verifier never accepts, because
	// its signature cannot tell them apart from another channel and uid (see [Ambiguous006Error]).
	ErrAmbiguous006 = errors.New("token: ambiguous 006 token")
)

// MalformedError says why a token could not be decoded. It matches [ErrMalformed] with errors.Is.
type MalformedError struct {
	Reason string
}

func (e *MalformedError) Error() string { return "token: malformed token: " + e.Reason }

// Is reports whether target is ErrMalformed.
func (e *MalformedError) Is(target error) bool { return target == ErrMalformed }

func malformed(format string, a ...any) error {
	return &MalformedError{Reason: fmt.Sprintf(format, a...)}
}

// PrivilegeExpiredError names the privilege that expired and when. It matches [ErrPrivilegeExpired] with errors.Is.
type PrivilegeExpiredError struct {
	Service   ServiceType
	Privilege Privilege
	At        time.Time
}

func (e *PrivilegeExpiredError) Error() string {
	return fmt.Sprintf("token: privilege expired: %s of service %s expired at %s",
		e.Privilege.name(e.Service), e.Service, e.At.UTC().Format(time.RFC3339))
}

// Is reports whether target is ErrPrivilegeExpired.
func (e *PrivilegeExpiredError) Is(target error) bool { return target == ErrPrivilegeExpired }

// Ambiguous006Error says why a "006" token was refused for the channel and uid it was presented with. It matches
// [ErrAmbiguous006] with errors.Is.
type Ambiguous006Error struct {
	Reason string
}

func (e *Ambiguous006Error) Error() string { return "token: ambiguous 006 token: " + e.Reason }

// Is reports whether target is ErrAmbiguous006.
func (e *Ambiguous006Error) Is(target error) bool { return target == ErrAmbiguous006 }

func invalidInput(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidInput}, a...)...)
}
