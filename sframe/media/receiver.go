package media

import (
	"fmt"
	"sync"

	"github.com/stoa-rtc/stoa/sframe"
)

// MaxKIDs bounds how many sender KIDs a Receiver holds keys for; frames of further KIDs are rejected until
// RemoveSecret frees some.
const MaxKIDs = 1024

// Receiver decrypts the frames of every sender of a channel under Stoa's media profile. It holds the channel
// secrets by key generation and learns senders from their frames: the first authentic frame of a new KID whose
// generation has a secret adds that KID's key, with its own replay window, to an sframe.Receiver.
//
// Learning happens only after the frame's tag has been checked, so forged frames leave no state. They are not free,
// though: a frame with an unknown KID of a known generation costs one key derivation (a few microseconds and a few
// small allocations) before it is rejected; frames of known KIDs allocate nothing.
//
// Every method is safe for concurrent use.
type Receiver struct {
	suite sframe.Suite

	mu      sync.Mutex
	secrets map[uint8]*sframe.Key
	learned map[uint64]struct{} // KIDs whose keys ring holds
	ring    *sframe.Receiver
	stats   Stats
}

// Stats counts the frames a Receiver has handled, for metrics: rejected frames are dropped, never fatal.
type Stats struct {
	Opened   uint64 // authentic frames decrypted
	Replayed uint64 // frames rejected by a replay window
	Rejected uint64 // every other rejected frame: malformed, unknown KID or generation, bad tag
}

// NewReceiver returns a Receiver for suite with no channel secret.
func NewReceiver(suite sframe.Suite) (*Receiver, error) {
	ring, err := sframe.NewReceiver(suite)
	if err != nil {
		return nil, err
	}
	return &Receiver{
		suite:   suite,
		secrets: make(map[uint8]*sframe.Key),
		learned: make(map[uint64]struct{}),
		ring:    ring,
	}, nil
}

// AddSecret sets the channel secret of key generation gen, keeping a copy of it. It fails if gen already has one:
// replacing a secret in place would keep the keys learned from the old one, so remove it first.
func (r *Receiver) AddSecret(gen uint8, secret *sframe.Key) error {
	if secret.Len() != SecretSize {
		return errSecretSize
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.secrets[gen]; ok {
		return fmt.Errorf("sframe: key generation %d already has a secret; remove it first", gen)
	}
	r.secrets[gen] = secret.Clone()
	return nil
}

// RemoveSecret wipes the secret of generation gen and every key learned from it: frames of that generation are
// rejected afterwards. It reports whether gen had a secret.
func (r *Receiver) RemoveSecret(gen uint8) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	secret, ok := r.secrets[gen]
	if !ok {
		return false
	}
	secret.Wipe()
	delete(r.secrets, gen)
	for kid := range r.learned {
		if Generation(kid) == gen {
			r.ring.RemoveKey(kid)
			delete(r.learned, kid)
		}
	}
	return true
}

// Open authenticates and decrypts a wire frame of codec c and appends the encoded frame (clear_prefix ||
// plaintext) to dst. dst must not overlap wire. Every rejection is sframe.ErrAuth, except replays
// (sframe.ErrReplay, which also matches ErrAuth). On error dst is returned unchanged.
func (r *Receiver) Open(dst []byte, c Codec, wire []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, err := r.open(dst, c, wire)
	switch {
	case err == nil:
		r.stats.Opened++
	case err == sframe.ErrReplay:
		r.stats.Replayed++
	default:
		r.stats.Rejected++
	}
	return out, err
}

func (r *Receiver) open(dst []byte, c Codec, wire []byte) ([]byte, error) {
	p, ok := c.ClearPrefixLen(wire)
	if !ok {
		return dst, sframe.ErrAuth
	}
	prefix, frame := wire[:p], wire[p:]
	kid, _, _, err := sframe.ParseHeader(frame)
	if err != nil {
		return dst, sframe.ErrAuth
	}
	if _, ok := r.learned[kid]; !ok {
		return r.learn(dst, kid, prefix, frame)
	}
	out, err := r.ring.Open(append(dst, prefix...), prefix, frame)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// Stats returns the receiver's counters.
func (r *Receiver) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// learn opens the first frame of a KID not seen yet, and keeps its key only if the frame is authentic.
func (r *Receiver) learn(dst []byte, kid uint64, prefix, frame []byte) ([]byte, error) {
	secret := r.secrets[Generation(kid)]
	if secret == nil || len(r.learned) >= MaxKIDs || len(frame) < 1+r.suite.TagSize() {
		return dst, sframe.ErrAuth
	}
	base, err := SenderKey(r.suite, secret, kid)
	if err != nil {
		return dst, sframe.ErrAuth
	}
	err = r.ring.AddKey(kid, base)
	base.Wipe()
	if err != nil {
		return dst, sframe.ErrAuth
	}
	out, err := r.ring.Open(append(dst, prefix...), prefix, frame)
	if err != nil {
		r.ring.RemoveKey(kid)
		return dst, sframe.ErrAuth
	}
	r.learned[kid] = struct{}{}
	return out, nil
}

// Wipe removes and wipes every secret and key.
func (r *Receiver) Wipe() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for gen, secret := range r.secrets {
		secret.Wipe()
		delete(r.secrets, gen)
	}
	clear(r.learned)
	r.ring.Wipe()
}

// String describes the receiver without key material.
func (r *Receiver) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("media.Receiver{suite: %v, generations: %d, senders: %d}", r.suite, len(r.secrets), len(r.learned))
}
