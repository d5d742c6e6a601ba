package sframe

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"testing"
)

// TestCTRKeyStream checks the GCM-based keystream of ctrHMAC against crypto/cipher's own CTR mode for lengths
// around every block boundary that matters (the two leading blocks, then GCM's part).
func TestCTRKeyStream(t *testing.T) {
	key := make([]byte, 48)
	rand.Read(key)
	c, err := newCTRHMAC(key, 10)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(key[:16])
	lengths := []int{}
	for n := range 100 {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 255, 256, 257, 1200, 4099, 65536+7)
	for _, n := range lengths {
		nonce := make([]byte, nonceSize)
		rand.Read(nonce)
		if n%3 == 0 {
			copy(nonce[8:], []byte{0xff, 0xff, 0xff, 0xff}) // counter words that a careless increment would carry
		}
		src := make([]byte, n)
		rand.Read(src)
		want := make([]byte, n)
		cipher.NewCTR(block, append(bytes.Clone(nonce), 0, 0, 0, 0)).XORKeyStream(want, src)
		got := make([]byte, n)
		c.xorKeyStream(got, src, nonce)
		if !bytes.Equal(got, want) {
			t.Fatalf("length %d: keystream differs from cipher.NewCTR", n)
		}
		// In place, as cipher.AEAD allows (dst == src).
		inPlace := bytes.Clone(src)
		c.xorKeyStream(inPlace, inPlace, nonce)
		if !bytes.Equal(inPlace, want) {
			t.Fatalf("length %d: in-place keystream differs", n)
		}
	}
}

func TestCTRHMACSealOpen(t *testing.T) {
	for _, suite := range []Suite{AES_128_CTR_HMAC_SHA256_80, AES_128_CTR_HMAC_SHA256_64, AES_128_CTR_HMAC_SHA256_32} {
		key := make([]byte, 48)
		rand.Read(key)
		aead, err := suite.newAEAD(key)
		if err != nil {
			t.Fatal(err)
		}
		if aead.Overhead() != suite.TagSize() || aead.NonceSize() != 12 {
			t.Errorf("%v: overhead %d nonce %d", suite, aead.Overhead(), aead.NonceSize())
		}
		nonce, aad, pt := make([]byte, 12), []byte("aad"), []byte("some plaintext longer than two AES blocks")
		ct := aead.Seal([]byte("prefix"), nonce, pt, aad)
		if !bytes.HasPrefix(ct, []byte("prefix")) || len(ct) != 6+len(pt)+suite.TagSize() {
			t.Fatalf("%v: Seal did not append", suite)
		}
		ct = ct[6:]
		if got, err := aead.Open(nil, nonce, ct, aad); err != nil || !bytes.Equal(got, pt) {
			t.Errorf("%v: Open = %q, %v", suite, got, err)
		}
		// In place: dst = ciphertext[:0].
		buf := bytes.Clone(ct)
		if got, err := aead.Open(buf[:0], nonce, buf, aad); err != nil || !bytes.Equal(got, pt) {
			t.Errorf("%v: in-place Open = %q, %v", suite, got, err)
		}
		for _, bad := range [][]byte{ct[:len(ct)-1], ct[:suite.TagSize()-1], nil} {
			if _, err := aead.Open(nil, nonce, bad, aad); err != ErrAuth {
				t.Errorf("%v: Open of %d bytes: %v, want ErrAuth", suite, len(bad), err)
			}
		}
		if _, err := aead.Open(nil, nonce, ct, []byte("other")); err != ErrAuth {
			t.Errorf("%v: Open with other aad: %v", suite, err)
		}
	}
	if _, err := AES_128_CTR_HMAC_SHA256_80.newAEAD(make([]byte, 47)); err == nil {
		t.Error("47-byte key accepted")
	}
}
