package sframe

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"testing"
)

// boundaryValues are the KID and CTR values where the header encoding changes length, and their neighbours.
func boundaryValues() []uint64 {
	vs := []uint64{0, 1, 6, 7, 8, 9}
	for bits := 8; bits < 64; bits += 8 {
		vs = append(vs, 1<<bits-1, 1<<bits, 1<<bits+1)
	}
	return append(vs, math.MaxUint64-1, math.MaxUint64)
}

func TestHeaderExamples(t *testing.T) {
	for _, tc := range []struct {
		kid, ctr uint64
		hex      string
	}{
		{0, 0, "00"},
		{0, 7, "07"},
		{7, 0, "70"},
		{0, 8, "0808"},
		{0, 0xff, "08ff"},
		{0, 0x100, "090100"},
		{1, 0, "10"},
		{0xff, 0, "80ff"},
		{0x100, 0x100, "9901000100"},
		{0x123, 0x4567, "99 0123 4567"},
		{0x0123456789abcdef, 0, "f0 0123456789abcdef"}, // docs/e2ee.md
		{0x0123456789abcdef, 0x100, "f9 0123456789abcdef 0100"},
		{math.MaxUint64, math.MaxUint64, "ff" + "ffffffffffffffff" + "ffffffffffffffff"},
	} {
		want, _ := hex.DecodeString(stripSpaces(tc.hex))
		if got := AppendHeader(nil, tc.kid, tc.ctr); !bytes.Equal(got, want) {
			t.Errorf("AppendHeader(%d, %d) = %x, want %x", tc.kid, tc.ctr, got, want)
		}
		kid, ctr, n, err := ParseHeader(append(want, 0xaa, 0xbb)) // trailing ciphertext is not part of the header
		if err != nil || kid != tc.kid || ctr != tc.ctr || n != len(want) {
			t.Errorf("ParseHeader(%x) = %d, %d, %d, %v; want %d, %d, %d", want, kid, ctr, n, err, tc.kid, tc.ctr, len(want))
		}
	}
}

func stripSpaces(s string) string { return string(bytes.ReplaceAll([]byte(s), []byte(" "), nil)) }

// TestHeaderBoundaries checks every pair of boundary values: round trip, minimal length, HeaderLen, appending after
// existing bytes, and ErrTruncatedHeader for every proper prefix.
func TestHeaderBoundaries(t *testing.T) {
	for _, kid := range boundaryValues() {
		for _, ctr := range boundaryValues() {
			h := AppendHeader([]byte{0xee}, kid, ctr)
			if h[0] != 0xee {
				t.Fatalf("AppendHeader overwrote dst")
			}
			h = h[1:]
			if want := 1 + minimalLen(kid) + minimalLen(ctr); len(h) != want || HeaderLen(kid, ctr) != want {
				t.Errorf("kid %d ctr %d: header %x of length %d, HeaderLen %d; want %d", kid, ctr, h, len(h), HeaderLen(kid, ctr), want)
			}
			gotKID, gotCTR, n, err := ParseHeader(h)
			if err != nil || gotKID != kid || gotCTR != ctr || n != len(h) {
				t.Errorf("ParseHeader(%x) = %d, %d, %d, %v", h, gotKID, gotCTR, n, err)
			}
			for i := range len(h) {
				if _, _, _, err := ParseHeader(h[:i]); !errors.Is(err, ErrTruncatedHeader) {
					t.Errorf("ParseHeader(%x) error = %v, want ErrTruncatedHeader", h[:i], err)
				}
			}
		}
	}
}

// minimalLen is the number of extended bytes §4.3 prescribes for v, computed independently of header.go.
func minimalLen(v uint64) int {
	n := 0
	if v >= 8 {
		for ; v > 0; v >>= 8 {
			n++
		}
	}
	return n
}

func TestParseHeaderNonMinimal(t *testing.T) {
	for _, tc := range []struct {
		hex      string
		kid, ctr uint64
	}{
		{"8005", 5, 0},                               // extended KID holding a value below 8
		{"0800", 0, 0},                               // extended CTR holding 0
		{"880000", 0, 0},                             // both
		{"0f0000000000000001", 0, 1},                 // 8-byte CTR with leading zeros
		{"f00000000000000007", 7, 0},                 // 8-byte KID with leading zeros
		{"9000ff", 0xff, 0},                          // 2-byte KID for a 1-byte value
		{"ff00000000000000000000000000000001", 0, 1}, // longest header
	} {
		b, _ := hex.DecodeString(tc.hex)
		kid, ctr, n, err := ParseHeader(b)
		if err != nil || kid != tc.kid || ctr != tc.ctr || n != len(b) {
			t.Errorf("ParseHeader(%s) = %d, %d, %d, %v; want %d, %d, %d", tc.hex, kid, ctr, n, err, tc.kid, tc.ctr, len(b))
		}
	}
}

func TestParseHeaderTruncated(t *testing.T) {
	for _, h := range []string{"", "80", "08", "8800", "ff", "ff00000000000000000000000000000000"[:32]} {
		b, _ := hex.DecodeString(h)
		if _, _, _, err := ParseHeader(b); !errors.Is(err, ErrTruncatedHeader) {
			t.Errorf("ParseHeader(%q) error = %v, want ErrTruncatedHeader", h, err)
		}
	}
	if ErrTruncatedHeader.Error() != "sframe: truncated header" {
		t.Errorf("unexpected message %q", ErrTruncatedHeader)
	}
}
