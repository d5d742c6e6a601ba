package sdk

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/sframe/media"

	"github.com/stoa-rtc/stoa/internal/rtc"
)

// publication is a local track, media or data, as the client republishes it after a reconnection.
type publication interface {
	kind() Kind
	// attach binds the publication to s under the track id the edge gave it. The caller holds pubMu.
	attach(s *session, id string) error
	// detach unbinds it from its session; writes fail with ErrReconnecting until the next attach.
	detach()
	// close marks it unpublished for good and wipes its key.
	close()
	closed() bool
	stats() TrackStats
	trackID() string
}

// LocalTrack is a published audio or video track. The application writes encoded frames to it; the client
// encrypts each with SFrame under the track's own KID and sends it. A LocalTrack keeps its KID and frame counter
// across reconnections, while its id may change (the edge assigns a new one when the client publishes again).
//
// WriteFrame may be called from any goroutine; frames are sent in the order of the calls.
type LocalTrack struct {
	c         *Client
	k         Kind
	counters  trackCounters
	keyframes chan struct{}

	kid uint64

	mu       sync.Mutex
	sender   *media.Sender
	pk       *packetizer
	id       string
	track    *webrtc.TrackLocalStaticRTP // nil while not attached
	rtp      *webrtc.RTPSender
	isClosed bool
}

// ID returns the track id the edge assigned (the latest one after a reconnection).
func (t *LocalTrack) ID() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.id
}

// Kind returns KindAudio or KindVideo.
func (t *LocalTrack) Kind() Kind { return t.k }

// KID returns the SFrame key id under which the track's frames are encrypted.
func (t *LocalTrack) KID() uint64 { return t.kid }

// KeyframeRequests delivers a value whenever a receiver asks for a key frame (RTCP PLI or FIR from the edge, e.g.
// when a participant subscribes); a video encoder should then produce one. Requests that arrive while one is
// pending are merged.
func (t *LocalTrack) KeyframeRequests() <-chan struct{} { return t.keyframes }

// WriteFrame encrypts one encoded frame and sends it: an Opus packet as one RTP packet, a VP8 frame split into RTP
// packets. duration is how long the frame lasts (20ms for a typical Opus packet, 1/framerate for video); it
// advances the RTP timestamp.
//
// It returns ErrReconnecting while the client reconnects (the frame is dropped; keep writing), ErrUnpublished
// after Unpublish, and media.ErrShortFrame for a frame too short for its codec (VP8 key frames need 10 bytes,
// delta frames 3, Opus 1).
func (t *LocalTrack) WriteFrame(frame []byte, duration time.Duration) error {
	if duration < 0 {
		return fmt.Errorf("sdk: negative frame duration %v", duration)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.isClosed:
		return ErrUnpublished
	case t.track == nil:
		t.counters.dropped()
		return ErrReconnecting
	}
	// A fresh buffer per frame: the payloader and the retransmission buffer may keep slices of it.
	wire, err := t.sender.Seal(nil, t.k.codec(), frame)
	if err != nil {
		return err
	}
	for _, p := range t.pk.packetize(wire, duration) {
		if err := t.track.WriteRTP(p); err != nil {
			return fmt.Errorf("sdk: sending %s frame: %w", t.k, err)
		}
	}
	t.counters.sent()
	return nil
}

// Stats returns the track's counters.
func (t *LocalTrack) Stats() TrackStats { return t.stats() }

// Unpublish stops the track: the edge tells the other participants, and WriteFrame fails with ErrUnpublished.
func (t *LocalTrack) Unpublish(ctx context.Context) error { return t.c.unpublish(ctx, t) }

func (t *LocalTrack) kind() Kind { return t.k }

func (t *LocalTrack) trackID() string { return t.ID() }

func (t *LocalTrack) stats() TrackStats {
	return t.counters.snapshot(t.ID(), t.c.cfg.UID, t.k, true)
}

func (t *LocalTrack) attach(s *session, id string) error {
	codec := rtc.Opus.RTPCodecCapability
	if t.k == KindVideo {
		codec = rtc.VP8.RTPCodecCapability
	}
	tr, err := webrtc.NewTrackLocalStaticRTP(codec, id, s.c.cfg.UID)
	if err != nil {
		return fmt.Errorf("sdk: %w", err)
	}
	tx, err := s.pub.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return fmt.Errorf("sdk: adding %s track: %w", t.k, err)
	}
	sender := tx.Sender()
	// Reading RTCP runs the interceptors (NACK responses, reports) and brings key frame requests.
	s.goRun(func() { t.readRTCP(sender) })
	t.mu.Lock()
	t.id, t.track, t.rtp = id, tr, sender
	t.mu.Unlock()
	return nil
}

