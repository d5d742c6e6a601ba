package sframe

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

// FuzzHeaderRoundTrip: ParseHeader(AppendHeader(kid, ctr)) gives back kid and ctr, and the header has the minimal
// length of §4.3.
func FuzzHeaderRoundTrip(f *testing.F) {
	for _, v := range boundaryValues() {
		f.Add(v, v)
		f.Add(v, uint64(0))
	}
	f.Fuzz(func(t *testing.T, kid, ctr uint64) {
		h := AppendHeader(nil, kid, ctr)
		if len(h) != 1+minimalLen(kid)+minimalLen(ctr) || len(h) != HeaderLen(kid, ctr) {
			t.Fatalf("header %x for kid %d ctr %d is not minimal", h, kid, ctr)
		}
		gotKID, gotCTR, n, err := ParseHeader(h)
		if err != nil || gotKID != kid || gotCTR != ctr || n != len(h) {
			t.Fatalf("ParseHeader(%x) = %d, %d, %d, %v; want %d, %d", h, gotKID, gotCTR, n, err, kid, ctr)
		}
	})
}

// FuzzParseHeader: ParseHeader never panics; it fails only with ErrTruncatedHeader; re-encoding what it decoded
// gives back the same bytes exactly when those bytes were a minimal header.
func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{"", "\x00", "\x08\xff", "\x99\x01\x00\x01\x00", "\x80\x05", "\xff", "\x88\x00\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		kid, ctr, n, err := ParseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrTruncatedHeader) || n != 0 {
				t.Fatalf("ParseHeader(%x): n %d, err %v", b, n, err)
			}
			return
		}
		if n < 1 || n > MaxHeaderLen || n > len(b) {
			t.Fatalf("ParseHeader(%x): length %d", b, n)
		}
		re := AppendHeader(nil, kid, ctr)
		if bytes.Equal(re, b[:n]) != isMinimal(b[:n]) {
			t.Fatalf("header %x (kid %d ctr %d) re-encodes as %x; minimal: %v", b[:n], kid, ctr, re, isMinimal(b[:n]))
		}
	})
}

// isMinimal reports whether a well-formed header uses the encoding §4.3 requires of senders: an extended field
// holds a value of at least 8 with no leading zero byte.
func isMinimal(h []byte) bool {
	fields := []byte{h[0] >> 4, h[0] & 0xf}
	rest := h[1:]
	for _, nb := range fields {
		if nb&0x8 == 0 {
			continue
		}
		n := int(nb&0x7) + 1
		ext := rest[:n]
		rest = rest[n:]
		if ext[0] == 0 || (n == 1 && ext[0] < 8) {
			return false
		}
	}
	return true
}

// FuzzOpen: Open of arbitrary bytes never panics, never succeeds on something that was not sealed, and leaves dst
// unchanged when it fails.
func FuzzOpen(f *testing.F) {
	s, _ := NewSender(AES_128_CTR_HMAC_SHA256_32, 5, testKey(5))
	s2, _ := NewSender(AES_128_CTR_HMAC_SHA256_32, 300, testKey(6))
	for _, sender := range []*Sender{s, s2} {
		frame, _ := sender.Seal(nil, []byte("md"), []byte("plaintext"))
		f.Add(frame, []byte("md"))
		f.Add(frame[:len(frame)-1], []byte("md"))
	}
	f.Add([]byte{}, []byte{})
	f.Add([]byte{0xff}, []byte{})
	f.Fuzz(func(t *testing.T, frame, md []byte) {
		r, _ := NewReceiver(AES_128_CTR_HMAC_SHA256_32) // a 4-byte tag, the easiest one to stumble on
		r.AddKey(5, testKey(5))
		r.AddKey(300, testKey(6))
		dst := []byte("dst")
		out, err := r.Open(dst, md, frame)
		if err != nil {
			if !errors.Is(err, ErrAuth) || !bytes.Equal(out, dst) {
				t.Fatalf("Open: %x, %v", out, err)
			}
			return
		}
		if !bytes.HasPrefix(out, dst) {
			t.Fatal("Open did not append to dst")
		}
	})
}

// FuzzSealOpen: whatever the suite, KID, counter, metadata and plaintext, Open(Seal(x)) == x, and a second Open is
// a replay.
func FuzzSealOpen(f *testing.F) {
	f.Add(uint8(4), uint64(0), uint64(0), []byte{}, []byte{})
	f.Add(uint8(1), uint64(math.MaxUint64), uint64(math.MaxUint64), []byte("meta"), bytes.Repeat([]byte("x"), 100))
	f.Add(uint8(5), uint64(291), uint64(17767), []byte{1}, bytes.Repeat([]byte("y"), 1500))
	f.Fuzz(func(t *testing.T, suiteByte uint8, kid, ctr uint64, md, pt []byte) {
		suite := allSuites[int(suiteByte)%len(allSuites)]
		s, err := NewSender(suite, kid, testKey(byte(kid)))
		if err != nil {
			t.Fatal(err)
		}
		s.next = ctr
		frame, err := s.Seal(nil, md, pt)
		if err != nil {
			t.Fatal(err)
		}
		if len(frame) != HeaderLen(kid, ctr)+len(pt)+suite.TagSize() {
			t.Fatalf("frame length %d", len(frame))
		}
		r, _ := NewReceiver(suite)
		r.AddKey(kid, testKey(byte(kid)))
		got, err := r.Open(nil, md, frame)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Open = %x, %v; want %x", got, err, pt)
		}
		if _, err := r.Open(nil, md, frame); err != ErrReplay {
			t.Fatalf("second Open: %v", err)
		}
	})
}
