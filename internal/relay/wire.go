package relay

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/stoa-rtc/stoa/internal/protocol"
)

// The wire format. Every integer written "uvarint" is encoding/binary's unsigned varint in its shortest form;
// "string" is a uvarint length followed by that many bytes of UTF-8.
//
// A frame, on a stream:
//
//	type u8 | body length uvarint | body
//
// Bodies by type (on a link's stream unless noted):
//
//	open      1  app_id string | channel string            first frame of the opener
//	ok        2  (empty)                                   the acceptor's answer
//	refused   3  reason string                             the acceptor's answer; the stream ends
//	join      4  uid string
//	leave     5  uid string | reason string
//	publish   6  track uvarint | id string | uid string | kind string
//	unpublish 7  track uvarint
//	data      8  track uvarint | message (the rest of the body)
//	keyframe  9  track uvarint                             of a track the receiver publishes
//	nack     10  track uvarint | count uvarint | count × seq u16   of a track the receiver publishes
//	close    11  reason string                             the sender's last frame
//	tail     12  track uvarint | seq u16                   the last packet sent on a track that paused
//	hello    16  jwt string | region string | edge_id string | sig (64 bytes) | media_id u64   connection stream, auth.go
//	ping     17  nonce u64                                 connection stream
//	pong     18  nonce u64                                 connection stream, echoing a ping
//
// A media datagram, the payload of a media packet (media.go):
//
//	link uvarint | track uvarint | seq u16 | RTP packet (at least 12 bytes)
//
// where link is the QUIC stream id of the link's stream, track the sender's track number (never 0, never reused
// on a link) and seq the link sequence number, counted per track from 0 and wrapping.

type frameType uint8

const (
	frameOpen      frameType = 1
	frameOK        frameType = 2
	frameRefused   frameType = 3
	frameJoin      frameType = 4
	frameLeave     frameType = 5
	framePublish   frameType = 6
	frameUnpublish frameType = 7
	frameData      frameType = 8
	frameKeyframe  frameType = 9
	frameNack      frameType = 10
	frameClose     frameType = 11
	frameTail      frameType = 12
	frameHello     frameType = 16
	framePing      frameType = 17
	framePong      frameType = 18
)

var frameNames = map[frameType]string{
	frameOpen: "open", frameOK: "ok", frameRefused: "refused", frameJoin: "join", frameLeave: "leave",
	framePublish: "publish", frameUnpublish: "unpublish", frameData: "data", frameKeyframe: "keyframe",
	frameNack: "nack", frameClose: "close", frameTail: "tail", frameHello: "hello", framePing: "ping", framePong: "pong",
}

func (t frameType) String() string {
	if n, ok := frameNames[t]; ok {
		return n
	}
	return fmt.Sprintf("frame type %d", uint8(t))
}

// Limits. A frame or field beyond them is malformed.
const (
	maxFrameBody = 32 << 10
	maxAppID     = 256
	maxChannel   = 1024
	maxRegion    = 32
	maxEdgeID    = 256
	maxJWT       = 16 << 10
	sigLen       = 64 // Ed25519
	maxNackSeqs  = 256
	maxTrack     = 1<<32 - 1
	// minRTP is the size of an RTP fixed header: a shorter datagram payload is not an RTP packet.
	minRTP = 12
)

// errMalformed is wrapped by every decoding error.
var errMalformed = errors.New("relay: malformed frame")

func malformed(t frameType, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", errMalformed, t, fmt.Sprintf(format, args...))
}

// frame is one control message; which fields are meaningful depends on typ.
type frame struct {
	typ frameType

	appID, channel string    // open
	uid, reason    string    // join, leave; reason also refused, close
	track          uint64    // publish, unpublish, data, keyframe, nack
	info           TrackInfo // publish
	msg            []byte    // data; aliases the decoded bytes
	seqs           []uint16  // nack; tail (one)
	jwt            string    // hello
	region, edgeID string    // hello
	sig            []byte    // hello
	mediaID        uint64    // hello: the sender's id of the connection, in media packets sent to it
	nonce          uint64    // ping, pong
}

