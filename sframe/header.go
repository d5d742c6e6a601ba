package sframe

import (
	"encoding/binary"
	"math/bits"
)

// The SFrame header (RFC 9605 §4.3) starts with one configuration byte made of two nibbles,
//
//	 0 1 2 3 4 5 6 7
//	+-+-+-+-+-+-+-+-+
//	|X|  K  |Y|  C  |
//	+-+-+-+-+-+-+-+-+
//
// followed by the extended KID bytes (if X = 1) and then the extended CTR bytes (if Y = 1). With X = 0 the KID is
// K itself (0-7); with X = 1, K+1 is the number of big-endian KID bytes that follow (1-8). Y and C encode the CTR
// the same way. A header is therefore 1 to 17 bytes long.
const (
	nibbleExtended = 0x8 // X or Y within a nibble
	nibbleValue    = 0x7 // K or C within a nibble

	// MaxHeaderLen is the length of the longest SFrame header: KID and CTR both 8 bytes long.
	MaxHeaderLen = 17
)

// AppendHeader appends the minimal SFrame header for kid and ctr to dst, as §4.3 requires of senders: values below
// 8 are packed into the configuration byte, larger ones use the fewest big-endian bytes.
func AppendHeader(dst []byte, kid, ctr uint64) []byte {
	cfg := nibble(kid)<<4 | nibble(ctr)
	dst = append(dst, cfg)
	dst = appendExtended(dst, kid)
	return appendExtended(dst, ctr)
}

// nibble is the 4 configuration bits of a field holding v.
func nibble(v uint64) byte {
	if v <= nibbleValue {
		return byte(v)
	}
	return nibbleExtended | byte(valueLen(v)-1)
}

// appendExtended appends the extended bytes of a field holding v: none if v fits in the nibble.
func appendExtended(dst []byte, v uint64) []byte {
	if v <= nibbleValue {
		return dst
	}
	var be [8]byte
	binary.BigEndian.PutUint64(be[:], v)
	return append(dst, be[8-valueLen(v):]...)
}

// valueLen is the number of bytes of the minimal big-endian encoding of v (at least 1).
func valueLen(v uint64) int {
	return max(1, (bits.Len64(v)+7)/8)
}

// HeaderLen returns the length of the minimal header for kid and ctr, the one AppendHeader writes.
func HeaderLen(kid, ctr uint64) int {
	return 1 + extendedLen(nibble(kid)) + extendedLen(nibble(ctr))
}

// extendedLen is the number of extended bytes that follow the configuration byte for a field with nibble nb.
func extendedLen(nb byte) int {
	if nb&nibbleExtended == 0 {
		return 0
	}
	return int(nb&nibbleValue) + 1
}

// ParseHeader decodes the SFrame header at the start of b and returns its KID, its CTR and its length in bytes.
// It accepts every well-formed header, including non-minimal ones (an extended field holding a value below 8, or
// leading zero bytes), as §4.3 asks of receivers. It returns ErrTruncatedHeader when b ends inside the header.
func ParseHeader(b []byte) (kid, ctr uint64, n int, err error) {
	if len(b) == 0 {
		return 0, 0, 0, ErrTruncatedHeader
	}
	kidNibble, ctrNibble := b[0]>>4, b[0]&0xf
	kidEnd := 1 + extendedLen(kidNibble)
	n = kidEnd + extendedLen(ctrNibble)
	if len(b) < n {
		return 0, 0, 0, ErrTruncatedHeader
	}
	return fieldValue(kidNibble, b[1:kidEnd]), fieldValue(ctrNibble, b[kidEnd:n]), n, nil
}

// fieldValue is the value of a field given its nibble and its extended bytes (empty when not extended).
func fieldValue(nb byte, ext []byte) uint64 {
	if nb&nibbleExtended == 0 {
		return uint64(nb & nibbleValue)
	}
	var v uint64
	for _, c := range ext {
		v = v<<8 | uint64(c)
	}
	return v
}
