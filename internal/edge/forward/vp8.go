package forward

// vp8Descriptor is the part of the VP8 payload descriptor (RFC 7741 §4.2)
// that forwarding needs.
//
//	      0 1 2 3 4 5 6 7
//	     +-+-+-+-+-+-+-+-+
//	     |X|R|N|S|R| PID | (REQUIRED)
//	     +-+-+-+-+-+-+-+-+
//	X:   |I|L|T|K| RSV   | (OPTIONAL)
//	     +-+-+-+-+-+-+-+-+
//	I:   |M| PictureID   | (OPTIONAL)
//	     +-+-+-+-+-+-+-+-+
//	     |   PictureID   | (second byte, present if M=1)
//	     +-+-+-+-+-+-+-+-+
//	L:   |   TL0PICIDX   | (OPTIONAL)
//	     +-+-+-+-+-+-+-+-+
//	T/K: |TID|Y| KEYIDX  | (OPTIONAL, one byte if T=1 or K=1)
//	     +-+-+-+-+-+-+-+-+
type vp8Descriptor struct {
	start bool  // S: this packet starts a VP8 partition
	pid   uint8 // PID: partition index
	size  int   // descriptor length in bytes; the VP8 payload follows
}

// parseVP8Descriptor parses the descriptor at the start of an RTP payload.
// It reports false if the payload is too short for the descriptor its own
// flags announce.
func parseVP8Descriptor(p []byte) (vp8Descriptor, bool) {
	if len(p) < 1 {
		return vp8Descriptor{}, false
	}
	d := vp8Descriptor{
		start: p[0]&0x10 != 0,
		pid:   p[0] & 0x07,
		size:  1,
	}
	if p[0]&0x80 == 0 { // X: no extension byte
		return d, true
	}
	if len(p) < 2 {
		return vp8Descriptor{}, false
	}
	ext := p[1]
	d.size = 2
	if ext&0x80 != 0 { // I: PictureID, 7 or 15 bits
		if len(p) < d.size+1 {
			return vp8Descriptor{}, false
		}
		if p[d.size]&0x80 != 0 { // M: 15-bit PictureID
			d.size += 2
		} else {
			d.size++
		}
	}
	if ext&0x40 != 0 { // L: TL0PICIDX
		d.size++
	}
	if ext&0x30 != 0 { // T or K: one byte holds TID, Y and KEYIDX
		d.size++
	}
	if len(p) < d.size {
		return vp8Descriptor{}, false
	}
	return d, true
}

// isVP8Keyframe reports whether an RTP payload starts a VP8 key frame: the
// descriptor marks the start of partition 0 (S=1, PID=0) and the first byte
// of the VP8 payload header has the inverse key frame flag P clear
// (RFC 7741 §4.3; RFC 6386 §9.1). Stoa's SFrame packetization leaves that
// byte in the clear.
func isVP8Keyframe(p []byte) bool {
	d, ok := parseVP8Descriptor(p)
	if !ok || !d.start || d.pid != 0 || len(p) <= d.size {
		return false
	}
	return p[d.size]&0x01 == 0
}
