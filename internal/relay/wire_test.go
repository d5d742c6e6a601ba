package relay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stoa-rtc/stoa/internal/protocol"
)

// frames has one valid frame of every type.
var frames = []frame{
	{typ: frameOpen, appID: "0123456789abcdef0123456789abcdef", channel: "room 1"},
	{typ: frameOK},
	{typ: frameRefused, reason: "channel not held by this edge"},
	{typ: frameJoin, uid: "alice"},
	{typ: frameLeave, uid: "alice", reason: "timeout"},
	{typ: frameLeave, uid: "bob"},
	{typ: framePublish, track: 1, info: TrackInfo{ID: "t1", UID: "alice", Kind: "video"}},
	{typ: framePublish, track: maxTrack, info: TrackInfo{ID: "t2", UID: "bob", Kind: "data"}},
	{typ: frameUnpublish, track: 300},
	{typ: frameData, track: 2, msg: []byte("hello")},
	{typ: frameData, track: 2, msg: []byte{}},
	{typ: frameData, track: 2, msg: bytes.Repeat([]byte{0xAB}, protocol.MaxDataMessage)},
	{typ: frameKeyframe, track: 7},
	{typ: frameNack, track: 7, seqs: []uint16{0, 1, 65535}},
	{typ: frameClose, reason: "closed"},
	{typ: frameTail, track: 3, seqs: []uint16{65535}},
	{typ: frameHello, jwt: "eyJ0eXAiOiJKV1QifQ.e30.sig", region: "eu", edgeID: "edge-1", sig: bytes.Repeat([]byte{1}, sigLen), mediaID: 1<<64 - 1},
	{typ: framePing, nonce: 1},
	{typ: framePong, nonce: 1<<64 - 1},
}

func TestFrameRoundTrip(t *testing.T) {
	var stream []byte
	for _, f := range frames {
		if err := f.check(); err != nil {
			t.Fatalf("%s: %v", f.typ, err)
		}
		b := appendFrame(nil, &f)
		got, err := parseFrame(b)
		if err != nil {
			t.Fatalf("%s: %v", f.typ, err)
		}
		if re := appendFrame(nil, &got); !bytes.Equal(re, b) {
			t.Errorf("%s: %x re-encoded as %x", f.typ, b, re)
		}
		stream = append(stream, b...)
	}
	fr := newFrameReader(bytes.NewReader(stream))
	for _, want := range frames {
		got, err := fr.next()
		if err != nil {
			t.Fatalf("reading %s: %v", want.typ, err)
		}
		if !bytes.Equal(appendFrame(nil, &got), appendFrame(nil, &want)) {
			t.Errorf("read %+v, want %+v", got, want)
		}
	}
	if _, err := fr.next(); err != io.EOF {
		t.Errorf("after the last frame: %v", err)
	}
}

