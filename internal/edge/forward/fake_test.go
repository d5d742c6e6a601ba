package forward

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Fakes at the seam between a Track and Pion: a TrackLocalContext as an
// RTPSender builds it, and a TrackLocalWriter that records what it is given.

var (
	opusCap = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
		SDPFmtpLine: "minptime=10;useinbandfec=1"}
	vp8Cap = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}

	// subscriberCodecs is what a subscriber connection negotiated; the
	// payload types differ from the publisher's 111 and 96 on purpose, so
	// tests see that each binding uses its own.
	subscriberCodecs = []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/rtx", ClockRate: 90000, SDPFmtpLine: "apt=98"}, PayloadType: 99},
		{RTPCodecCapability: vp8Cap, PayloadType: 98},
		{RTPCodecCapability: opusCap, PayloadType: 109},
	}
)

type fakeContext struct {
	id     string
	ssrc   webrtc.SSRC
	codecs []webrtc.RTPCodecParameters
	writer webrtc.TrackLocalWriter
}

func (c *fakeContext) CodecParameters() []webrtc.RTPCodecParameters           { return c.codecs }
func (c *fakeContext) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter { return nil }
func (c *fakeContext) SSRC() webrtc.SSRC                                      { return c.ssrc }
func (c *fakeContext) SSRCRetransmission() webrtc.SSRC                        { return 0 }
func (c *fakeContext) SSRCForwardErrorCorrection() webrtc.SSRC                { return 0 }
func (c *fakeContext) WriteStream() webrtc.TrackLocalWriter                   { return c.writer }
func (c *fakeContext) ID() string                                             { return c.id }
func (c *fakeContext) RTCPReader() interceptor.RTCPReader                     { return nil }

// sent is one packet as a fakeWriter received it.
type sent struct {
	hdr     rtp.Header // deep copy
	payload []byte     // copy of the bytes
	orig    []byte     // the slice itself, to check it was not copied
}

// fakeWriter records packets. After closed is set, a write is a test
// failure: the Track promised not to write after Unbind.
type fakeWriter struct {
	t      testing.TB
	mu     sync.Mutex
	pkts   []sent
	fail   error
	closed atomic.Bool
	// undelivered is how many writes to swallow, reporting 0 bytes and
	// no error, as Pion does before DTLS-SRTP is up.
	undelivered int
}

func (w *fakeWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if w.closed.Load() {
		w.t.Errorf("write after Unbind returned: seq %d", h.SequenceNumber)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil {
		return 0, w.fail
	}
	if w.undelivered > 0 {
		w.undelivered--
		return 0, nil
	}
	w.pkts = append(w.pkts, sent{hdr: h.Clone(), payload: append([]byte(nil), payload...), orig: payload})
	return h.MarshalSize() + len(payload), nil
}

func (w *fakeWriter) Write([]byte) (int, error) { return 0, errors.New("fakeWriter: Write not used") }

func (w *fakeWriter) packets() []sent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]sent(nil), w.pkts...)
}

func (w *fakeWriter) reset() {
	w.mu.Lock()
	w.pkts = nil
	w.mu.Unlock()
}

// discardWriter is the cheapest writer, for benchmarks and allocation
// counts. It is used by one forwarding goroutine only.
type discardWriter struct{ n, bytes int }

func (w *discardWriter) WriteRTP(_ *rtp.Header, payload []byte) (int, error) {
	w.n++
	w.bytes += len(payload)
	return len(payload), nil
}

func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// fakeClock is a manually advanced clock in nanoseconds.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() int64           { return c.ns.Load() }
func (c *fakeClock) advance(d int64)      { c.ns.Add(d) }
func (c *fakeClock) advanceMillis(ms int) { c.ns.Add(int64(ms) * 1e6) }

// testTrack returns a Track with a fake clock and fixed initial downstream
// numbers (seq0, ts0) for every binding.
func testTrack(t testing.TB, codec webrtc.RTPCodecCapability, seq0 uint16, ts0 uint32, opts ...Option) (*Track, *fakeClock) {
	t.Helper()
	tr, err := NewTrack("track", "stream", codec, opts...)
	if err != nil {
		t.Fatalf("NewTrack: %v", err)
	}
	clk := &fakeClock{}
	tr.now = clk.now
	tr.random = func() (uint16, uint32) { return seq0, ts0 }
	return tr, clk
}

// bind binds a fake subscriber to tr and returns its writer.
func bind(t testing.TB, tr *Track, id string, ssrc webrtc.SSRC) *fakeWriter {
	t.Helper()
	w := &fakeWriter{t: t}
	if _, err := tr.Bind(&fakeContext{id: id, ssrc: ssrc, codecs: subscriberCodecs, writer: w}); err != nil {
		t.Errorf("Bind %s: %v", id, err) // not Fatal: also called from other goroutines
	}
	return w
}

func unbind(t testing.TB, tr *Track, id string) {
	t.Helper()
	if err := tr.Unbind(&fakeContext{id: id}); err != nil {
		t.Errorf("Unbind %s: %v", id, err)
	}
}

// Payloads as Stoa's packetizer produces them: a VP8 payload descriptor,
// then the SFrame-protected frame whose first bytes are in the clear
// (docs/e2ee.md).
var (
	// keyframeStart: X=0, S=1, PID=0; VP8 payload header 0x10 (P=0).
	keyframeStart = []byte{0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0xf1, 0xaa, 0xbb}
	// keyframeCont: S=0, a later packet of the same frame.
	keyframeCont = []byte{0x00, 0xcc, 0xdd, 0xee}
	// deltaStart: S=1, PID=0; VP8 payload header 0x31 (P=1).
	deltaStart = []byte{0x10, 0x31, 0x01, 0x00, 0xf2, 0x51, 0xd4}
	opusFrame  = []byte{0x78, 0xf0, 0x01, 0x23, 0x45}
)

// upstream builds an upstream packet header.
func upstream(ssrc uint32, seq uint16, ts uint32) *rtp.Header {
	return &rtp.Header{Version: 2, PayloadType: 96, SSRC: ssrc, SequenceNumber: seq, Timestamp: ts}
}
