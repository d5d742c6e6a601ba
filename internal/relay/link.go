package relay

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/stoa-rtc/stoa/internal/protocol"
)

const (
	// maxQueued bounds the control bytes waiting for a link's stream; a link whose peer reads less than this
	// end sends is ended rather than allowed to grow without bound.
	maxQueued = 4 << 20
	// maxBatch bounds one write on a link's stream, so that urgent frames queued meanwhile wait little.
	maxBatch = 64 << 10
	// maxRTPPacket bounds the packets WriteRTP takes: with it a media packet stays within the 1452 bytes of a path
	// of 1500-byte MTU (maxMediaPacket), and the retransmission buffer is sized by it.
	maxRTPPacket = 1400
	// samples is the size of the window of the bitrate and loss figures, in samples (one per sampleInterval).
	samples = 6
)

// Link is one channel shared with one peer. Its methods are safe for concurrent use and never block on the
// network: what cannot be sent at once is queued (control) or dropped (media, as a lossy network would).
type Link struct {
	c              *conn
	st             *quic.Stream
	fr             *frameReader
	id             uint64 // the stream id, which names the link in media packets
	appID, channel string
	acceptor       bool // the peer opened the link
	h              Handler

	// The control queue. urgent frames (NACKs and keyframe requests, which name the peer's tracks and so need no
	// order with this end's frames) go before normal ones.
	qmu            sync.Mutex
	urgent, normal [][]byte
	queued         int
	closing        bool // a close frame is queued: nothing may follow it
	wake           chan struct{}

	// Outgoing tracks by number and id.
	outMu     sync.Mutex
	nextTrack uint64
	out       map[uint64]*OutTrack
	outIDs    map[string]*OutTrack
	outEnded  bool

	// Incoming tracks. inMu is held while delivering RTP and while reporting Published and Unpublished, so that
	// a track's packets come between the two; only the reader goroutine changes in.
	inMu    sync.Mutex
	in      map[uint64]*inTrack
	ended   bool
	namesMu sync.Mutex
	inIDs   map[string]uint64 // track id → the peer's number, for RequestKeyframe

	endOnce sync.Once
	endErr  error
	stop    chan struct{} // closed by end
	done    chan struct{} // closed after Handler.Closed

	ctr     counters
	statsMu sync.Mutex
	window  [samples]sample
	nsample int
}

type inTrack struct {
	id string
	rt *recvTrack // nil for a data track
}

type counters struct {
	packetsSent, bytesSent, packetsReceived, bytesReceived atomic.Uint64
	retransmitted, recovered, lost, dropped                atomic.Uint64
	expected, missed                                       atomic.Uint64 // for Loss
}

type sample struct {
	at                                  time.Time
	bytesSent, bytesReceived, exp, miss uint64
}

func newLink(c *conn, st *quic.Stream, appID, channel string) *Link {
	l := &Link{c: c, st: st, fr: newFrameReader(st), id: uint64(st.StreamID()), appID: appID, channel: channel,
		wake: make(chan struct{}, 1), out: map[uint64]*OutTrack{}, outIDs: map[string]*OutTrack{},
		in: map[uint64]*inTrack{}, inIDs: map[string]uint64{}, stop: make(chan struct{}), done: make(chan struct{})}
	l.window[0].at = time.Now()
	l.nsample = 1
	return l
}

// run starts an open link: its writer and reader. On an accepted link, the ok frame goes before whatever Accept
// queued.
func (l *Link) run(h Handler) {
	l.h = h
	if l.acceptor {
		ok := appendFrame(nil, &frame{typ: frameOK})
		l.qmu.Lock()
		l.urgent = append([][]byte{ok}, l.urgent...)
		l.queued += len(ok)
		l.qmu.Unlock()
	}
	l.c.pm.links.Inc()
	l.c.t.wg.Go(l.write)
	l.c.t.wg.Go(l.read)
	l.signal()
}

