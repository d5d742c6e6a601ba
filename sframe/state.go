package sframe

import (
	"crypto/cipher"
	"encoding/binary"
	"slices"
)

// keyState is what sealing and opening frames under one (suite, KID, base key) needs, computed once: the AEAD keyed
// with sframe_key, sframe_salt, and scratch space for the nonce and the AAD so that no frame allocates. It belongs
// to one goroutine at a time.
type keyState struct {
	aead  cipher.AEAD
	salt  [nonceSize]byte
	nonce [nonceSize]byte // scratch
	aad   []byte          // scratch: header || metadata
}

func newKeyState(s Suite, kid uint64, baseKey *Key) (*keyState, error) {
	ks, err := deriveSchedule(s, kid, baseKey)
	if err != nil {
		return nil, err
	}
	defer ks.wipe()
	aead, err := s.newAEAD(ks.key)
	if err != nil {
		return nil, err
	}
	k := &keyState{aead: aead}
	copy(k.salt[:], ks.salt)
	return k, nil
}

// setNonce computes nonce = sframe_salt XOR be(CTR, Nn) (§4.4.3). CTR is 64 bits, so only the last 8 bytes of the
// salt change.
func (k *keyState) setNonce(ctr uint64) []byte {
	k.nonce = k.salt
	tail := k.nonce[nonceSize-8:]
	binary.BigEndian.PutUint64(tail, binary.BigEndian.Uint64(tail)^ctr)
	return k.nonce[:]
}

// setAAD computes aad = header || metadata (§4.4.3) in the scratch buffer.
func (k *keyState) setAAD(header, metadata []byte) []byte {
	k.aad = append(append(k.aad[:0], header...), metadata...)
	return k.aad
}

// seal appends header || AEAD.Encrypt(sframe_key, nonce, aad, plaintext) to dst.
func (k *keyState) seal(dst []byte, kid, ctr uint64, metadata, plaintext []byte) ([]byte, error) {
	if uint64(len(plaintext)) > maxPlaintext {
		return dst, errFrameTooLarge
	}
	// Grow once for the whole frame, so that a short dst costs one allocation rather than two.
	out := slices.Grow(dst, HeaderLen(kid, ctr)+len(plaintext)+k.aead.Overhead())
	start := len(out)
	out = AppendHeader(out, kid, ctr)
	aad := k.setAAD(out[start:], metadata)
	return k.aead.Seal(out, k.setNonce(ctr), plaintext, aad), nil
}

// open authenticates and decrypts the ciphertext ct of a frame whose header (already parsed) is header, and appends
// the plaintext to dst. Any failure is ErrAuth.
func (k *keyState) open(dst, header []byte, ctr uint64, metadata, ct []byte) ([]byte, error) {
	aad := k.setAAD(header, metadata)
	out, err := k.aead.Open(dst, k.setNonce(ctr), ct, aad)
	if err != nil {
		return dst, ErrAuth
	}
	return out, nil
}

// wipe erases the salt and the scratch buffers and drops the AEAD. AES key schedules live inside crypto/aes, which
// offers no way to erase them; they become garbage once unreferenced.
func (k *keyState) wipe() {
	clear(k.salt[:])
	clear(k.nonce[:])
	clear(k.aad[:cap(k.aad)])
	k.aad = nil
	if c, ok := k.aead.(*ctrHMAC); ok {
		c.wipe()
	}
	k.aead = nil
}
