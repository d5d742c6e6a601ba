package forward

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// DefaultKeyframeInterval is the default minimum time between two keyframe
// requests from one Track. A keyframe takes at least a round trip to arrive;
// asking again sooner only makes the publisher send more of them.
const DefaultKeyframeInterval = 500 * time.Millisecond

// Option configures a Track.
type Option func(*config)

type config struct {
	rid              string
	onKeyframe       func(upstreamSSRC uint32)
	keyframeInterval time.Duration
}

// WithRID sets the RTP stream ID (RFC 8852) the Track reports from RID.
func WithRID(rid string) Option {
	return func(c *config) { c.rid = rid }
}

// WithKeyframeRequest sets the function a video Track calls when it needs a
// keyframe from the publisher: a binding is waiting for one, or a subscriber
// sent a PLI or FIR (see [Track.ReadRTCP]). upstreamSSRC is the SSRC of the last
// packet given to Forward, or 0 before the first; the edge typically sends
// a PLI (RFC 4585 §6.3.1) for it on the publisher's PeerConnection.
//
// Calls are throttled (see [WithKeyframeInterval]) and may come from the
// forwarding goroutine, so fn must not block for long.
func WithKeyframeRequest(fn func(upstreamSSRC uint32)) Option {
	return func(c *config) { c.onKeyframe = fn }
}

// WithKeyframeInterval sets the minimum time between two keyframe requests;
// the default is [DefaultKeyframeInterval]. Zero or less disables throttling.
func WithKeyframeInterval(d time.Duration) Option {
	return func(c *config) { c.keyframeInterval = d }
}

// Track forwards one published track to any number of subscriber
// PeerConnections. It implements [webrtc.TrackLocal]; give the same Track to
// AddTrack on every subscriber connection. Create one with [NewTrack].
type Track struct {
	id, streamID, rid string
	codec             webrtc.RTPCodecCapability
	kind              webrtc.RTPCodecType
	// canStart reports whether a payload may be the first one a binding
	// forwards from a source; nil means any payload may.
	canStart func(payload []byte) bool
	// minGap is the least timestamp advance across a source change: one
	// frame, so the first packet of the new source never shares a
	// timestamp with the last of the old.
	minGap uint32

	onKeyframe       func(upstreamSSRC uint32)
	keyframeInterval int64 // nanoseconds
	// nextKeyframe is the clock reading before which keyframe requests are
	// dropped.
	nextKeyframe atomic.Int64

	// now reads the clock in nanoseconds; tests replace it.
	now func() int64
	// random returns a new binding's initial sequence number and timestamp.
	random func() (uint16, uint32)

	// mu serialises Bind and Unbind; bindings is replaced, never modified,
	// so Forward reads it without locking.
	mu       sync.Mutex
	bindings atomic.Pointer[[]*binding]

	// src is 1<<32 | the SSRC of the last packet forwarded, 0 before the
	// first. epoch counts source changes, seen or announced; a binding
	// anchored in an older epoch re-anchors.
	src   atomic.Uint64
	epoch atomic.Uint64

	// history keeps a video Track's latest packets for NACKs; nil for audio, which is not retransmitted.
	history *history

	packetsIn, bytesIn         atomic.Uint64
	packetsOut, bytesOut       atomic.Uint64
	dropped, writeErrors       atomic.Uint64
	keyframeRequests, switches atomic.Uint64
	retransmits                atomic.Uint64
}

var _ webrtc.TrackLocal = (*Track)(nil)

// binding is one subscriber connection's use of a Track.
type binding struct {
	id          string
	ssrc        uint32
	payloadType uint8
	writer      webrtc.TrackLocalWriter
	initSeq     uint16
	initTS      uint32

	// mu is held while a packet is rewritten and written, and by Unbind,
	// so that no packet reaches writer once Unbind has returned.
	mu      sync.Mutex
	unbound bool
	rw      rewriter
	// hdr is the header written; it lives here, not on the stack, so
	// passing it to the writer interface does not allocate.
	hdr rtp.Header

	// notReady reports that the writer refused the last packet the
	// binding tried to start from; see forward. While it is set, the
	// binding asks for keyframes only at retryAt, backing off.
	notReady bool
	backoff  int64 // nanoseconds
	retryAt  int64 // clock reading
}

