package loadtest

import (
	"encoding/binary"
	"errors"
	"time"
)

// Synthetic media: frames shaped like Opus packets and VP8 frames (so that the SFrame media profile keeps the same
// clear prefix as for real ones) whose payload carries a marker that the receiver checks after decryption:
//
//	codec header (Opus TOC: 1 byte; VP8 key frame: 10 bytes; VP8 delta frame: 3 bytes)
//	"STOA" || u8 flags || u16 channel || u16 publisher || u32 seq || i64 sent (ns on the sender's monotonic clock)
//	filler: byte i = uint8(seq + i), to the frame's size
//
// flags bit 0 marks a frame sent during the measured phase (see Run).

const (
	markerMagic = "STOA"
	markerLen   = 4 + 1 + 2 + 2 + 4 + 8
	flagCounted = 1
)

// Frame sizes and rates of the synthetic streams: Opus at 20 ms, VP8 at 30 fps with a key frame every 2 s.
const (
	AudioInterval   = 20 * time.Millisecond
	AudioFrameSize  = 120
	VideoInterval   = time.Second / 30
	VideoFrameSize  = 1800
	VideoKeySize    = 9000
	VideoKeyEvery   = 60
	vp8KeyHeaderLen = 10
	vp8DeltaHdrLen  = 3
)

// Marker is what a synthetic frame says about itself.
type Marker struct {
	Counted   bool
	Channel   uint16
	Publisher uint16
	Seq       uint32
	Sent      int64
}

// AudioFrame returns a synthetic Opus packet carrying m.
func AudioFrame(m Marker) []byte {
	b := make([]byte, AudioFrameSize)
	b[0] = 0xfc // TOC: CELT-only fullband 20 ms, stereo, one frame
	fill(b, 1, m)
	return b
}

// VideoFrame returns a synthetic VP8 frame carrying m; key says whether it is a key frame.
func VideoFrame(m Marker, key bool) []byte {
	if !key {
		b := make([]byte, VideoFrameSize)
		b[0] = 0x01 | 0x10 // inter frame, show_frame
		fill(b, vp8DeltaHdrLen, m)
		return b
	}
	b := make([]byte, VideoKeySize)
	b[0] = 0x10 // key frame (bit 0 clear), show_frame
	b[3], b[4], b[5] = 0x9d, 0x01, 0x2a
	binary.LittleEndian.PutUint16(b[6:], 640)
	binary.LittleEndian.PutUint16(b[8:], 360)
	fill(b, vp8KeyHeaderLen, m)
	return b
}

// DataMessage returns a synthetic data message carrying m.
func DataMessage(m Marker) []byte {
	b := make([]byte, 64)
	fill(b, 0, m)
	return b
}

func fill(b []byte, at int, m Marker) {
	p := b[at:]
	copy(p, markerMagic)
	if m.Counted {
		p[4] = flagCounted
	}
	binary.BigEndian.PutUint16(p[5:], m.Channel)
	binary.BigEndian.PutUint16(p[7:], m.Publisher)
	binary.BigEndian.PutUint32(p[9:], m.Seq)
	binary.BigEndian.PutUint64(p[13:], uint64(m.Sent))
	for i := markerLen; i < len(p); i++ {
		p[i] = uint8(m.Seq + uint32(i))
	}
}

// ErrCorrupt reports a decrypted frame whose content is not what its sender wrote.
var ErrCorrupt = errors.New("loadtest: frame content does not match its marker")

// ParseFrame reads the marker of a decrypted synthetic frame whose codec header is headerLen bytes and checks
// every filler byte.
func ParseFrame(b []byte, headerLen int) (Marker, error) {
	if len(b) < headerLen+markerLen || string(b[headerLen:headerLen+4]) != markerMagic {
		return Marker{}, ErrCorrupt
	}
	p := b[headerLen:]
	m := Marker{
		Counted:   p[4]&flagCounted != 0,
		Channel:   binary.BigEndian.Uint16(p[5:]),
		Publisher: binary.BigEndian.Uint16(p[7:]),
		Seq:       binary.BigEndian.Uint32(p[9:]),
		Sent:      int64(binary.BigEndian.Uint64(p[13:])),
	}
	for i := markerLen; i < len(p); i++ {
		if p[i] != uint8(m.Seq+uint32(i)) {
			return Marker{}, ErrCorrupt
		}
	}
	return m, nil
}

// VideoHeaderLen is the codec header length of a synthetic VP8 frame.
func VideoHeaderLen(frame []byte) int {
	if len(frame) > 0 && frame[0]&1 == 0 {
		return vp8KeyHeaderLen
	}
	return vp8DeltaHdrLen
}