// refuse answers an open with refused and forgets the link; its handler never existed.
func (l *Link) refuse(err error) {
	l.qmu.Lock()
	l.urgent, l.normal, l.closing = nil, nil, true
	l.qmu.Unlock()
	l.st.SetWriteDeadline(time.Now().Add(openTimeout))
	l.st.Write(appendFrame(nil, &frame{typ: frameRefused, reason: truncate(err.Error(), protocol.MaxReasonLen)}))
	l.st.Close()
	l.abort()
}

// abort forgets a link that never ran.
func (l *Link) abort() {
	l.end(ErrClosed, false)
	l.release()
	close(l.done)
}

func (l *Link) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *Link) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// end ends the link with err (what Handler.Closed gets); with tell, a close frame tells the peer first. The first
// call wins; the reader then stops and reports.
func (l *Link) end(err error, tell bool) {
	l.endOnce.Do(func() {
		l.endErr = err
		if tell {
			reason := "closed"
			if !errors.Is(err, ErrClosed) {
				reason = err.Error()
			}
			b := appendFrame(nil, &frame{typ: frameClose, reason: truncate(reason, protocol.MaxReasonLen)})
			l.qmu.Lock()
			if !l.closing {
				l.normal = append(l.normal, b)
				l.closing = true
			}
			l.qmu.Unlock()
		}
		close(l.stop)
		l.st.CancelRead(streamEnded)
	})
}

// send queues a control frame.
func (l *Link) send(f *frame, urgent bool) error {
	if err := f.check(); err != nil {
		return err
	}
	b := appendFrame(nil, f)
	l.qmu.Lock()
	if l.closing || l.stopped() {
		l.qmu.Unlock()
		return ErrClosed
	}
	if l.queued+len(b) > maxQueued {
		l.qmu.Unlock()
		err := fmt.Errorf("relay: %s: more than %d bytes of control messages queued", l.c.key, maxQueued)
		l.end(err, false)
		return err
	}
	if urgent {
		l.urgent = append(l.urgent, b)
	} else {
		l.normal = append(l.normal, b)
	}
	l.queued += len(b)
	l.qmu.Unlock()
	l.signal()
	return nil
}

// write drains the control queue into the stream, urgent frames first; after the link ends it sends what a
// close frame ends (if one was queued) and finishes the stream.
func (l *Link) write() {
	var buf []byte
	for {
		select {
		case <-l.wake:
		case <-l.stop:
		}
		l.qmu.Lock()
		stopped := l.stopped()
		if stopped && !l.closing {
			l.urgent, l.normal, l.queued = nil, nil, 0
			l.qmu.Unlock()
			l.st.Close()
			return
		}
		buf = buf[:0]
		for len(l.urgent) > 0 {
			buf = append(buf, l.urgent[0]...)
			l.urgent[0] = nil
			l.urgent = l.urgent[1:]
		}
		for len(l.normal) > 0 && len(buf) < maxBatch {
			buf = append(buf, l.normal[0]...)
			l.normal[0] = nil
			l.normal = l.normal[1:]
		}
		l.queued -= len(buf)
		more := len(l.normal) > 0
		l.qmu.Unlock()
		if len(buf) > 0 {
			if _, err := l.st.Write(buf); err != nil {
				return // the reader sees why
			}
		}
		if more {
			l.signal()
		} else if stopped {
			l.st.Close()
			return
		}
	}
}

// read reads the peer's frames and reports them to the handler, until the link ends; then it reports that.
func (l *Link) read() {
	for {
		f, err := l.fr.next()
		if err != nil {
			l.readFailed(err)
			break
		}
		if err := l.handle(&f); err != nil {
			l.end(err, true)
			break
		}
		if f.typ == frameClose {
			l.end(fmt.Errorf("%w by %s: %s", ErrClosed, l.c.key, f.reason), false)
			break
		}
	}
	l.release()
	l.c.pm.links.Dec()
	l.h.Closed(l.endErr)
	close(l.done)
}

