package sframe

import (
	"fmt"
	"math"
)

// Sender encrypts the frames of one SFrame sender: one cipher suite, one KID and its base key. Counters start at 0
// and increase by one per frame; a Sender never encrypts two frames under one (base key, KID, CTR) and fails with
// ErrCounterExhausted rather than wrap.
//
// A Sender is meant for the one goroutine that produces a stream's frames and is not safe for concurrent use:
// that keeps Seal free of locks. Sender and Receiver share no state, so one goroutine may seal while another opens.
type Sender struct {
	suite     Suite
	kid       uint64
	next      uint64 // counter of the next frame
	exhausted bool   // next has passed 2^64-1
	state     *keyState
}

// NewSender derives the SFrame key and salt of kid from baseKey (§4.4.2) and returns a Sender whose first frame has
// counter 0. The Sender keeps no reference to baseKey, which the caller may wipe.
func NewSender(suite Suite, kid uint64, baseKey *Key) (*Sender, error) {
	st, err := newKeyState(suite, kid, baseKey)
	if err != nil {
		return nil, err
	}
	return &Sender{suite: suite, kid: kid, state: st}, nil
}

// Suite returns the sender's cipher suite.
func (s *Sender) Suite() Suite { return s.suite }

// KID returns the sender's key identifier.
func (s *Sender) KID() uint64 { return s.kid }

// Overhead returns how many bytes the next Seal adds to its plaintext: header and tag.
func (s *Sender) Overhead() int { return HeaderLen(s.kid, s.next) + s.suite.TagSize() }

// Seal encrypts plaintext as the sender's next frame, authenticating metadata along with it (§4.4.3), and appends
// the frame, header || ciphertext || tag, to dst. Metadata is not part of the frame: the receiver must be given the
// same bytes. dst must not overlap metadata or plaintext. Once dst has room for the frame (see Overhead), Seal
// allocates nothing.
//
// On error, Seal returns dst unchanged and consumes no counter.
func (s *Sender) Seal(dst, metadata, plaintext []byte) ([]byte, error) {
	if s.state == nil {
		return dst, errWiped
	}
	if s.exhausted {
		return dst, ErrCounterExhausted
	}
	out, err := s.state.seal(dst, s.kid, s.next, metadata, plaintext)
	if err != nil {
		return dst, err
	}
	if s.next == math.MaxUint64 {
		s.exhausted = true
	} else {
		s.next++
	}
	return out, nil
}

// Wipe erases the sender's key state; Seal fails afterwards.
func (s *Sender) Wipe() {
	if s.state != nil {
		s.state.wipe()
		s.state = nil
	}
}

// String describes the sender without key material.
func (s *Sender) String() string {
	return fmt.Sprintf("sframe.Sender{suite: %v, kid: %d}", s.suite, s.kid)
}