// check reports what makes f invalid: the decoder runs it on every frame it reads and the senders on every frame
// they queue, so that nothing a peer would refuse is ever sent.
func (f *frame) check() error {
	t := f.typ
	str := func(field, s string, min, max int) error {
		switch {
		case len(s) < min:
			return malformed(t, "%s is empty", field)
		case len(s) > max:
			return malformed(t, "%s is longer than %d bytes", field, max)
		case !utf8.ValidString(s):
			return malformed(t, "%s is not UTF-8", field)
		}
		return nil
	}
	trk := func() error {
		if f.track == 0 || f.track > maxTrack {
			return malformed(t, "track number %d out of range", f.track)
		}
		return nil
	}
	switch t {
	case frameOpen:
		return errors.Join(str("app_id", f.appID, 1, maxAppID), str("channel", f.channel, 1, maxChannel))
	case frameOK:
		return nil
	case frameRefused, frameClose:
		return str("reason", f.reason, 0, protocol.MaxReasonLen)
	case frameJoin:
		return str("uid", f.uid, 1, protocol.MaxUIDLen)
	case frameLeave:
		return errors.Join(str("uid", f.uid, 1, protocol.MaxUIDLen), str("reason", f.reason, 0, protocol.MaxReasonLen))
	case framePublish:
		if err := errors.Join(trk(), str("id", f.info.ID, 1, protocol.MaxTrackIDLen),
			str("uid", f.info.UID, 1, protocol.MaxUIDLen)); err != nil {
			return err
		}
		if !protocol.Kind(f.info.Kind).Valid() {
			return malformed(t, "unknown kind %q", f.info.Kind)
		}
		return nil
	case frameUnpublish, frameKeyframe:
		return trk()
	case frameData:
		if len(f.msg) > protocol.MaxDataMessage {
			return malformed(t, "message of %d bytes, limit %d", len(f.msg), protocol.MaxDataMessage)
		}
		return trk()
	case frameTail:
		if len(f.seqs) != 1 {
			return malformed(t, "%d sequence numbers, want 1", len(f.seqs))
		}
		return trk()
	case frameNack:
		if len(f.seqs) == 0 || len(f.seqs) > maxNackSeqs {
			return malformed(t, "%d sequence numbers, want 1-%d", len(f.seqs), maxNackSeqs)
		}
		return trk()
	case frameHello:
		if len(f.sig) != sigLen {
			return malformed(t, "signature of %d bytes, want %d", len(f.sig), sigLen)
		}
		if f.mediaID == 0 {
			return malformed(t, "media id 0")
		}
		return errors.Join(str("jwt", f.jwt, 1, maxJWT), str("region", f.region, 1, maxRegion),
			str("edge_id", f.edgeID, 1, maxEdgeID))
	case framePing, framePong:
		return nil
	}
	return fmt.Errorf("%w: unknown %s", errMalformed, t)
}

// appendFrame appends f's encoding to dst. f must pass check.
func appendFrame(dst []byte, f *frame) []byte {
	dst = append(dst, byte(f.typ), 0, 0, 0) // room for the length, moved below if shorter
	start := len(dst)
	str := func(s string) { dst = append(binary.AppendUvarint(dst, uint64(len(s))), s...) }
	switch f.typ {
	case frameOpen:
		str(f.appID)
		str(f.channel)
	case frameRefused, frameClose:
		str(f.reason)
	case frameJoin:
		str(f.uid)
	case frameLeave:
		str(f.uid)
		str(f.reason)
	case framePublish:
		dst = binary.AppendUvarint(dst, f.track)
		str(f.info.ID)
		str(f.info.UID)
		str(f.info.Kind)
	case frameUnpublish, frameKeyframe:
		dst = binary.AppendUvarint(dst, f.track)
	case frameData:
		dst = append(binary.AppendUvarint(dst, f.track), f.msg...)
	case frameTail:
		dst = binary.BigEndian.AppendUint16(binary.AppendUvarint(dst, f.track), f.seqs[0])
	case frameNack:
		dst = binary.AppendUvarint(dst, f.track)
		dst = binary.AppendUvarint(dst, uint64(len(f.seqs)))
		for _, s := range f.seqs {
			dst = binary.BigEndian.AppendUint16(dst, s)
		}
	case frameHello:
		str(f.jwt)
		str(f.region)
		str(f.edgeID)
		dst = append(dst, f.sig...)
		dst = binary.BigEndian.AppendUint64(dst, f.mediaID)
	case framePing, framePong:
		dst = binary.BigEndian.AppendUint64(dst, f.nonce)
	}
	// Write the body length in the three bytes reserved (maxFrameBody needs at most three) and close the gap.
	n := len(dst) - start
	var l [binary.MaxVarintLen64]byte
	ln := binary.PutUvarint(l[:], uint64(n))
	copy(dst[start-3:], l[:ln])
	if ln < 3 {
		copy(dst[start-3+ln:], dst[start:])
		dst = dst[:len(dst)-(3-ln)]
	}
	return dst
}

