package sframe

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"hash"
)

// ctrHMAC is the AEAD of the AES_128_CTR_HMAC_SHA256_* suites (RFC 9605 §4.5.1). The 48-byte key splits into
// enc_key = key[:16] (AES-128-CTR, initial counter block nonce || 0x00000000) and auth_key = key[16:]
// (HMAC-SHA256). The output is ct || tag with
//
//	tag = HMAC(auth_key, be64(len(aad)) || be64(len(ct)) || be64(Nt) || nonce || aad || ct)[:Nt].
//
// It keeps every buffer it needs, so Seal and Open allocate nothing once warmed up; a ctrHMAC is therefore not
// safe for concurrent use.
type ctrHMAC struct {
	block cipher.Block // AES with enc_key: counter blocks 0 and 1
	gcm   cipher.AEAD  // AES-GCM with enc_key, used only as an allocation-free CTR keystream (see xorKeyStream)
	mac   hash.Hash    // HMAC-SHA256 with auth_key, Reset for every frame
	nt    int

	counters  [2 * aes.BlockSize]byte // counter blocks 0 and 1, then their keystream
	lengths   [24]byte
	sum       [sha256.Size]byte
	keystream []byte // GCM output for counter blocks 2 onwards; grows to the largest frame
}

var errCTRHMACKey = errors.New("sframe: AES-CTR-HMAC key must be 48 bytes")

const ctrHMACEncKeySize = 16

func newCTRHMAC(key []byte, nt int) (*ctrHMAC, error) {
	if len(key) != ctrHMACEncKeySize+sha256.Size {
		return nil, errCTRHMACKey
	}
	encKey, authKey := key[:ctrHMACEncKeySize], key[ctrHMACEncKeySize:]
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &ctrHMAC{block: block, gcm: gcm, mac: hmac.New(sha256.New, authKey), nt: nt}, nil
}

func (c *ctrHMAC) NonceSize() int { return nonceSize }
func (c *ctrHMAC) Overhead() int  { return c.nt }

// Seal appends ct || tag to dst. Like every cipher.AEAD, dst may be plaintext[:0] but must not otherwise overlap it.
func (c *ctrHMAC) Seal(dst, nonce, plaintext, aad []byte) []byte {
	if len(nonce) != nonceSize {
		panic("sframe: bad nonce length")
	}
	if uint64(len(plaintext)) > maxPlaintext {
		panic("sframe: plaintext too large")
	}
	ret, out := sliceForAppend(dst, len(plaintext)+c.nt)
	ct := out[:len(plaintext)]
	c.xorKeyStream(ct, plaintext, nonce)
	c.tag(out[len(plaintext):], nonce, aad, ct)
	return ret
}

// Open checks the tag in constant time before decrypting anything, and appends the plaintext to dst.
func (c *ctrHMAC) Open(dst, nonce, ciphertext, aad []byte) ([]byte, error) {
	if len(nonce) != nonceSize {
		panic("sframe: bad nonce length")
	}
	if len(ciphertext) < c.nt || uint64(len(ciphertext)-c.nt) > maxPlaintext {
		return nil, ErrAuth
	}
	ct, tag := ciphertext[:len(ciphertext)-c.nt], ciphertext[len(ciphertext)-c.nt:]
	var want [sha256.Size]byte
	c.tag(want[:c.nt], nonce, aad, ct)
	if subtle.ConstantTimeCompare(want[:c.nt], tag) != 1 {
		return nil, ErrAuth
	}
	ret, out := sliceForAppend(dst, len(ct))
	c.xorKeyStream(out, ct, nonce)
	return ret, nil
}

// tag writes the truncated tag of §4.5.1 into dst (len(dst) == Nt).
func (c *ctrHMAC) tag(dst, nonce, aad, ct []byte) {
	binary.BigEndian.PutUint64(c.lengths[0:], uint64(len(aad)))
	binary.BigEndian.PutUint64(c.lengths[8:], uint64(len(ct)))
	binary.BigEndian.PutUint64(c.lengths[16:], uint64(c.nt))
	c.mac.Reset()
	c.mac.Write(c.lengths[:])
	c.mac.Write(nonce)
	c.mac.Write(aad)
	c.mac.Write(ct)
	copy(dst, c.mac.Sum(c.sum[:0]))
}

// xorKeyStream sets dst = src XOR AES-CTR keystream, counter blocks nonce || be32(0), nonce || be32(1), ...
//
// cipher.NewCTR would allocate a stream (and a 512-byte buffer) for every frame, and calling the block cipher once
// per 16 bytes is four times slower. AES-GCM with a 12-byte IV encrypts with exactly this keystream from counter
// block nonce || be32(2) onwards (NIST SP 800-38D §7.1: J0 = IV || 0^31 || 1, GCTR starts at inc32(J0)), so blocks
// 0 and 1 come from the block cipher and the rest from GCM, whose own tag is discarded. GCM increments only the
// low 32 bits of the counter block; maxPlaintext keeps every frame below 2^32 blocks, where that equals the
// 128-bit increment of plain CTR.
func (c *ctrHMAC) xorKeyStream(dst, src, nonce []byte) {
	head := min(len(src), len(c.counters))
	for i := 0; i < head; i += aes.BlockSize {
		block := c.counters[i : i+aes.BlockSize]
		copy(block, nonce)
		binary.BigEndian.PutUint32(block[nonceSize:], uint32(i/aes.BlockSize))
		c.block.Encrypt(block, block)
	}
	subtle.XORBytes(dst[:head], src[:head], c.counters[:head])
	if len(src) > head {
		c.keystream = c.gcm.Seal(c.keystream[:0], nonce, src[head:], nil)
		copy(dst[head:], c.keystream[:len(src)-head])
	}
}

// sliceForAppend extends in by n bytes, reallocating if needed, and returns the whole slice and the new tail
// (the same helper as crypto/cipher's).
func sliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	tail = head[len(in):]
	return
}

// wipe zeroes the scratch buffers, which hold the last frame's keystream and plaintext. The AES and HMAC states
// are inside crypto/aes and crypto/hmac, which offer no way to erase them; they become garbage once unreferenced.
func (c *ctrHMAC) wipe() {
	clear(c.counters[:])
	clear(c.sum[:])
	clear(c.keystream[:cap(c.keystream)])
	c.keystream = nil
}
