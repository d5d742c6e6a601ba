package recorder

import (
	"encoding/binary"
	"io"
)

// IVF, the container of libvpx's tools, little-endian throughout:
//
//	file header (32 bytes): "DKIF" | version uint16 (0) | header size uint16 (32) | fourcc "VP80" |
//	                        width uint16 | height uint16 | timebase denominator uint32 | numerator uint32 |
//	                        frame count uint32 | unused uint32
//	each frame:             size uint32 | presentation timestamp uint64 (in the timebase) | the VP8 frame
//
// The timebase here is that of RTP video, 1/90000 s, so timestamps keep the sender's spacing and gaps. The frame
// count is 0 while recording (readers go by the file's end) and set when a plain file is closed; an encrypted file
// cannot be rewritten, so it keeps 0 and the manifest holds the count.

const (
	ivfHeaderSize     = 32
	ivfFrameCountAt   = 24
	ivfFrameHeader    = 12
	videoClockRate    = 90000
	vp8KeyframeHeader = 10 // frame tag (3), start code (3), width (2), height (2)
)

// writeIVFHeader writes the file header of a VP8 stream of width×height.
func writeIVFHeader(w io.Writer, width, height int) error {
	h := make([]byte, 0, ivfHeaderSize)
	h = append(h, "DKIF"...)
	h = binary.LittleEndian.AppendUint16(h, 0)
	h = binary.LittleEndian.AppendUint16(h, ivfHeaderSize)
	h = append(h, "VP80"...)
	h = binary.LittleEndian.AppendUint16(h, uint16(width))
	h = binary.LittleEndian.AppendUint16(h, uint16(height))
	h = binary.LittleEndian.AppendUint32(h, videoClockRate)
	h = binary.LittleEndian.AppendUint32(h, 1)
	h = binary.LittleEndian.AppendUint32(h, 0) // frame count, set on close
	h = binary.LittleEndian.AppendUint32(h, 0)
	_, err := w.Write(h)
	return err
}

// writeIVFFrame writes one frame with its timestamp in one Write, so a file is cut only between frames or inside
// the last one.
func writeIVFFrame(w io.Writer, frame []byte, pts uint64) error {
	b := make([]byte, 0, ivfFrameHeader+len(frame))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(frame)))
	b = binary.LittleEndian.AppendUint64(b, pts)
	b = append(b, frame...)
	_, err := w.Write(b)
	return err
}

// vp8Keyframe reports whether frame is a VP8 key frame and, if so, its dimensions (RFC 6386 section 9.1: the frame
// tag's bit 0 is 0 for a key frame, followed by the start code 9d 01 2a and 14-bit width and height).
func vp8Keyframe(frame []byte) (width, height int, ok bool) {
	if len(frame) < vp8KeyframeHeader || frame[0]&1 != 0 || frame[3] != 0x9d || frame[4] != 0x01 || frame[5] != 0x2a {
		return 0, 0, false
	}
	return int(binary.LittleEndian.Uint16(frame[6:]) & 0x3fff), int(binary.LittleEndian.Uint16(frame[8:]) & 0x3fff), true
}