func (l *Link) readFailed(err error) {
	var se *quic.StreamError
	switch {
	case l.stopped(): // ended here: endErr says why
	case l.c.qc.Context().Err() != nil || connErr(err):
		l.end(l.c.lostErr(err), false)
	case errors.Is(err, errMalformed):
		l.end(fmt.Errorf("relay: %s: %w", l.c.key, err), true)
	case errors.Is(err, io.EOF):
		l.end(fmt.Errorf("relay: %s ended the link without closing it", l.c.key), false)
	case errors.As(err, &se):
		l.end(fmt.Errorf("relay: %s reset the link (code %d)", l.c.key, se.ErrorCode), false)
	default:
		l.end(fmt.Errorf("relay: %s: %w", l.c.key, err), false)
	}
}

// handle reports one frame to the handler; an error is a protocol violation that ends the link.
func (l *Link) handle(f *frame) error {
	switch f.typ {
	case frameJoin:
		l.h.Joined(f.uid)
	case frameLeave:
		l.h.Left(f.uid, f.reason)
	case framePublish:
		l.namesMu.Lock()
		_, dup := l.inIDs[f.info.ID]
		l.namesMu.Unlock()
		if dup || l.in[f.track] != nil {
			return fmt.Errorf("relay: %s published track %d (%q) twice", l.c.key, f.track, f.info.ID)
		}
		it := &inTrack{id: f.info.ID}
		if f.info.Kind != string(protocol.KindData) {
			it.rt = newRecvTrack(0)
		}
		l.inMu.Lock()
		l.in[f.track] = it
		l.namesMu.Lock()
		l.inIDs[it.id] = f.track
		l.namesMu.Unlock()
		l.h.Published(f.info)
		l.inMu.Unlock()
	case frameUnpublish:
		it := l.in[f.track]
		if it == nil {
			return fmt.Errorf("relay: %s unpublished unknown track %d", l.c.key, f.track)
		}
		l.inMu.Lock()
		delete(l.in, f.track)
		if it.rt != nil {
			l.collect(it.rt)
		}
		l.namesMu.Lock()
		delete(l.inIDs, it.id)
		l.namesMu.Unlock()
		l.h.Unpublished(it.id)
		l.inMu.Unlock()
	case frameData:
		it := l.in[f.track]
		if it == nil || it.rt != nil {
			return fmt.Errorf("relay: %s sent data on track %d, not a data track it published", l.c.key, f.track)
		}
		l.h.Data(it.id, f.msg)
	case frameKeyframe:
		if o := l.outTrack(f.track); o != nil {
			l.h.KeyframeRequest(o.info.ID)
		}
	case frameNack:
		if o := l.outTrack(f.track); o != nil && !l.c.t.cfg.NoRecovery {
			o.retransmit(f.seqs)
		}
	case frameTail:
		it := l.in[f.track]
		if it == nil || it.rt == nil {
			return fmt.Errorf("relay: %s sent a tail of track %d, not a media track it published", l.c.key, f.track)
		}
		l.inMu.Lock()
		it.rt.sentUpTo(f.seqs[0], time.Now())
		l.inMu.Unlock()
	case frameClose:
	default:
		return fmt.Errorf("relay: %s sent %s on a link", l.c.key, f.typ)
	}
	return nil
}

// outTrack returns an outgoing track by number; nil if unpublished (a request may cross the unpublish frame).
func (l *Link) outTrack(n uint64) *OutTrack {
	l.outMu.Lock()
	defer l.outMu.Unlock()
	return l.out[n]
}

// release detaches an ended link from its connection and tracks.
func (l *Link) release() {
	l.c.removeLink(l)
	l.inMu.Lock()
	l.ended = true
	for _, it := range l.in {
		if it.rt != nil {
			l.collect(it.rt)
		}
	}
	l.inMu.Unlock()
	l.outMu.Lock()
	l.outEnded = true
	outs := make([]*OutTrack, 0, len(l.out))
	for _, o := range l.out {
		outs = append(outs, o)
	}
	l.outMu.Unlock()
	for _, o := range outs {
		o.mu.Lock()
		o.closed, o.ring = true, nil
		o.mu.Unlock()
	}
}

