// Package ticket implements edge tickets: the dispatcher's signed statement that a client (app, channel, uid) was
// scheduled onto exactly these edges until a time. An edge admits a join only with a ticket that names it, so a
// client cannot pick edges it was not given, and the edges a dispatcher hides stay hidden.
//
// A ticket is base64url(payload) "." base64url(signature), without padding, where payload is JSON and the
// signature is Ed25519 over the payload bytes by the dispatcher whose id is in "kid". Each dispatcher has its own
// key pair and publishes its public key to the cluster; edges keep the keys they know while the bus is down.
package ticket

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// MaxLength bounds a ticket; longer ones are refused before decoding.
const MaxLength = 4096

// Ticket is what a dispatcher grants.
type Ticket struct {
	// KID names the dispatcher key that signed the ticket.
	KID     string   `json:"kid"`
	AppID   string   `json:"app_id"`
	Channel string   `json:"channel"`
	UID     string   `json:"uid"`
	Region  string   `json:"region"`
	Edges   []string `json:"edges"`
	// IssuedAt and Expires are Unix seconds.
	IssuedAt int64 `json:"iat"`
	Expires  int64 `json:"exp"`
}

// Errors.
var (
	ErrMalformed  = errors.New("ticket: malformed")
	ErrSignature  = errors.New("ticket: bad signature")
	ErrUnknownKey = errors.New("ticket: unknown dispatcher key")
	ErrExpired    = errors.New("ticket: expired")
	ErrNotForUs   = errors.New("ticket: does not name this edge")
	ErrMismatch   = errors.New("ticket: issued for another app, channel or uid")
)

var b64 = base64.RawURLEncoding

// Sign encodes and signs t with key.
func Sign(t Ticket, key ed25519.PrivateKey) (string, error) {
	payload, err := json.Marshal(t)
	if err != nil {
		return "", err
	}
	s := b64.EncodeToString(payload) + "." + b64.EncodeToString(ed25519.Sign(key, payload))
	if len(s) > MaxLength {
		return "", fmt.Errorf("ticket: %d bytes, more than %d", len(s), MaxLength)
	}
	return s, nil
}

// Parse decodes a ticket without verifying it; it returns the payload bytes that the signature covers.
func Parse(s string) (Ticket, []byte, []byte, error) {
	var t Ticket
	if len(s) > MaxLength {
		return t, nil, nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxLength)
	}
	p64, s64, ok := strings.Cut(s, ".")
	if !ok {
		return t, nil, nil, fmt.Errorf("%w: no signature", ErrMalformed)
	}
	payload, err := b64.DecodeString(p64)
	if err != nil {
		return t, nil, nil, fmt.Errorf("%w: bad base64", ErrMalformed)
	}
	sig, err := b64.DecodeString(s64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return t, nil, nil, fmt.Errorf("%w: bad signature encoding", ErrMalformed)
	}
	d := json.NewDecoder(bytes.NewReader(payload))
	d.DisallowUnknownFields()
	if err := d.Decode(&t); err != nil || d.More() {
		return t, nil, nil, fmt.Errorf("%w: bad payload", ErrMalformed)
	}
	if t.KID == "" || len(t.Edges) == 0 {
		return t, nil, nil, fmt.Errorf("%w: missing kid or edges", ErrMalformed)
	}
	return t, payload, sig, nil
}

// Keys is the set of dispatcher public keys an edge trusts. It is safe for concurrent use; the zero value is
// empty and ready.
type Keys struct {
	// Fetch, if set, is asked for a key the set does not hold: a dispatcher hands out tickets as soon as its key is
	// written to the cluster, possibly before the edge has heard of it. It returns nil when there is no such key.
	// Its answer is used once, not added to the set. Set it before the first Verify.
	Fetch func(kid string) ed25519.PublicKey

	mu   sync.RWMutex
	keys map[string]ed25519.PublicKey
}

// Set adds or replaces the key of dispatcher kid; a nil key removes it.
func (k *Keys) Set(kid string, pub ed25519.PublicKey) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = map[string]ed25519.PublicKey{}
	}
	if pub == nil {
		delete(k.keys, kid)
		return
	}
	k.keys[kid] = slices.Clone(pub)
}

func (k *Keys) get(kid string) ed25519.PublicKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keys[kid]
}

// Want is what an edge checks a ticket against.
type Want struct {
	Edge                string
	AppID, Channel, UID string
	Now                 time.Time
}

// Verify parses s and checks its signature, expiry, that it names the edge, and that it was issued for the app,
// channel and uid of the join. It returns the ticket so that the edge can tell the client its backups.
func (k *Keys) Verify(s string, w Want) (Ticket, error) {
	t, payload, sig, err := Parse(s)
	if err != nil {
		return t, err
	}
	pub := k.get(t.KID)
	if pub == nil && k.Fetch != nil {
		pub = k.Fetch(t.KID)
	}
	if pub == nil {
		return t, ErrUnknownKey
	}
	if !ed25519.Verify(pub, payload, sig) {
		return t, ErrSignature
	}
	if w.Now.Unix() >= t.Expires {
		return t, ErrExpired
	}
	if t.AppID != w.AppID || t.Channel != w.Channel || t.UID != w.UID {
		return t, ErrMismatch
	}
	if !slices.Contains(t.Edges, w.Edge) {
		return t, ErrNotForUs
	}
	return t, nil
}
