package forward

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVP8Descriptor(t *testing.T) {
	tests := []struct {
		name     string
		payload  string
		ok       bool
		start    bool
		pid      uint8
		size     int
		keyframe bool
	}{
		{"minimal keyframe", "1010", true, true, 0, 1, true},
		{"minimal delta", "1011", true, true, 0, 1, false},
		{"not a partition start", "0010", true, false, 0, 1, false},
		{"start of partition 1", "1110", true, true, 1, 1, false},
		{"N bit ignored", "3010", true, true, 0, 1, true},
		{"X with no fields", "90001010", true, true, 0, 2, true},
		{"7-bit PictureID", "90800510", true, true, 0, 3, true},
		{"15-bit PictureID", "9080812310", true, true, 0, 4, true},
		{"I L T, 15-bit PictureID", "90e08001052010", true, true, 0, 6, true},
		{"K only", "90104011", true, true, 0, 3, false},
		{"T and K share one byte", "9030ff10", true, true, 0, 3, true},
		{"L without T", "9040ff10", true, true, 0, 3, true},
		{"descriptor only", "10", true, true, 0, 1, false},
		// docs/e2ee.md: the SFrame-protected VP8 frames behind a one-byte
		// descriptor, their clear prefix first.
		{"e2ee.md key frame", "10" + "1002009d012a8002e001f10123456789abcdef8c22d2798e8f0911d5437a674e5d3bc2034db0d2", true, true, 0, 1, true},
		{"e2ee.md delta frame", "10" + "310100f20123456789abcdef51d40bb2f4caed54e25fc101cfcdac04a89db2", true, true, 0, 1, false},
		{"empty", "", false, false, 0, 0, false},
		{"X without extension byte", "90", false, false, 0, 0, false},
		{"I without PictureID", "9080", false, false, 0, 0, false},
		{"M without second byte", "908080", false, false, 0, 0, false},
		{"L without TL0PICIDX", "9040", false, false, 0, 0, false},
		{"T without its byte", "9020", false, false, 0, 0, false},
		{"all fields, last missing", "90f08001ff", false, false, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := unhex(t, tt.payload)
			d, ok := parseVP8Descriptor(p)
			if ok != tt.ok || (ok && (d.start != tt.start || d.pid != tt.pid || d.size != tt.size)) {
				t.Errorf("parse = %+v, %v; want start %v pid %d size %d, %v", d, ok, tt.start, tt.pid, tt.size, tt.ok)
			}
			if kf := isVP8Keyframe(p); kf != tt.keyframe {
				t.Errorf("keyframe = %v, want %v", kf, tt.keyframe)
			}
		})
	}
}

// refVP8 is a deliberately different reading of RFC 7741 §4.2: it consumes
// the fields one by one from a reader and fails on the first missing byte.
func refVP8(p []byte) (start bool, pid uint8, size int, keyframe, ok bool) {
	r := bytes.NewReader(p)
	readByte := func() (byte, bool) {
		b, err := r.ReadByte()
		return b, err == nil
	}
	b0, ok := readByte()
	if !ok {
		return false, 0, 0, false, false
	}
	start, pid = b0>>4&1 == 1, b0&7
	if b0>>7 == 1 {
		x, ok := readByte()
		if !ok {
			return false, 0, 0, false, false
		}
		i, l, t, k := x>>7&1 == 1, x>>6&1 == 1, x>>5&1 == 1, x>>4&1 == 1
		if i {
			pic, ok := readByte()
			if !ok {
				return false, 0, 0, false, false
			}
			if pic>>7 == 1 {
				if _, ok := readByte(); !ok {
					return false, 0, 0, false, false
				}
			}
		}
		if l {
			if _, ok := readByte(); !ok {
				return false, 0, 0, false, false
			}
		}
		if t || k {
			if _, ok := readByte(); !ok {
				return false, 0, 0, false, false
			}
		}
	}
	size = len(p) - r.Len()
	if first, more := readByte(); more {
		keyframe = start && pid == 0 && first&1 == 0
	}
	return start, pid, size, keyframe, true
}