// maxStartBackoff bounds the wait between keyframe requests for a binding
// whose writer is not ready, once the backoff has grown.
const maxStartBackoff = int64(8 * time.Second)

// NewTrack returns a Track with the given track ID (the msid track id),
// stream ID (the msid stream id) and codec. The codec must be audio or VP8
// video: video bindings start at a keyframe, and VP8 is the codec whose
// keyframes this package recognises.
func NewTrack(id, streamID string, codec webrtc.RTPCodecCapability, opts ...Option) (*Track, error) {
	cfg := config{keyframeInterval: DefaultKeyframeInterval}
	for _, o := range opts {
		o(&cfg)
	}
	if codec.ClockRate == 0 {
		return nil, fmt.Errorf("forward: track %q: codec %q has no clock rate", id, codec.MimeType)
	}
	t := &Track{
		id:               id,
		streamID:         streamID,
		rid:              cfg.rid,
		codec:            codec,
		onKeyframe:       cfg.onKeyframe,
		keyframeInterval: max(int64(cfg.keyframeInterval), 0),
		now:              monotonicClock(),
		random:           cryptoRandom,
	}
	mime := strings.ToLower(codec.MimeType)
	switch {
	case strings.HasPrefix(mime, "audio/"):
		t.kind = webrtc.RTPCodecTypeAudio
		t.minGap = codec.ClockRate / 50 // 20 ms, the usual Opus frame
	case mime == strings.ToLower(webrtc.MimeTypeVP8):
		t.kind = webrtc.RTPCodecTypeVideo
		t.canStart = isVP8Keyframe
		t.minGap = codec.ClockRate / 30 // one frame at 30 fps
		t.history = &history{}
	default:
		return nil, fmt.Errorf("forward: track %q: unsupported codec %q (want audio, or %s video)",
			id, codec.MimeType, webrtc.MimeTypeVP8)
	}
	t.minGap = max(t.minGap, 1)
	t.bindings.Store(new([]*binding))
	return t, nil
}

// cryptoRandom draws initial downstream numbers from crypto/rand, as RFC 3550
// §5.1 asks, so they are unpredictable to an attacker outside the hop.
func cryptoRandom() (uint16, uint32) {
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	return binary.BigEndian.Uint16(b[:2]), binary.BigEndian.Uint32(b[2:])
}

// ID returns the track ID given to NewTrack.
func (t *Track) ID() string { return t.id }

// StreamID returns the stream ID given to NewTrack.
func (t *Track) StreamID() string { return t.streamID }

// RID returns the RTP stream ID set with WithRID, or "".
func (t *Track) RID() string { return t.rid }

// Kind reports whether the Track carries audio or video.
func (t *Track) Kind() webrtc.RTPCodecType { return t.kind }

// Codec returns the codec given to NewTrack.
func (t *Track) Codec() webrtc.RTPCodecCapability { return t.codec }

// Bind is called by Pion when a subscriber connection starts sending the
// Track. It picks the connection's payload type for the Track's codec and
// gives the binding its own random initial sequence number and timestamp.
func (t *Track) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codec, ok := matchCodec(t.codec, ctx.CodecParameters())
	if !ok {
		return webrtc.RTPCodecParameters{}, fmt.Errorf("forward: bind track %q: %w", t.id, webrtc.ErrUnsupportedCodec)
	}
	w := ctx.WriteStream()
	if w == nil {
		return webrtc.RTPCodecParameters{}, fmt.Errorf("forward: bind track %q: %w", t.id, errNoWriteStream)
	}
	seq, ts := t.random()
	b := &binding{
		id:          ctx.ID(),
		ssrc:        uint32(ctx.SSRC()),
		payloadType: uint8(codec.PayloadType),
		writer:      w,
		initSeq:     seq,
		initTS:      ts,
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.bindings.Load()
	next := make([]*binding, 0, len(old)+1)
	for _, o := range old {
		if o.id == b.id {
			// Bound again without Unbind: the new context replaces the
			// old one, so the connection never receives the Track twice.
			o.close()
			continue
		}
		next = append(next, o)
	}
	next = append(next, b)
	t.bindings.Store(&next)
	return codec, nil
}

