// Package media implements Stoa's media profile of SFrame (RFC 9605): how every member of a channel derives each
// sender's keys from one channel secret, and which leading codec bytes stay in the clear. docs/e2ee.md specifies
// the profile byte by byte, with a worked example; this package and the browser SDK produce identical frames.
//
//   - Channel secret: SecretSize random bytes, handed to every member by the customer's application, never seen
//     by Stoa. A new secret starts a new key generation (0-255).
//   - KID: generation in the top 8 bits, 56 random bits below (NewKID), so senders need no coordination.
//   - Base key of a KID (SenderKey): HKDF-SHA256 (RFC 5869) with an empty salt, the channel secret as input keying
//     material, info "stoa e2ee sender" || be64(KID), and the suite's Nk as output length. A receiver thus derives
//     any sender's key from the KID in its frames alone.
//   - Frames: counters start at 0 per KID. A few leading codec bytes stay in the clear for browsers'
//     depacketizers and are authenticated as SFrame metadata: wire = clear_prefix || header || ciphertext || tag,
//     with aad = header || clear_prefix (see Codec).
package media

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/stoa-rtc/stoa/sframe"
)

// SecretSize is the length in bytes of a channel secret.
const SecretSize = 32

// senderKeyLabel starts the HKDF info of a sender's base key; be64(KID) follows.
const senderKeyLabel = "stoa e2ee sender"

// ErrShortFrame is returned by Sender.Seal for a codec frame shorter than its clear prefix (an empty Opus frame,
// a VP8 key frame under 10 bytes or a VP8 delta frame under 3 bytes). Such a frame is not valid for its codec
// and is not sent: if it were kept whole in the clear, a receiver could not tell where the SFrame header begins.
var ErrShortFrame = errors.New("sframe: media frame shorter than its codec's clear prefix")

var errSecretSize = fmt.Errorf("sframe: channel secret must be %d bytes", SecretSize)

// GenerateSecret returns a new random channel secret.
func GenerateSecret() *sframe.Key {
	b := make([]byte, SecretSize)
	rand.Read(b) // never fails: since Go 1.24 crypto/rand crashes the program rather than return an error
	k := sframe.NewKey(b)
	clear(b)
	return k
}

// NewKID returns a random KID of key generation gen: gen in the top 8 bits, 56 bits from crypto/rand below.
func NewKID(gen uint8) uint64 {
	var b [8]byte
	rand.Read(b[1:]) // never fails, see GenerateSecret
	b[0] = gen
	return binary.BigEndian.Uint64(b[:])
}

// Generation returns the key generation of kid: its top 8 bits.
func Generation(kid uint64) uint8 {
	return uint8(kid >> 56)
}

// SenderKey derives the SFrame base key of kid from the channel secret:
//
//	base_key = HKDF-SHA256(salt = "", IKM = secret, info = "stoa e2ee sender" || be64(kid), L = Nk)
//
// where Nk is suite.KeySize(): 16 bytes for AES_128_GCM_SHA256_128, 32 for AES_256_GCM_SHA512_128, 48 for the
// AES-CTR-HMAC suites. Like RFC 9605 §5.2 for MLS, the base key has the length of the suite's key; its strength
// then matches the cipher, and the SFrame key schedule binds it to the KID and suite.
func SenderKey(suite sframe.Suite, secret *sframe.Key, kid uint64) (*sframe.Key, error) {
	if !suite.Supported() {
		return nil, fmt.Errorf("%w: %v", sframe.ErrUnsupportedSuite, suite)
	}
	if secret.Len() != SecretSize {
		return nil, errSecretSize
	}
	info := binary.BigEndian.AppendUint64([]byte(senderKeyLabel), kid)
	return secret.Derive(info, suite.KeySize())
}

// Codec says which leading bytes of a frame stay in the clear. The zero value, Data, keeps none.
type Codec uint8

const (
	// Data is a data-channel message: everything is encrypted.
	Data Codec = iota
	// Opus keeps the TOC byte in the clear: 1 byte.
	Opus
	// VP8 keeps the payload header in the clear: 10 bytes on key frames (3-byte frame tag and 7-byte key frame
	// header), 3 on delta frames. A frame is a key frame when bit 0 of its first byte (the inverse key frame flag P
	// of RFC 6386 §9.1) is 0.
	VP8
)

// String returns the codec name.
func (c Codec) String() string {
	switch c {
	case Data:
		return "data"
	case Opus:
		return "opus"
	case VP8:
		return "vp8"
	}
	return fmt.Sprintf("Codec(%d)", uint8(c))
}

// ClearPrefixLen returns how many leading bytes of frame stay in the clear under c. It reads only the first byte,
// which is itself in the clear, so a sender computes it on the frame and a receiver on the wire frame with the
// same result. ok is false when frame is shorter than the prefix.
func (c Codec) ClearPrefixLen(frame []byte) (n int, ok bool) {
	switch c {
	case Data:
		return 0, true
	case Opus:
		n = 1
	case VP8:
		n = 3
		if len(frame) > 0 && frame[0]&0x01 == 0 {
			n = 10
		}
	default:
		return 0, false
	}
	return n, len(frame) >= n
}