// deliver reports one media packet of track, unless it is a duplicate or of no published media track.
func (l *Link) deliver(track uint64, seq uint16, pkt []byte) {
	l.inMu.Lock()
	defer l.inMu.Unlock()
	it := l.in[track]
	if l.ended || it == nil || it.rt == nil || !it.rt.receive(seq, time.Now()) {
		return
	}
	l.ctr.packetsReceived.Add(1)
	l.ctr.bytesReceived.Add(uint64(len(pkt)))
	l.c.pm.packetsReceived.Inc()
	l.c.pm.bytesReceived.Add(float64(len(pkt)))
	l.h.RTP(it.id, pkt)
}

// scan asks for the gaps of every incoming track that are due (see recvTrack.scan); nacks is scratch space.
func (l *Link) scan(now time.Time, retry time.Duration, nacks []uint16) []uint16 {
	recovery := !l.c.t.cfg.NoRecovery
	l.inMu.Lock()
	defer l.inMu.Unlock()
	if l.ended {
		return nacks
	}
	for n, it := range l.in {
		if it.rt == nil {
			continue
		}
		nacks = it.rt.scan(now, retry, recovery, nacks[:0])
		l.collect(it.rt)
		for s := nacks; len(s) > 0; {
			k := min(len(s), maxNackSeqs)
			l.send(&frame{typ: frameNack, track: n, seqs: s[:k]}, true)
			s = s[k:]
		}
	}
	return nacks
}

// reportTails sends a tail frame for each outgoing track that has paused since its last packets.
func (l *Link) reportTails(now time.Time) {
	l.outMu.Lock()
	defer l.outMu.Unlock()
	for _, o := range l.out {
		o.mu.Lock()
		if o.ring != nil && o.ring.next > o.reported && now.Sub(o.lastWrite) >= tailDelay {
			o.reported = o.ring.next
			// Not urgent: it must not overtake the track's publish frame.
			l.send(&frame{typ: frameTail, track: o.num, seqs: []uint16{uint16(o.ring.next - 1)}}, false)
		}
		o.mu.Unlock()
	}
}

// collect moves a track's counters into the link's; inMu is held.
func (l *Link) collect(rt *recvTrack) {
	pm := l.c.pm
	if rt.expected > 0 {
		l.ctr.expected.Add(rt.expected)
	}
	if rt.missed > 0 {
		l.ctr.missed.Add(rt.missed)
	}
	if rt.lost > 0 {
		l.ctr.lost.Add(rt.lost)
		pm.lost.Add(float64(rt.lost))
	}
	if rt.recovered > 0 {
		l.ctr.recovered.Add(rt.recovered)
		pm.recovered.Add(float64(rt.recovered))
	}
	rt.expected, rt.missed, rt.lost, rt.recovered = 0, 0, 0, 0
}

// sample takes a sample for the windowed figures.
func (l *Link) sample(now time.Time) {
	s := sample{at: now, bytesSent: l.ctr.bytesSent.Load(), bytesReceived: l.ctr.bytesReceived.Load(),
		exp: l.ctr.expected.Load(), miss: l.ctr.missed.Load()}
	l.statsMu.Lock()
	l.window[l.nsample%samples] = s
	l.nsample++
	l.statsMu.Unlock()
}

// drop counts a packet or message not sent.
func (l *Link) drop(reason string) {
	l.ctr.dropped.Add(1)
	l.c.pm.dropped.WithLabelValues(reason).Inc()
}