// FuzzVP8Descriptor: the parser never panics, never claims more bytes than
// it was given, and agrees with the reference reading on every input.
func FuzzVP8Descriptor(f *testing.F) {
	for _, s := range []string{"", "10", "1010", "90", "9080", "908080", "90e08001052010", "9030ff10", "ffffffffffff", "9010"} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		d, ok := parseVP8Descriptor(p)
		kf := isVP8Keyframe(p)
		start, pid, size, refKF, refOK := refVP8(p)
		if ok != refOK {
			t.Fatalf("% x: ok %v, reference %v", p, ok, refOK)
		}
		if kf != refKF {
			t.Fatalf("% x: keyframe %v, reference %v", p, kf, refKF)
		}
		if !ok {
			return
		}
		if d.size < 1 || d.size > len(p) {
			t.Fatalf("% x: size %d out of range", p, d.size)
		}
		if d.start != start || d.pid != pid || d.size != size {
			t.Fatalf("% x: %+v, reference start %v pid %d size %d", p, d, start, pid, size)
		}
	})
}

// buildVP8 writes a descriptor with the given fields, as a packetizer
// would, followed by body.
func buildVP8(start bool, pid uint8, pictureID int, tl0 int, tid int, keyidx int, body []byte) []byte {
	var b0, x byte
	if start {
		b0 |= 0x10
	}
	b0 |= pid & 7
	var ext []byte
	if pictureID >= 0 {
		x |= 0x80
		if pictureID > 0x7f {
			ext = append(ext, 0x80|byte(pictureID>>8&0x7f), byte(pictureID))
		} else {
			ext = append(ext, byte(pictureID))
		}
	}
	if tl0 >= 0 {
		x |= 0x40
		ext = append(ext, byte(tl0))
	}
	if tid >= 0 || keyidx >= 0 {
		var tk byte
		if tid >= 0 {
			x |= 0x20
			tk |= byte(tid&3) << 6
		}
		if keyidx >= 0 {
			x |= 0x10
			tk |= byte(keyidx & 0x1f)
		}
		ext = append(ext, tk)
	}
	out := []byte{b0}
	if x != 0 {
		out[0] |= 0x80
		out = append(out, x)
		out = append(out, ext...)
	}
	return append(out, body...)
}

// FuzzVP8RoundTrip: a descriptor built from fields parses back to the
// length it was built with, and the keyframe verdict follows from S, PID
// and the payload's P bit.
func FuzzVP8RoundTrip(f *testing.F) {
	f.Add(true, uint8(0), int16(-1), int16(-1), int8(-1), int8(-1), []byte{0x10, 0xaa})
	f.Add(true, uint8(0), int16(300), int16(7), int8(2), int8(-1), []byte{0x9c})
	f.Add(false, uint8(3), int16(5), int16(-1), int8(-1), int8(9), []byte{0x11})
	f.Fuzz(func(t *testing.T, start bool, pid uint8, pictureID, tl0 int16, tid, keyidx int8, body []byte) {
		pid &= 7
		pic := int(pictureID)
		if pic >= 0 {
			pic &= 0x7fff
		}
		p := buildVP8(start, pid, pic, int(tl0), int(tid), int(keyidx), body)
		d, ok := parseVP8Descriptor(p)
		if !ok {
			t.Fatalf("% x: built descriptor does not parse", p)
		}
		if want := len(p) - len(body); d.size != want || d.start != start || d.pid != pid {
			t.Fatalf("% x: %+v, want size %d start %v pid %d", p, d, want, start, pid)
		}
		want := start && pid == 0 && len(body) > 0 && body[0]&1 == 0
		if kf := isVP8Keyframe(p); kf != want {
			t.Fatalf("% x: keyframe %v, want %v", p, kf, want)
		}
	})
}