// reader consumes a frame body; its methods record the first error and return zero values after it.
type reader struct {
	t   frameType
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = malformed(r.t, format, args...)
	}
}

func (r *reader) uvarint(field string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("%s: bad varint", field)
		return 0
	}
	if n != uvarintLen(v) {
		r.fail("%s: varint not in shortest form", field)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.fail("%s: truncated", field)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) string(field string, max int) string {
	n := r.uvarint(field)
	if r.err == nil && n > uint64(max) {
		r.fail("%s is longer than %d bytes", field, max)
	}
	return string(r.bytes(field, int(min(n, uint64(max)))))
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

// decodeFrame decodes one frame of type t from its body; the result's msg aliases body.
func decodeFrame(t frameType, body []byte) (frame, error) {
	if len(body) > maxFrameBody {
		return frame{}, malformed(t, "body of %d bytes, limit %d", len(body), maxFrameBody)
	}
	r := &reader{t: t, b: body}
	f := frame{typ: t}
	switch t {
	case frameOpen:
		f.appID = r.string("app_id", maxAppID)
		f.channel = r.string("channel", maxChannel)
	case frameOK:
	case frameRefused, frameClose:
		f.reason = r.string("reason", protocol.MaxReasonLen)
	case frameJoin:
		f.uid = r.string("uid", protocol.MaxUIDLen)
	case frameLeave:
		f.uid = r.string("uid", protocol.MaxUIDLen)
		f.reason = r.string("reason", protocol.MaxReasonLen)
	case framePublish:
		f.track = r.uvarint("track")
		f.info.ID = r.string("id", protocol.MaxTrackIDLen)
		f.info.UID = r.string("uid", protocol.MaxUIDLen)
		f.info.Kind = r.string("kind", 8)
	case frameUnpublish, frameKeyframe:
		f.track = r.uvarint("track")
	case frameData:
		f.track = r.uvarint("track")
		if r.err == nil {
			f.msg, r.b = r.b, nil
		}
	case frameTail:
		f.track = r.uvarint("track")
		if b := r.bytes("seq", 2); r.err == nil {
			f.seqs = []uint16{binary.BigEndian.Uint16(b)}
		}
	case frameNack:
		f.track = r.uvarint("track")
		n := r.uvarint("count")
		if r.err == nil && (n == 0 || n > maxNackSeqs) {
			r.fail("%d sequence numbers, want 1-%d", n, maxNackSeqs)
		}
		if b := r.bytes("seqs", 2*int(min(n, maxNackSeqs))); r.err == nil {
			f.seqs = make([]uint16, n)
			for i := range f.seqs {
				f.seqs[i] = binary.BigEndian.Uint16(b[2*i:])
			}
		}
	case frameHello:
		f.jwt = r.string("jwt", maxJWT)
		f.region = r.string("region", maxRegion)
		f.edgeID = r.string("edge_id", maxEdgeID)
		f.sig = r.bytes("sig", sigLen)
		if b := r.bytes("media_id", 8); r.err == nil {
			f.mediaID = binary.BigEndian.Uint64(b)
		}
	case framePing, framePong:
		if b := r.bytes("nonce", 8); r.err == nil {
			f.nonce = binary.BigEndian.Uint64(b)
		}
	default:
		return frame{}, fmt.Errorf("%w: unknown %s", errMalformed, t)
	}
	if r.err != nil {
		return frame{}, r.err
	}
	if len(r.b) > 0 {
		return frame{}, malformed(t, "%d bytes after the body", len(r.b))
	}
	if err := f.check(); err != nil {
		return frame{}, err
	}
	return f, nil
}

// parseFrame decodes b, which must be exactly one frame (type, length and body).
func parseFrame(b []byte) (frame, error) {
	if len(b) == 0 {
		return frame{}, fmt.Errorf("%w: empty", errMalformed)
	}
	t := frameType(b[0])
	r := &reader{t: t, b: b[1:]}
	n := r.uvarint("length")
	if r.err != nil {
		return frame{}, r.err
	}
	if n != uint64(len(r.b)) {
		return frame{}, malformed(t, "length %d, body of %d bytes", n, len(r.b))
	}
	return decodeFrame(t, r.b)
}

// frameReader reads frames from a stream into one reused buffer.
type frameReader struct {
	r   *bufio.Reader
	buf []byte
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 4096)}
}

