package sframe

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
)

// Suite is an SFrame cipher suite identifier (RFC 9605 §4.5, IANA "SFrame Cipher Suites").
type Suite uint16

// The cipher suites of RFC 9605 §4.5. The names follow the RFC, as crypto/tls does for TLS suites.
const (
	AES_128_CTR_HMAC_SHA256_80 Suite = 0x0001
	AES_128_CTR_HMAC_SHA256_64 Suite = 0x0002
	AES_128_CTR_HMAC_SHA256_32 Suite = 0x0003
	AES_128_GCM_SHA256_128     Suite = 0x0004
	AES_256_GCM_SHA512_128     Suite = 0x0005

	// DefaultSuite is the suite Stoa uses unless configured otherwise.
	DefaultSuite = AES_128_GCM_SHA256_128
)

// nonceSize is Nn, the same (12 bytes) for every suite of §4.5.
const nonceSize = 12

// maxPlaintext is the largest plaintext of one frame: the limit of AES-GCM (NIST SP 800-38D, 2^32-2 blocks), which
// also keeps this package's AES-CTR from ever wrapping the low 32 bits of its counter block (see ctrHMAC).
const maxPlaintext = (1<<32 - 2) * aes.BlockSize

type suiteParams struct {
	name    string
	hash    func() hash.Hash
	nk, nt  int // key and tag sizes in bytes
	ctrHMAC bool
}

// suites is indexed by Suite; index 0 is the reserved identifier.
var suites = [...]suiteParams{
	AES_128_CTR_HMAC_SHA256_80: {"AES_128_CTR_HMAC_SHA256_80", sha256.New, 48, 10, true},
	AES_128_CTR_HMAC_SHA256_64: {"AES_128_CTR_HMAC_SHA256_64", sha256.New, 48, 8, true},
	AES_128_CTR_HMAC_SHA256_32: {"AES_128_CTR_HMAC_SHA256_32", sha256.New, 48, 4, true},
	AES_128_GCM_SHA256_128:     {"AES_128_GCM_SHA256_128", sha256.New, 16, 16, false},
	AES_256_GCM_SHA512_128:     {"AES_256_GCM_SHA512_128", sha512.New, 32, 16, false},
}

func (s Suite) params() (*suiteParams, error) {
	if s == 0 || int(s) >= len(suites) {
		return nil, fmt.Errorf("%w: %#04x", ErrUnsupportedSuite, uint16(s))
	}
	return &suites[s], nil
}

// Supported reports whether this package implements s.
func (s Suite) Supported() bool {
	_, err := s.params()
	return err == nil
}

// String returns the RFC name of s, or its number for an unknown suite.
func (s Suite) String() string {
	if p, err := s.params(); err == nil {
		return p.name
	}
	return fmt.Sprintf("Suite(%#04x)", uint16(s))
}

// KeySize returns Nk, the length in bytes of s's sframe_key (0 for an unsupported suite).
func (s Suite) KeySize() int {
	if p, err := s.params(); err == nil {
		return p.nk
	}
	return 0
}

// TagSize returns Nt, the length in bytes of s's authentication tag: the per-frame overhead besides the header
// (0 for an unsupported suite).
func (s Suite) TagSize() int {
	if p, err := s.params(); err == nil {
		return p.nt
	}
	return 0
}

// NonceSize returns Nn, the length in bytes of s's nonce and sframe_salt: 12 for every supported suite.
func (s Suite) NonceSize() int {
	if s.Supported() {
		return nonceSize
	}
	return 0
}

// newAEAD returns s's AEAD keyed with key (an sframe_key of KeySize bytes).
func (s Suite) newAEAD(key []byte) (cipher.AEAD, error) {
	p, err := s.params()
	if err != nil {
		return nil, err
	}
	if len(key) != p.nk {
		return nil, fmt.Errorf("sframe: %v key must be %d bytes, got %d", s, p.nk, len(key))
	}
	if p.ctrHMAC {
		return newCTRHMAC(key, p.nt)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
