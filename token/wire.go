package token

import (
	"encoding/binary"
	"math"
)

// The little-endian primitives of the AccessToken2 content. Writers append to a caller's buffer; the reader never
// panics and reports the first problem it meets, so hostile input costs at most one pass over the bytes.

func appendU16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }

func appendString(b []byte, s string) ([]byte, error) {
	if len(s) > math.MaxUint16 {
		return b, invalidInput("a string field is %d bytes, more than 65535", len(s))
	}
	b = appendU16(b, uint16(len(s)))
	return append(b, s...), nil
}

// reader decodes the content of a token. After the first error every read returns zero values and err keeps
// that first error.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = malformed(format, a...)
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b)-r.off {
		r.fail("truncated %s at byte %d", what, r.off)
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *reader) u16(what string) uint16 {
	if p := r.take(2, what); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if p := r.take(4, what); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (r *reader) bytes(what string) []byte {
	n := r.u16(what + " length")
	return r.take(int(n), what)
}

func (r *reader) string(what string) string { return string(r.bytes(what)) }

// count reads a u16 element count and checks that at least min bytes per element remain, so that a count larger
// than what follows is refused before anything is allocated for it.
func (r *reader) count(what string, min int) int {
	n := int(r.u16(what + " count"))
	if r.err == nil && n*min > len(r.b)-r.off {
		r.fail("%s count %d is larger than what follows", what, n)
		return 0
	}
	return n
}

func (r *reader) remaining() int { return len(r.b) - r.off }
