package sframe

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
)

// Key holds secret key material: an SFrame base key, or a secret keys are derived from. Keys go in and never come
// out: no method returns the bytes, a Key prints as "REDACTED" with every fmt verb and in log/slog, compares in
// constant time, and can be wiped. Use *Key, as the constructors return; a *Key nested in another value prints as
// an address only.
type Key struct {
	b []byte
}

const redacted = "REDACTED"

// NewKey returns a Key holding a copy of b. The caller should wipe its own copy (clear(b)) when done with it.
func NewKey(b []byte) *Key {
	return &Key{b: bytes.Clone(b)}
}

// Clone returns a Key holding a copy of k's bytes, which outlives a Wipe of k.
func (k *Key) Clone() *Key {
	return NewKey(k.bytes())
}

// Len returns the length of the key in bytes; 0 for a nil or wiped key.
func (k *Key) Len() int {
	if k == nil {
		return 0
	}
	return len(k.b)
}

// Equal reports whether k and o hold the same bytes, in time that depends only on their lengths.
func (k *Key) Equal(o *Key) bool {
	return subtle.ConstantTimeCompare(k.bytes(), o.bytes()) == 1
}

// Wipe overwrites the key with zeros and empties it; a wiped key has length 0 and is rejected where a key is
// needed. It is safe to call more than once.
func (k *Key) Wipe() {
	if k == nil {
		return
	}
	clear(k.b)
	k.b = nil
}

// Derive returns HKDF-SHA256 (RFC 5869) of k: Extract with an empty salt and k as input keying material, then
// Expand with info to length bytes.
func (k *Key) Derive(info []byte, length int) (*Key, error) {
	if k.Len() == 0 {
		return nil, errEmptyKey
	}
	b, err := hkdf.Key(sha256.New, k.b, nil, string(info), length)
	if err != nil {
		return nil, fmt.Errorf("sframe: deriving key: %w", err)
	}
	return &Key{b: b}, nil
}

func (k *Key) bytes() []byte {
	if k == nil {
		return nil
	}
	return k.b
}

// String returns "REDACTED".
func (Key) String() string { return redacted }

// GoString returns "REDACTED", for %#v.
func (Key) GoString() string { return redacted }

// Format prints "REDACTED" for every verb, so that %x or %d cannot reveal the bytes either.
func (Key) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue makes log/slog print "REDACTED".
func (Key) LogValue() slog.Value { return slog.StringValue(redacted) }

// keySchedule holds the values of RFC 9605 §4.4.2 for one (suite, KID, base key):
//
//	sframe_secret = HKDF-Extract(salt = "", IKM = base_key)
//	sframe_key    = HKDF-Expand(sframe_secret, "SFrame 1.0 Secret key "  || be64(KID) || be16(suite), Nk)
//	sframe_salt   = HKDF-Expand(sframe_secret, "SFrame 1.0 Secret salt " || be64(KID) || be16(suite), Nn)
//
// with the suite's hash.
type keySchedule struct {
	secret, key, salt []byte
}

const (
	keyLabelPrefix  = "SFrame 1.0 Secret key "
	saltLabelPrefix = "SFrame 1.0 Secret salt "
)

// scheduleLabel returns prefix || be64(kid) || be16(suite), the info of the §4.4.2 expansions.
func scheduleLabel(prefix string, kid uint64, s Suite) []byte {
	b := append([]byte(prefix), make([]byte, 10)...)
	binary.BigEndian.PutUint64(b[len(prefix):], kid)
	binary.BigEndian.PutUint16(b[len(prefix)+8:], uint16(s))
	return b
}

func deriveSchedule(s Suite, kid uint64, baseKey *Key) (keySchedule, error) {
	p, err := s.params()
	if err != nil {
		return keySchedule{}, err
	}
	if baseKey.Len() == 0 {
		return keySchedule{}, errEmptyKey
	}
	var ks keySchedule
	if ks.secret, err = hkdf.Extract(p.hash, baseKey.b, nil); err != nil {
		return keySchedule{}, fmt.Errorf("sframe: key schedule: %w", err)
	}
	if ks.key, err = hkdf.Expand(p.hash, ks.secret, string(scheduleLabel(keyLabelPrefix, kid, s)), p.nk); err != nil {
		ks.wipe()
		return keySchedule{}, fmt.Errorf("sframe: key schedule: %w", err)
	}
	if ks.salt, err = hkdf.Expand(p.hash, ks.secret, string(scheduleLabel(saltLabelPrefix, kid, s)), nonceSize); err != nil {
		ks.wipe()
		return keySchedule{}, fmt.Errorf("sframe: key schedule: %w", err)
	}
	return ks, nil
}

func (ks *keySchedule) wipe() {
	clear(ks.secret)
	clear(ks.key)
	clear(ks.salt)
}
