package protocol

import (
	"errors"

	"github.com/stoa-rtc/stoa/token"
)

// TokenErrorCode maps a token verification error to the code that edges and dispatchers answer with.
func TokenErrorCode(err error) Code {
	switch {
	case errors.Is(err, token.ErrUnknownApp):
		return CodeUnknownApp
	case errors.Is(err, token.ErrExpired), errors.Is(err, token.ErrPrivilegeExpired):
		return CodeTokenExpired
	case errors.Is(err, token.ErrChannelMismatch):
		return CodeChannelMismatch
	case errors.Is(err, token.ErrUIDMismatch):
		return CodeUIDMismatch
	case errors.Is(err, token.ErrAppIDMismatch):
		return CodeAppMismatch
	case errors.Is(err, token.Err006Refused):
		return CodeToken006Refused
	case errors.Is(err, token.ErrAmbiguous006):
		return CodeToken006Ambiguous
	case errors.Is(err, token.ErrNoService), errors.Is(err, token.ErrNoPrivilege):
		return CodeNoPrivilege
	}
	return CodeInvalidToken
}