func TestFrameMalformed(t *testing.T) {
	enc := func(f frame) []byte { return appendFrame(nil, &f) }
	body := func(t frameType, b ...byte) []byte {
		return append(binary.AppendUvarint([]byte{byte(t)}, uint64(len(b))), b...)
	}
	long := func(n int) []byte { return append(binary.AppendUvarint(nil, uint64(n)), strings.Repeat("a", n)...) }
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"unknown type", body(99), "unknown frame type 99"},
		{"length beyond the body", append(enc(frame{typ: frameJoin, uid: "a"}), 'x'), "length"},
		{"truncated", enc(frame{typ: frameJoin, uid: "alice"})[:4], "length"},
		{"trailing bytes", body(frameOK, 0), "after the body"},
		{"empty uid", body(frameJoin, 0), "uid is empty"},
		{"long uid", body(frameJoin, long(protocol.MaxUIDLen+1)...), "uid is longer"},
		{"uid not UTF-8", body(frameJoin, 1, 0xff), "not UTF-8"},
		{"track 0", body(frameUnpublish, 0), "track number 0"},
		{"track too large", body(frameKeyframe, binary.AppendUvarint(nil, maxTrack+1)...), "out of range"},
		{"long varint", body(frameUnpublish, 0x81, 0x00), "shortest form"},
		{"bad varint", body(frameUnpublish, 0x80), "bad varint"},
		{"unknown kind", enc(frame{typ: framePublish, track: 1, info: TrackInfo{ID: "t", UID: "u", Kind: "aud"}}), "unknown kind"},
		{"no seqs", body(frameNack, 1, 0), "0 sequence numbers"},
		{"too many seqs", body(frameNack, append([]byte{1}, binary.AppendUvarint(nil, maxNackSeqs+1)...)...), "sequence numbers"},
		{"seqs truncated", body(frameNack, 1, 2, 0, 1), "truncated"},
		{"short signature", enc(frame{typ: frameHello, jwt: "j", region: "eu", edgeID: "e", sig: make([]byte, 10), mediaID: 1}), "sig: truncated"},
		{"media id 0", enc(frame{typ: frameHello, jwt: "j", region: "eu", edgeID: "e", sig: make([]byte, sigLen)}), "media id 0"},
		{"ping truncated", body(framePing, 1, 2, 3), "truncated"},
		{"tail without seq", body(frameTail, 1, 2), "seq: truncated"},
		{"data too large", body(frameData, append([]byte{1}, make([]byte, protocol.MaxDataMessage+1)...)...), "message of"},
		{"body too large", body(frameData, append([]byte{1}, make([]byte, maxFrameBody)...)...), "limit"},
	} {
		_, err := parseFrame(tc.b)
		if !errors.Is(err, errMalformed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	for _, f := range []frame{
		{typ: framePublish, track: 1, info: TrackInfo{ID: "t", UID: "u", Kind: "aud"}},
		{typ: frameOpen, appID: "a", channel: strings.Repeat("c", maxChannel+1)},
		{typ: frameHello, jwt: "j", region: "eu", edgeID: "e", sig: make([]byte, 10)},
		{typ: frameType(42)},
	} {
		if err := f.check(); !errors.Is(err, errMalformed) {
			t.Errorf("%+v passed the check", f)
		}
	}
}

// TestFrameReaderLimits: the stream reader refuses what parseFrame refuses, before reading a large body.
func TestFrameReaderLimits(t *testing.T) {
	for _, b := range [][]byte{
		{byte(frameJoin), 0x80, 0x80, 0x80, 0x01},    // a four-byte length
		{byte(frameJoin), 0x80, 0x80, 0x04},          // 65536 bytes, beyond maxFrameBody
		{byte(frameJoin), 0x85, 0x00, 'a', 'b'},      // a length not in shortest form
		{byte(frameJoin), 0x05, 0x03, 'a', 'b', 'c'}, // truncated body
		{byte(frameJoin), 0x80},                      // truncated length
	} {
		_, err := newFrameReader(bytes.NewReader(b)).next()
		if err == nil || err == io.EOF {
			t.Errorf("%x: %v", b, err)
		}
	}
}

func TestDatagram(t *testing.T) {
	pkt := rtpPacket(9, 100)
	for _, tc := range []struct{ link, track uint64 }{{0, 1}, {4, 2}, {1 << 40, maxTrack}} {
		b := append(appendDatagramHeader(nil, tc.link, tc.track, 65535), pkt...)
		link, track, seq, got, err := parseDatagram(b)
		if err != nil || link != tc.link || track != tc.track || seq != 65535 || !bytes.Equal(got, pkt) {
			t.Errorf("%+v: %d %d %d %v", tc, link, track, seq, err)
		}
	}
	for _, b := range [][]byte{
		nil,
		{0},
		append(appendDatagramHeader(nil, 4, 0, 1), pkt...),
		append(appendDatagramHeader(nil, 4, maxTrack+1, 1), pkt...),
		append(appendDatagramHeader(nil, 4, 1, 1), pkt[:minRTP-1]...),
		append([]byte{0x84, 0x00, 1, 0, 1}, pkt...), // long varint
	} {
		if _, _, _, _, err := parseDatagram(b); !errors.Is(err, errDatagram) {
			t.Errorf("%x: %v", b, err)
		}
	}
}

// FuzzParseFrame: a frame that decodes is valid and re-encodes to the same bytes (one encoding per frame).
func FuzzParseFrame(f *testing.F) {
	for _, fr := range frames {
		if len(fr.msg) < 1024 { // small inputs: the fuzzer mutates them faster
			f.Add(appendFrame(nil, &fr))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := parseFrame(b)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error without errMalformed: %v", err)
			}
			return
		}
		if err := fr.check(); err != nil {
			t.Fatalf("decoded an invalid frame: %v", err)
		}
		if re := appendFrame(nil, &fr); !bytes.Equal(re, b) {
			t.Fatalf("%x re-encoded as %x", b, re)
		}
	})
}

// FuzzReadFrames: the frames read from a stream re-encode to the start of the stream.
func FuzzReadFrames(f *testing.F) {
	var all []byte
	for _, fr := range frames {
		if len(fr.msg) < 1024 { // small inputs: the fuzzer mutates them faster
			all = appendFrame(all, &fr)
		}
	}
	f.Add(all)
	f.Add(all[:len(all)-3])
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := newFrameReader(bytes.NewReader(b))
		var out []byte
		for {
			x, err := fr.next()
			if err != nil {
				break
			}
			out = appendFrame(out, &x)
		}
		if !bytes.HasPrefix(b, out) {
			t.Fatalf("read frames re-encode as %x, not a prefix of %x", out, b)
		}
	})
}

// FuzzParseDatagram: a datagram that decodes re-encodes to the same bytes. Seeds: testdata/fuzz.
func FuzzParseDatagram(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		link, track, seq, pkt, err := parseDatagram(b)
		if err != nil {
			return
		}
		if re := append(appendDatagramHeader(nil, link, track, seq), pkt...); !bytes.Equal(re, b) {
			t.Fatalf("%x re-encoded as %x", b, re)
		}
	})
}
