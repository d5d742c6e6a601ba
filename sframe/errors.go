package sframe

import "errors"

// Errors that callers act on. Every error of this package starts with "sframe: ".
var (
	// ErrAuth is returned by Receiver.Open for every frame that is not authentic: malformed or truncated frame,
	// unknown KID, bad tag. The reasons are deliberately not told apart.
	ErrAuth = errors.New("sframe: authentication failed")

	// ErrReplay is returned by Receiver.Open for an authentic frame whose counter was already accepted or is too
	// old for the replay window: a genuine duplicate, which forgeries cannot produce since the tag is checked
	// first. errors.Is(ErrReplay, ErrAuth) is true, so callers that only count rejected frames can test for ErrAuth
	// alone; callers that want to tell duplicates (e.g. from retransmission) apart from forgeries test for
	// ErrReplay first.
	ErrReplay error = replayError{}

	// ErrCounterExhausted is returned by Sender.Seal once the sender has used counter 2^64-1: continuing would
	// reuse a nonce. Start a new Sender with a new KID or key.
	ErrCounterExhausted = errors.New("sframe: counter exhausted, a new KID or key is needed")

	// ErrTruncatedHeader is returned by ParseHeader when the input ends inside the header.
	ErrTruncatedHeader = errors.New("sframe: truncated header")

	// ErrUnsupportedSuite is returned for a cipher suite identifier this package does not implement.
	ErrUnsupportedSuite = errors.New("sframe: unsupported cipher suite")
)

// Errors that signal misuse; callers fix their code rather than act on them.
var (
	errEmptyKey      = errors.New("sframe: empty base key")
	errFrameTooLarge = errors.New("sframe: frame too large")
	errWiped         = errors.New("sframe: use of a wiped sender")
	errKIDInUse      = errors.New("sframe: KID already has a key; remove it first")
)

type replayError struct{}

func (replayError) Error() string { return "sframe: replayed frame" }

// Is makes ErrReplay match ErrAuth too: a replay is an authentication failure that callers may tell apart.
func (replayError) Is(target error) bool { return target == ErrAuth }