var errNoWriteStream = errors.New("no write stream")

// Unbind is called by Pion when a subscriber connection stops sending the
// Track (RemoveTrack, ReplaceTrack, Close). Once it returns, no further
// packet is written to that connection's stream.
func (t *Track) Unbind(ctx webrtc.TrackLocalContext) error {
	id := ctx.ID()
	t.mu.Lock()
	old := *t.bindings.Load()
	var gone *binding
	next := make([]*binding, 0, len(old))
	for _, o := range old {
		if gone == nil && o.id == id {
			gone = o
			continue
		}
		next = append(next, o)
	}
	if gone != nil {
		t.bindings.Store(&next)
	}
	t.mu.Unlock()

	if gone == nil {
		return fmt.Errorf("forward: unbind track %q from %q: %w", t.id, id, webrtc.ErrUnbindFailed)
	}
	// A Forward that loaded the old slice may still be writing; close
	// waits for it and stops any later one.
	gone.close()
	return nil
}

func (b *binding) close() {
	b.mu.Lock()
	b.unbound = true
	b.mu.Unlock()
}

// matchCodec finds the connection's parameters for want: first by MIME
// type, clock rate, channels and fmtp line, then without the fmtp line, as
// Pion's own tracks do. The payload type comes from the match.
func matchCodec(want webrtc.RTPCodecCapability, have []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	var partial webrtc.RTPCodecParameters
	found := false
	for _, c := range have {
		if !strings.EqualFold(c.MimeType, want.MimeType) || c.ClockRate != want.ClockRate ||
			(c.Channels != want.Channels && c.Channels != 0 && want.Channels != 0) {
			continue
		}
		if c.SDPFmtpLine == want.SDPFmtpLine {
			return c, true
		}
		if !found {
			partial, found = c, true
		}
	}
	return partial, found
}

// WriteRTP forwards p to every binding, like Forward. It has the signature
// of [webrtc.TrackLocalStaticRTP.WriteRTP], so code that feeds one can feed
// a Track. It fails only for a nil packet; see Forward for why write errors
// are counted, not returned.
func (t *Track) WriteRTP(p *rtp.Packet) error {
	if p == nil {
		return errNilPacket
	}
	t.Forward(&p.Header, p.Payload)
	return nil
}

var errNilPacket = errors.New("forward: nil packet")

