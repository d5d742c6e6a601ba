package media

import (
	"fmt"

	"github.com/stoa-rtc/stoa/sframe"
)

// Sender encrypts the frames of one sender of a channel under Stoa's media profile. Like sframe.Sender, which it
// wraps, it is for one goroutine and allocates nothing per frame once its output buffer is large enough.
type Sender struct {
	s *sframe.Sender
}

// NewSender returns a sender with key identifier kid (see NewKID) whose base key is derived from the channel secret
// of kid's generation. It keeps no reference to secret.
func NewSender(suite sframe.Suite, secret *sframe.Key, kid uint64) (*Sender, error) {
	base, err := SenderKey(suite, secret, kid)
	if err != nil {
		return nil, err
	}
	defer base.Wipe()
	s, err := sframe.NewSender(suite, kid, base)
	if err != nil {
		return nil, err
	}
	return &Sender{s: s}, nil
}

// KID returns the sender's key identifier.
func (s *Sender) KID() uint64 { return s.s.KID() }

// Seal encrypts one encoded frame of codec c and appends the wire frame, clear_prefix || header || ciphertext ||
// tag, to dst; the clear prefix is authenticated as SFrame metadata. dst must not overlap frame. It returns
// ErrShortFrame for a frame shorter than its clear prefix and sframe.ErrCounterExhausted after 2^64 frames; on
// error dst is returned unchanged.
func (s *Sender) Seal(dst []byte, c Codec, frame []byte) ([]byte, error) {
	p, ok := c.ClearPrefixLen(frame)
	if !ok {
		if c > VP8 {
			return dst, fmt.Errorf("sframe: unknown media codec %v", c)
		}
		return dst, ErrShortFrame
	}
	out, err := s.s.Seal(append(dst, frame[:p]...), frame[:p], frame[p:])
	if err != nil {
		return dst, err
	}
	return out, nil
}

// Wipe erases the sender's key state; Seal fails afterwards.
func (s *Sender) Wipe() { s.s.Wipe() }

// String describes the sender without key material.
func (s *Sender) String() string { return "media." + s.s.String() }