func (t *LocalTrack) readRTCP(sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				select {
				case t.keyframes <- struct{}{}:
				default:
				}
			}
		}
	}
}

// detach returns the RTPSender the track was attached with, for removal.
func (t *LocalTrack) detach() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.track, t.rtp = nil, nil
}

func (t *LocalTrack) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.isClosed = true
	t.track, t.rtp = nil, nil
	t.sender.Wipe()
}

func (t *LocalTrack) closed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.isClosed
}

// DataTrack is a published data track. Send encrypts each message with SFrame under the track's own KID and sends
// it on the track's data channel, reliably and in order; the edge forwards it to every subscriber.
//
// Send may be called from any goroutine.
type DataTrack struct {
	c        *Client
	counters trackCounters
	kid      uint64

	mu       sync.Mutex
	sender   *media.Sender
	id       string
	dc       *webrtc.DataChannel // nil while not attached
	isClosed bool
}

// ID returns the track id the edge assigned (the latest one after a reconnection).
func (t *DataTrack) ID() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.id
}

// KID returns the SFrame key id under which the track's messages are encrypted.
func (t *DataTrack) KID() uint64 { return t.kid }

// Send encrypts msg and sends it. msg may be up to MaxDataMessage less the SFrame overhead (about 33 bytes).
// It returns ErrReconnecting while the client reconnects or the data channel is not open yet (the message was not
// sent), ErrBackpressure while more than MaxDataBuffered bytes wait to be sent, ErrMessageTooLarge and
// ErrUnpublished.
func (t *DataTrack) Send(msg []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.isClosed:
		return ErrUnpublished
	case t.dc == nil || t.dc.ReadyState() != webrtc.DataChannelStateOpen:
		t.counters.dropped()
		return ErrReconnecting
	case t.dc.BufferedAmount() > MaxDataBuffered:
		t.counters.dropped()
		return ErrBackpressure
	case len(msg) > MaxDataMessage:
		return ErrMessageTooLarge
	}
	wire, err := t.sender.Seal(nil, media.Data, msg)
	if err != nil {
		return err
	}
	if len(wire) > MaxDataMessage {
		return ErrMessageTooLarge
	}
	if err := t.dc.Send(wire); err != nil {
		return fmt.Errorf("sdk: sending data: %w", err)
	}
	t.counters.sent()
	return nil
}

// Stats returns the track's counters.
func (t *DataTrack) Stats() TrackStats { return t.stats() }

// Unpublish stops the track: the edge tells the other participants, and Send fails with ErrUnpublished.
func (t *DataTrack) Unpublish(ctx context.Context) error { return t.c.unpublish(ctx, t) }

func (t *DataTrack) kind() Kind { return KindData }

func (t *DataTrack) trackID() string { return t.ID() }

func (t *DataTrack) stats() TrackStats {
	return t.counters.snapshot(t.ID(), t.c.cfg.UID, KindData, true)
}

func (t *DataTrack) attach(s *session, id string) error {
	dc, err := s.pub.CreateDataChannel(id, nil)
	if err != nil {
		return fmt.Errorf("sdk: opening data channel: %w", err)
	}
	t.mu.Lock()
	t.id, t.dc = id, dc
	t.mu.Unlock()
	return nil
}

// opened returns a channel closed once the track's data channel is open.
func (t *DataTrack) opened() <-chan struct{} {
	ch := make(chan struct{})
	t.mu.Lock()
	dc := t.dc
	t.mu.Unlock()
	if dc == nil {
		return ch
	}
	var once sync.Once
	done := func() { once.Do(func() { close(ch) }) }
	dc.OnOpen(done)
	if dc.ReadyState() == webrtc.DataChannelStateOpen {
		done()
	}
	return ch
}

func (t *DataTrack) detach() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dc = nil
}

func (t *DataTrack) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.isClosed = true
	t.dc = nil
	t.sender.Wipe()
}

func (t *DataTrack) closed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.isClosed
}