// Forward writes one upstream packet to every binding: a copy of h with the
// binding's SSRC, payload type, sequence number and timestamp, no header
// extensions, and payload itself, unchanged and uncopied. A video binding
// that waits for a keyframe skips the packet and asks for a keyframe (see
// the package documentation for when).
//
// Neither h nor payload is modified or retained once Forward returns (Pion's
// write path encrypts into its own buffer, and a video Track keeps a copy for
// retransmissions), so the caller may reuse them.
//
// A failed write to one subscriber is counted in Stats.WriteErrors and not
// returned: it is that subscriber's problem, not the publisher's, and the
// edge learns of dead connections from their state changes.
//
// Forward does not allocate.
func (t *Track) Forward(h *rtp.Header, payload []byte) {
	epoch := t.sourceEpoch(h.SSRC)
	t.packetsIn.Add(1)
	t.bytesIn.Add(uint64(len(payload)))

	bs := *t.bindings.Load()
	if len(bs) == 0 {
		return
	}
	if t.history != nil {
		t.history.record(h, payload, epoch)
	}
	canStart := t.canStart == nil || t.canStart(payload)
	// The clock is read only if a binding anchors, at most once per
	// packet: it costs more than the rest of a forward on some machines.
	now := int64(-1)
	var sent, failed, dropped int
	waiting := false
	for _, b := range bs {
		switch b.forward(t, h, payload, epoch, &now, canStart) {
		case wrote:
			sent++
		case writeFailed:
			failed++
		case waitKeyframe:
			dropped++
			waiting = true
		case waitQuiet, tooOld:
			dropped++
		}
	}
	if sent > 0 {
		t.packetsOut.Add(uint64(sent))
		t.bytesOut.Add(uint64(sent) * uint64(len(payload)))
	}
	if failed > 0 {
		t.writeErrors.Add(uint64(failed))
	}
	if dropped > 0 {
		t.dropped.Add(uint64(dropped))
	}
	if waiting {
		t.RequestKeyframe()
	}
}

type outcome uint8

const (
	wrote outcome = iota
	writeFailed
	waitKeyframe // not started in this source; ask for a keyframe
	waitQuiet    // not started in this source; do not ask now
	tooOld       // older than the binding's anchor
	unbound
)

// forward rewrites and writes one packet for the binding. now caches the
// clock reading for the packet; -1 means not read yet.
func (b *binding) forward(t *Track, h *rtp.Header, payload []byte, epoch uint64, now *int64, canStart bool) outcome {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.unbound {
		return unbound
	}
	anchoring := !b.rw.anchored || b.rw.epoch != epoch
	var before rewriter
	if anchoring {
		if *now < 0 {
			*now = t.now()
		}
		if !canStart {
			return b.wait(t, *now)
		}
		before = b.rw
		b.rw.anchor(h.SequenceNumber, h.Timestamp, epoch, *now, t.codec.ClockRate, t.minGap, b.initSeq, b.initTS)
	}
	seq, ts, ok := b.rw.rewrite(h.SequenceNumber, h.Timestamp)
	if !ok {
		return tooOld
	}
	// A header with P set but no padding size cannot be marshalled; pass
	// padding on only when it is described.
	padding := h.Padding && h.PaddingSize > 0
	b.hdr = rtp.Header{
		Version:        2,
		Padding:        padding,
		Marker:         h.Marker,
		PayloadType:    b.payloadType,
		SequenceNumber: seq,
		Timestamp:      ts,
		SSRC:           b.ssrc,
		CSRC:           h.CSRC, // read-only downstream; RFC 7667 §3.7 keeps it
	}
	if padding {
		b.hdr.PaddingSize = h.PaddingSize
	}
	n, err := b.writer.WriteRTP(&b.hdr, payload)
	if anchoring && (err != nil || n == 0) {
		// The writer refused the packet the binding was to start from.
		// Pion reports 0 bytes and no error for a packet it drops because
		// DTLS-SRTP is not up yet, and binds a track before it is; the
		// keyframe asked for at Bind often arrives in that window.
		// Starting from a packet the subscriber never got would leave it
		// decoding deltas without their keyframe, so the binding waits
		// for the next packet it can start from. Until one is accepted,
		// it asks for keyframes with a growing backoff, so a subscriber
		// that never connects cannot make the publisher send a keyframe
		// every interval.
		b.rw = before
		if !b.notReady {
			b.notReady = true
			b.backoff = t.keyframeInterval
			b.retryAt = *now + b.backoff
		}
		if err != nil {
			return writeFailed
		}
		return waitQuiet
	}
	if err != nil {
		return writeFailed
	}
	b.notReady = false
	return wrote
}

