package recorder

import (
	"encoding/binary"
	"errors"
	"io"
)

// Ogg encapsulation of Opus: RFC 3533 (the Ogg page format) and RFC 7845 (Ogg Opus). An Ogg Opus stream is:
//
//	page 0  (BOS)  the identification header "OpusHead"         granule 0
//	page 1         the comment header "OpusTags"                granule 0
//	page 2…        audio packets, whole (a packet never spans pages here)
//	last    (EOS)  the last packets, or none
//
// A page is written only when complete, so a file cut anywhere ends at the last whole page and plays up to it.
//
// Page header (RFC 3533 section 6), little-endian:
//
//	"OggS" | version 0 | flags (1 continued, 2 BOS, 4 EOS) | granule position int64 | serial uint32 |
//	page sequence uint32 | CRC-32 uint32 | segment count uint8 | segment table (lacing values) | data
//
// A packet of n bytes takes n/255 lacing values of 255 and one of n%255 (0 if n is a multiple of 255).

const (
	oggFlagBOS = 0x02
	oggFlagEOS = 0x04

	// maxOggSegments is the lacing values one page holds.
	maxOggSegments = 255
	// oggPagePackets bounds the packets per page, so that a page (one second of 20 ms packets) reaches the file
	// soon after its packets arrive.
	oggPagePackets = 50
	// opusPreSkip is the number of samples to drop at the start of decoding. A recording starts at a packet the
	// encoder made mid-stream, so there is no encoder delay to trim: 0 keeps every sample (RFC 7845 section 5.1
	// allows it).
	opusPreSkip = 0
)

// errPacketTooLarge: a packet that does not fit in one Ogg page (no valid Opus packet is that large).
var errPacketTooLarge = errors.New("recorder: packet too large for an Ogg page")

// oggWriter writes an Ogg Opus stream to w, one page at a time.
type oggWriter struct {
	w      io.Writer
	serial uint32
	seq    uint32
	// The page being filled: its lacing values, its data and the granule position after its last packet.
	lacing  []byte
	data    []byte
	packets int
	granule int64
}

// newOggWriter writes the two header pages of an Opus stream of channels channels (1 or 2).
func newOggWriter(w io.Writer, serial uint32, channels int) (*oggWriter, error) {
	o := &oggWriter{w: w, serial: serial}
	head := make([]byte, 0, 19)
	head = append(head, "OpusHead"...)
	head = append(head, 1, byte(channels)) // version 1, output channel count
	head = binary.LittleEndian.AppendUint16(head, opusPreSkip)
	head = binary.LittleEndian.AppendUint32(head, 48000) // input sample rate, informational
	head = binary.LittleEndian.AppendUint16(head, 0)     // output gain
	head = append(head, 0)                               // channel mapping family 0: mono or stereo
	tags := make([]byte, 0, 32)
	tags = append(tags, "OpusTags"...)
	tags = binary.LittleEndian.AppendUint32(tags, uint32(len(vendor)))
	tags = append(tags, vendor...)
	tags = binary.LittleEndian.AppendUint32(tags, 0) // no user comments
	for i, h := range [][]byte{head, tags} {
		o.add(h, 0)
		flags := byte(0)
		if i == 0 {
			flags = oggFlagBOS
		}
		if err := o.flushPage(flags); err != nil {
			return nil, err
		}
	}
	return o, nil
}

const vendor = "stoa record"

// writePacket adds an Opus packet that ends at granule (samples at 48 kHz since the start, pre-skip included),
// writing the page before it if the packet does not fit or the page is full.
func (o *oggWriter) writePacket(p []byte, granule int64) error {
	segs := len(p)/255 + 1
	if segs > maxOggSegments {
		return errPacketTooLarge
	}
	if len(o.lacing)+segs > maxOggSegments || o.packets >= oggPagePackets {
		if err := o.flushPage(0); err != nil {
			return err
		}
	}
	o.add(p, granule)
	return nil
}

func (o *oggWriter) add(p []byte, granule int64) {
	for n := len(p); ; n -= 255 {
		if n < 255 {
			o.lacing = append(o.lacing, byte(n))
			break
		}
		o.lacing = append(o.lacing, 255)
	}
	o.data = append(o.data, p...)
	o.packets++
	o.granule = granule
}

// flush writes the page being filled, if it holds any packet.
func (o *oggWriter) flush() error {
	if o.packets == 0 {
		return nil
	}
	return o.flushPage(0)
}

// close writes the last page, marked end of stream (empty if no packet is pending).
func (o *oggWriter) close() error { return o.flushPage(oggFlagEOS) }

func (o *oggWriter) flushPage(flags byte) error {
	page := make([]byte, 0, 27+len(o.lacing)+len(o.data))
	page = append(page, "OggS"...)
	page = append(page, 0, flags)
	page = binary.LittleEndian.AppendUint64(page, uint64(o.granule))
	page = binary.LittleEndian.AppendUint32(page, o.serial)
	page = binary.LittleEndian.AppendUint32(page, o.seq)
	page = binary.LittleEndian.AppendUint32(page, 0) // CRC, filled below
	page = append(page, byte(len(o.lacing)))
	page = append(page, o.lacing...)
	page = append(page, o.data...)
	binary.LittleEndian.PutUint32(page[22:], oggCRC(page))
	o.seq++
	o.lacing, o.data, o.packets = o.lacing[:0], o.data[:0], 0
	_, err := o.w.Write(page)
	return err
}

// oggCRCTable is the CRC-32 of Ogg: polynomial 0x04c11db7, MSB first, initial value 0, no final XOR.
var oggCRCTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

func oggCRC(b []byte) uint32 {
	var crc uint32
	for _, c := range b {
		crc = crc<<8 ^ oggCRCTable[byte(crc>>24)^c]
	}
	return crc
}

// opusSamples returns the duration of an Opus packet in samples at 48 kHz from its TOC byte (RFC 6716 section
// 3.1), or 0 for a packet that is not valid Opus.
func opusSamples(p []byte) int {
	if len(p) == 0 {
		return 0
	}
	toc := p[0]
	config := toc >> 3
	var frame int
	switch {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		frame = [4]int{480, 960, 1920, 2880}[config%4]
	case config < 16: // hybrid: 10, 20 ms
		frame = [2]int{480, 960}[config%2]
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = [4]int{120, 240, 480, 960}[config%4]
	}
	frames := 1
	switch toc & 3 {
	case 1, 2:
		frames = 2
	case 3:
		if len(p) < 2 {
			return 0
		}
		frames = int(p[1] & 0x3f)
	}
	if n := frame * frames; n <= 5760 { // at most 120 ms per packet
		return n
	}
	return 0
}

// opusConcealment returns a packet of one empty frame with the configuration of p: a decoder conceals it as a
// lost frame (RFC 6716 section 3.2.1), which is how a gap in the recording is filled.
func opusConcealment(p []byte) []byte { return []byte{p[0] &^ 3} }

// opusChannels returns 2 for a stereo packet and 1 for a mono one.
func opusChannels(p []byte) int {
	if len(p) > 0 && p[0]&0x04 != 0 {
		return 2
	}
	return 1
}
