package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"time"
)

// Hash is a SHA-256 digest: an entry's hash or the previous entry's hash.
type Hash [sha256.Size]byte

// String returns h in lowercase hexadecimal.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Entry is one audit log entry as stored.
type Entry struct {
	Seq      uint64    // position in the chain: 1, 2, 3... without gaps
	Time     time.Time // microsecond precision, UTC; never earlier than the previous entry's
	Actor    string    // who: an account, an API key id, "system"
	Action   string    // what: a dotted verb such as "project.certificate.rotate"
	Target   string    // on what: an object reference such as "project/42"
	Before   []byte    // JSON of the state before the change, "null" if none; secrets redacted
	After    []byte    // JSON of the state after the change, "null" if none; secrets redacted
	PrevHash Hash      // Hash of the entry Seq-1; all zero for entry 1
	Hash     Hash      // SHA-256 of Encode(e)
}

// entryDomain separates audit entry encodings from any other hashed or signed data.
const entryDomain = "stoa.audit.entry.v1"

// checkpointDomain separates signed checkpoint messages from any other signed data.
const checkpointDomain = "stoa.audit.checkpoint.v1"

// headDomain separates signed heads from any other signed data.
const headDomain = "stoa.audit.head.v1"

// Encode returns the canonical encoding of e that [Entry.ComputeHash] hashes: nine fields, each a 4-byte
// big-endian length followed by that many bytes, in this order:
//
//	domain   "stoa.audit.entry.v1" (19 bytes)
//	seq      8 bytes, unsigned big-endian
//	time     8 bytes, Unix microseconds, two's-complement big-endian
//	actor    UTF-8 bytes
//	action   UTF-8 bytes
//	target   UTF-8 bytes
//	before   JSON bytes as stored
//	after    JSON bytes as stored
//	prevhash 32 bytes
//
// The Hash field itself is not encoded. docs/audit.md gives the layout byte by byte.
func (e *Entry) Encode() []byte {
	n := 9*4 + len(entryDomain) + 8 + 8 + len(e.Actor) + len(e.Action) + len(e.Target) + len(e.Before) + len(e.After) + len(e.PrevHash)
	b := make([]byte, 0, n)
	b = appendField(b, []byte(entryDomain))
	b = appendField(b, binary.BigEndian.AppendUint64(nil, e.Seq))
	b = appendField(b, binary.BigEndian.AppendUint64(nil, uint64(e.Time.UnixMicro())))
	b = appendField(b, []byte(e.Actor))
	b = appendField(b, []byte(e.Action))
	b = appendField(b, []byte(e.Target))
	b = appendField(b, e.Before)
	b = appendField(b, e.After)
	b = appendField(b, e.PrevHash[:])
	return b
}

// ComputeHash returns SHA-256 of e's canonical encoding.
func (e *Entry) ComputeHash() Hash { return sha256.Sum256(e.Encode()) }

// errEncoding is returned by DecodeEntry for anything that Encode could not have produced.
var errEncoding = errors.New("audit: malformed entry encoding")

// DecodeEntry parses a canonical encoding produced by [Entry.Encode]; the result's Hash field is
// SHA-256 of b. It rejects trailing bytes, wrong fixed sizes and a wrong domain.
func DecodeEntry(b []byte) (Entry, error) {
	var fields [9][]byte
	rest := b
	for i := range fields {
		if len(rest) < 4 {
			return Entry{}, errEncoding
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(len(rest)) < uint64(n) {
			return Entry{}, errEncoding
		}
		fields[i], rest = rest[:n], rest[n:]
	}
	if len(rest) != 0 || string(fields[0]) != entryDomain || len(fields[1]) != 8 || len(fields[2]) != 8 || len(fields[8]) != len(Hash{}) {
		return Entry{}, errEncoding
	}
	e := Entry{
		Seq:    binary.BigEndian.Uint64(fields[1]),
		Time:   time.UnixMicro(int64(binary.BigEndian.Uint64(fields[2]))).UTC(),
		Actor:  string(fields[3]),
		Action: string(fields[4]),
		Target: string(fields[5]),
		Before: clone(fields[6]),
		After:  clone(fields[7]),
		Hash:   sha256.Sum256(b),
	}
	copy(e.PrevHash[:], fields[8])
	return e, nil
}

func clone(b []byte) []byte { return append([]byte{}, b...) }

func appendField(b, f []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
	return append(b, f...)
}

// signedMessage returns the bytes an Ed25519 signature of a checkpoint or of the head covers: five
// length-prefixed fields, the domain ("stoa.audit.checkpoint.v1" or "stoa.audit.head.v1"), seq (8 bytes), the
// entry hash (32 bytes), time (8 bytes, Unix microseconds) and the key id. The domains keep a checkpoint from
// passing for a head and the other way round.
func signedMessage(domain string, seq uint64, h Hash, t time.Time, keyID string) []byte {
	var b []byte
	b = appendField(b, []byte(domain))
	b = appendField(b, binary.BigEndian.AppendUint64(nil, seq))
	b = appendField(b, h[:])
	b = appendField(b, binary.BigEndian.AppendUint64(nil, uint64(t.UnixMicro())))
	b = appendField(b, []byte(keyID))
	return b
}

// KeyID returns the id under which checkpoints and heads signed by pub name it: "console-" and the first 8 bytes
// of SHA-256(pub) in hexadecimal. Verifiers derive it from the keys they trust, so a signature that names a
// trusted key's id is checked with that key, never with a key stored next to it.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "console-" + hex.EncodeToString(sum[:8])
}