// sent counts a media packet of n bytes written to the socket.
func (l *Link) sent(n int, resend bool) {
	l.ctr.packetsSent.Add(1)
	l.ctr.bytesSent.Add(uint64(n))
	pm := l.c.pm
	pm.packetsSent.Inc()
	pm.bytesSent.Add(float64(n))
	if resend {
		l.ctr.retransmitted.Add(1)
		pm.retransmitted.Inc()
	}
}

// Peer returns the edge at the other end.
func (l *Link) Peer() Peer { return l.c.peer }

// Join and Leave tell the peer about a participant.
func (l *Link) Join(uid string) { l.sendOrLog(&frame{typ: frameJoin, uid: uid}) }

func (l *Link) Leave(uid, reason string) {
	l.sendOrLog(&frame{typ: frameLeave, uid: uid, reason: truncate(reason, protocol.MaxReasonLen)})
}

func (l *Link) sendOrLog(f *frame) {
	if err := l.send(f, false); err != nil && !errors.Is(err, ErrClosed) {
		l.c.log.Warn("relay: message not sent", "type", f.typ.String(), "err", err)
	}
}

// Publish tells the peer about a track and returns the sender of its packets (audio, video) or messages (data).
func (l *Link) Publish(t TrackInfo) (*OutTrack, error) {
	l.outMu.Lock()
	defer l.outMu.Unlock()
	if l.outEnded {
		return nil, ErrClosed
	}
	if l.outIDs[t.ID] != nil {
		return nil, fmt.Errorf("relay: track %q is already published on this link", t.ID)
	}
	l.nextTrack++
	o := &OutTrack{l: l, num: l.nextTrack, info: t, media: t.Kind != string(protocol.KindData)}
	if err := l.send(&frame{typ: framePublish, track: o.num, info: t}, false); err != nil {
		return nil, err
	}
	if o.media {
		o.ring = newSendRing(l.c.t.cfg.RetransmitBuffer, 0)
	}
	l.out[o.num], l.outIDs[t.ID] = o, o
	return o, nil
}

// RequestKeyframe asks the peer for a keyframe of a track it publishes on this link.
func (l *Link) RequestKeyframe(trackID string) {
	l.namesMu.Lock()
	n, ok := l.inIDs[trackID]
	l.namesMu.Unlock()
	if ok {
		l.send(&frame{typ: frameKeyframe, track: n}, true)
	}
}

// Stats returns the link's figures.
func (l *Link) Stats() Stats {
	s := Stats{Peer: l.c.peer, AppID: l.appID, Channel: l.channel, RTT: time.Duration(l.c.rtt.Load()),
		PacketsSent: l.ctr.packetsSent.Load(), BytesSent: l.ctr.bytesSent.Load(),
		PacketsReceived: l.ctr.packetsReceived.Load(), BytesReceived: l.ctr.bytesReceived.Load(),
		Retransmitted: l.ctr.retransmitted.Load(), Recovered: l.ctr.recovered.Load(), Lost: l.ctr.lost.Load(),
		Dropped: l.ctr.dropped.Load()}
	l.statsMu.Lock()
	old := l.window[0]
	if l.nsample > samples {
		old = l.window[l.nsample%samples]
	}
	l.statsMu.Unlock()
	if dt := time.Since(old.at).Seconds(); dt > 0 {
		s.BitrateIn = float64(s.BytesReceived-old.bytesReceived) * 8 / dt
		s.BitrateOut = float64(s.BytesSent-old.bytesSent) * 8 / dt
	}
	if exp := l.ctr.expected.Load() - old.exp; exp > 0 {
		s.Loss = float64(l.ctr.missed.Load()-old.miss) / float64(exp)
	}
	return s
}

// Done is closed when the link has ended, after its Handler.Closed has returned.
func (l *Link) Done() <-chan struct{} { return l.done }

// Close ends the link; the peer's handler is told. The handler of this end gets Closed too (with ErrClosed),
// from the link's goroutine: Close does not wait for it, so a Handler may call it.
func (l *Link) Close() { l.end(ErrClosed, true) }
