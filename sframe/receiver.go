package sframe

import (
	"fmt"
	"sync"
)

// Receiver decrypts frames from any number of senders. It holds a key ring, one base key per KID (several KIDs at
// once while keys rotate), and per KID a ReplayWindow.
//
// Every method is safe for concurrent use: typically one goroutine opens frames while another adds and removes
// keys. Opens are serialized by a mutex.
type Receiver struct {
	suite Suite

	mu   sync.Mutex
	keys map[uint64]*receiverKey
}

type receiverKey struct {
	state  *keyState
	window ReplayWindow
}

// NewReceiver returns a Receiver for suite with an empty key ring.
func NewReceiver(suite Suite) (*Receiver, error) {
	if _, err := suite.params(); err != nil {
		return nil, err
	}
	return &Receiver{suite: suite, keys: make(map[uint64]*receiverKey)}, nil
}

// Suite returns the receiver's cipher suite.
func (r *Receiver) Suite() Suite { return r.suite }

// AddKey derives the SFrame key and salt of kid from baseKey and adds them to the ring with a fresh replay window.
// It fails if kid already has a key: replacing it would reset the replay window and let old frames in again, so
// the caller must RemoveKey first and decide that deliberately. The Receiver keeps no reference to baseKey.
func (r *Receiver) AddKey(kid uint64, baseKey *Key) error {
	st, err := newKeyState(r.suite, kid, baseKey)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.keys[kid]; ok {
		st.wipe()
		return errKIDInUse
	}
	r.keys[kid] = &receiverKey{state: st}
	return nil
}

// RemoveKey removes and wipes the key of kid, and reports whether there was one. Frames of kid are rejected
// afterwards.
func (r *Receiver) RemoveKey(kid uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, ok := r.keys[kid]
	if ok {
		k.state.wipe()
		delete(r.keys, kid)
	}
	return ok
}

// HasKey reports whether the ring holds a key for kid.
func (r *Receiver) HasKey(kid uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.keys[kid]
	return ok
}

// Len returns the number of keys in the ring.
func (r *Receiver) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.keys)
}

// Open authenticates and decrypts frame (header || ciphertext || tag), given the metadata the sender authenticated
// with it, and appends the plaintext to dst (§4.4.3). dst must not overlap metadata or frame. Once dst has room for
// the plaintext, Open allocates nothing.
//
// Open returns ErrReplay for an authentic frame whose counter the KID's replay window rejects, and ErrAuth for
// every other rejection: truncated or malformed frame, unknown KID, wrong tag. A frame of an unknown KID costs a
// map lookup and changes no state. On error, Open returns dst unchanged (its spare capacity may have been written).
func (r *Receiver) Open(dst, metadata, frame []byte) ([]byte, error) {
	kid, ctr, n, err := ParseHeader(frame)
	if err != nil {
		return dst, ErrAuth
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.keys[kid]
	if k == nil || len(frame)-n < k.state.aead.Overhead() {
		return dst, ErrAuth
	}
	out, err := k.state.open(dst, frame[:n], ctr, metadata, frame[n:])
	if err != nil {
		return dst, err
	}
	// The window is consulted only for authentic frames: forgeries cannot move it, and ErrReplay then means a
	// genuine duplicate, never a forgery that happens to carry an old counter.
	if !k.window.Accept(ctr) {
		return dst, ErrReplay
	}
	return out, nil
}

// Wipe removes and wipes every key.
func (r *Receiver) Wipe() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for kid, k := range r.keys {
		k.state.wipe()
		delete(r.keys, kid)
	}
}

// String describes the receiver without key material.
func (r *Receiver) String() string {
	return fmt.Sprintf("sframe.Receiver{suite: %v, keys: %d}", r.suite, r.Len())
}