// wait is the outcome for a packet a binding cannot start from: ask for a
// keyframe, unless the writer is not ready and the backoff has not passed.
func (b *binding) wait(t *Track, now int64) outcome {
	if !b.notReady {
		return waitKeyframe
	}
	if now < b.retryAt {
		return waitQuiet
	}
	b.backoff = min(max(2*b.backoff, t.keyframeInterval), maxStartBackoff)
	b.retryAt = now + b.backoff
	return waitKeyframe
}

// sourceEpoch notes the SSRC of a packet and returns the current source
// epoch, advancing it when the SSRC differs from the previous packet's.
func (t *Track) sourceEpoch(ssrc uint32) uint64 {
	want := 1<<32 | uint64(ssrc)
	if cur := t.src.Load(); cur != want && t.src.CompareAndSwap(cur, want) && cur != 0 {
		t.epoch.Add(1)
		t.switches.Add(1)
	}
	return t.epoch.Load()
}

// SwitchSource announces that the packets forwarded next come from a new
// upstream source, with its own sequence and timestamp space: every binding
// re-anchors on the next packet it may start with, continuing its
// downstream numbering, and video bindings wait for a keyframe.
//
// A change of SSRC is detected without it; call SwitchSource when the new
// source may reuse the old SSRC (a publisher reconnecting with the same
// sender), before forwarding its first packet.
func (t *Track) SwitchSource() {
	t.epoch.Add(1)
	t.switches.Add(1)
}

// RequestKeyframe asks the publisher for a keyframe through the callback set
// with WithKeyframeRequest, unless it did so less than the keyframe interval
// ago. It does nothing for audio. [Track.ReadRTCP] calls it for a subscriber's PLI or FIR.
func (t *Track) RequestKeyframe() {
	if t.kind != webrtc.RTPCodecTypeVideo || t.onKeyframe == nil {
		return
	}
	now := t.now()
	for {
		next := t.nextKeyframe.Load()
		if now < next {
			return
		}
		if t.nextKeyframe.CompareAndSwap(next, now+t.keyframeInterval) {
			break
		}
	}
	t.keyframeRequests.Add(1)
	t.onKeyframe(uint32(t.src.Load()))
}

// monotonicClock returns a clock in nanoseconds since its creation;
// time.Since reads the monotonic clock, so wall-clock steps do not move it.
func monotonicClock() func() int64 {
	origin := time.Now()
	return func() int64 { return int64(time.Since(origin)) }
}

// Stats is a snapshot of a Track's counters.
type Stats struct {
	// Bindings is the number of subscriber connections bound now.
	Bindings int
	// PacketsIn and BytesIn count the packets given to Forward and their
	// payload bytes (without RTP header and padding).
	PacketsIn, BytesIn uint64
	// PacketsOut and BytesOut count packets written, summed over bindings,
	// and their payload bytes.
	PacketsOut, BytesOut uint64
	// Dropped counts packets not written to a binding because it waited
	// for a keyframe or the packet was older than the binding's anchor.
	Dropped uint64
	// WriteErrors counts writes a subscriber's stream refused.
	WriteErrors uint64
	// KeyframeRequests counts calls of the keyframe request callback.
	KeyframeRequests uint64
	// SourceChanges counts SSRC changes seen and SwitchSource calls.
	SourceChanges uint64
	// Retransmits counts packets sent again in answer to subscribers' NACKs.
	Retransmits uint64
}

// Stats returns the Track's counters. Each is read atomically; the
// snapshot as a whole is not.
func (t *Track) Stats() Stats {
	return Stats{
		Bindings:         len(*t.bindings.Load()),
		PacketsIn:        t.packetsIn.Load(),
		BytesIn:          t.bytesIn.Load(),
		PacketsOut:       t.packetsOut.Load(),
		BytesOut:         t.bytesOut.Load(),
		Dropped:          t.dropped.Load(),
		WriteErrors:      t.writeErrors.Load(),
		KeyframeRequests: t.keyframeRequests.Load(),
		SourceChanges:    t.switches.Load(),
		Retransmits:      t.retransmits.Load(),
	}
}