// next reads the next frame; a data frame's msg is valid until the following call.
func (fr *frameReader) next() (frame, error) {
	tb, err := fr.r.ReadByte()
	if err != nil {
		return frame{}, err
	}
	t := frameType(tb)
	if _, ok := frameNames[t]; !ok {
		return frame{}, fmt.Errorf("%w: unknown %s", errMalformed, t) // without waiting for a body
	}
	// The length: at most three bytes (maxFrameBody < 1<<21), in shortest form as parseFrame requires.
	var lb [3]byte
	ln := 0
	for {
		c, err := fr.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return frame{}, fmt.Errorf("%w: %s: length: %w", errMalformed, t, err)
		}
		if ln == len(lb) {
			return frame{}, malformed(t, "length: varint longer than %d bytes", len(lb))
		}
		lb[ln] = c
		ln++
		if c < 0x80 {
			break
		}
	}
	r := &reader{t: t, b: lb[:ln]}
	n := r.uvarint("length")
	if r.err != nil {
		return frame{}, r.err
	}
	if n > maxFrameBody {
		return frame{}, malformed(t, "body of %d bytes, limit %d", n, maxFrameBody)
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n, max(n, 1024))
	}
	fr.buf = fr.buf[:n]
	if _, err := io.ReadFull(fr.r, fr.buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return frame{}, err
	}
	return decodeFrame(t, fr.buf)
}

// appendDatagramHeader appends the header of a media datagram.
func appendDatagramHeader(dst []byte, link, track uint64, seq uint16) []byte {
	dst = binary.AppendUvarint(dst, link)
	dst = binary.AppendUvarint(dst, track)
	return binary.BigEndian.AppendUint16(dst, seq)
}

// errDatagram is wrapped by every datagram decoding error.
var errDatagram = errors.New("relay: malformed datagram")

// parseDatagram splits a media datagram; pkt aliases b.
func parseDatagram(b []byte) (link, track uint64, seq uint16, pkt []byte, err error) {
	r := &reader{b: b}
	link = r.uvarint("link")
	track = r.uvarint("track")
	s := r.bytes("seq", 2)
	switch {
	case r.err != nil:
		return 0, 0, 0, nil, fmt.Errorf("%w: truncated header or long varint", errDatagram)
	case track == 0 || track > maxTrack:
		return 0, 0, 0, nil, fmt.Errorf("%w: track number %d out of range", errDatagram, track)
	case len(r.b) < minRTP:
		return 0, 0, 0, nil, fmt.Errorf("%w: RTP packet of %d bytes", errDatagram, len(r.b))
	}
	return link, track, binary.BigEndian.Uint16(s), r.b, nil
}
