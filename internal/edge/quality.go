package edge

// Quality reports (console issue, items 5 and 6). The edge measures, for every published audio or video track,
// what it receives from the publisher as an RFC 3550 receiver would: packets lost from sequence-number gaps
// (§A.1, §A.3) and interarrival jitter (§6.4.1), plus the bitrate; for every subscribed track it keeps what the
// subscriber says in its receiver reports (§6.4.1). Every QualityInterval, and once more after its leave event,
// a session emits a "quality" event with its tracks' figures for the interval and, once, its join time: from
// its join request to its subscriber connection reaching "connected" (ICE and DTLS done).
//
// Measurements use the monotonic system clock, not Config.Clock: they time the network, not token expiry.

import (
	"math"
	"sync"
	"time"

	"github.com/stoa-rtc/stoa/internal/edge/forward"
	"github.com/stoa-rtc/stoa/internal/protocol"
)

// Directions of a TrackQuality.
const (
	DirectionUp   = "up"   // from the publisher to the edge
	DirectionDown = "down" // from the edge to a subscriber, as the subscriber reports it
)

// TrackQuality is one track's figures for one report interval.
type TrackQuality struct {
	TrackID   string `json:"track_id"`
	Kind      string `json:"kind"`
	Direction string `json:"direction"`
	// Packets were received in the interval (up: by the edge, down: by the subscriber, from its reports).
	Packets uint64 `json:"packets"`
	// Lost packets in the interval, and Loss, their fraction of the packets expected, in [0, 1].
	Lost uint64  `json:"lost"`
	Loss float64 `json:"loss"`
	// JitterMs is the interarrival jitter (RFC 3550 §6.4.1) at the end of the interval, in milliseconds.
	JitterMs float64 `json:"jitter_ms"`
	// BitrateKbps is the RTP bitrate (headers included) over the interval; 0 for down, which the edge does not
	// measure per subscriber.
	BitrateKbps float64 `json:"bitrate_kbps"`
}

// epoch anchors monotonic nanosecond readings.
var epoch = time.Now()

// nanotime returns monotonic nanoseconds since epoch.
func nanotime() int64 { return int64(time.Since(epoch)) }

// Sequence-number limits of RFC 3550 §A.1, and the window in which duplicates are recognised.
const (
	maxDropout   = 3000 // a larger jump forward restarts the count once confirmed by the next packet
	dupWindow    = 256  // packets this far behind the highest are recognised as duplicates or late arrivals
	jitterFactor = 16   // RFC 3550 §6.4.1: J += (|D| - J) / 16
)

// rtpStats measures one received RTP stream. update runs on the forwarding goroutine for every packet and takes
// an uncontended lock; it allocates nothing. snapshot runs on the session's goroutine.
type rtpStats struct {
	clockRate float64 // Hz, for jitter in milliseconds

	mu      sync.Mutex
	started bool
	ssrc    uint32
	baseExt int64 // extended sequence number of the first packet of the current sequence
	maxExt  int64 // extended highest sequence number received
	// seen has bit (ext % dupWindow) set for each ext in (maxExt-dupWindow, maxExt] received.
	seen [dupWindow / 64]uint64
	// badSeq is the sequence number that would confirm a large jump (RFC 3550 §A.1), or -1.
	badSeq int32

	expectedBefore uint64 // packets expected by sequences before the current one (SSRC changes, restarts)
	received       uint64 // distinct packets received
	duplicates     uint64
	bytes          uint64

	jitter   float64 // timestamp units
	lastTS   uint32
	lastNano int64
	haveLast bool

	// snapshot state
	prevExpected, prevReceived, prevBytes uint64
	prevNano                              int64
}

func newRTPStats(clockRate uint32, now int64) *rtpStats {
	return &rtpStats{clockRate: float64(clockRate), badSeq: -1, prevNano: now}
}

// update records one packet of size bytes with sequence number seq and timestamp ts of ssrc, arrived at now
// (monotonic nanoseconds).
func (s *rtpStats) update(ssrc uint32, seq uint16, ts uint32, size int, now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bytes += uint64(size)
	if !s.started || ssrc != s.ssrc {
		s.restart(ssrc, seq)
	} else {
		delta := int64(int16(seq - uint16(s.maxExt)))
		switch {
		case delta > 0 && delta <= maxDropout:
			s.advance(delta)
			s.badSeq = -1
		case delta > maxDropout || delta <= -dupWindow:
			if int32(seq) != s.badSeq {
				s.badSeq = int32(seq + 1) // a late straggler, or a restart that the next packet confirms
				return
			}
			s.restart(ssrc, seq) // the sender restarted its sequence
		case delta == 0:
			s.duplicates++
			return
		default: // behind the highest: late, reordered or duplicate
			ext := s.maxExt + delta
			bit := uint64(1) << (ext % 64)
			w := &s.seen[(ext/64)%int64(len(s.seen))]
			if *w&bit != 0 {
				s.duplicates++
				return
			}
			*w |= bit
			if ext < s.baseExt {
				s.baseExt = ext // arrived before the first packet seen: it was expected too
			}
			s.received++
			s.jitterUpdate(ts, now)
			return
		}
	}
	s.received++
	s.jitterUpdate(ts, now)
}

// restart begins a new sequence at seq.
func (s *rtpStats) restart(ssrc uint32, seq uint16) {
	if s.started {
		s.expectedBefore += uint64(s.maxExt - s.baseExt + 1)
	}
	s.started, s.ssrc, s.badSeq, s.haveLast = true, ssrc, -1, false
	// Extended numbers start one cycle up so that packets just before the first stay positive.
	s.baseExt, s.maxExt = 1<<16+int64(seq), 1<<16+int64(seq)
	s.seen = [len(s.seen)]uint64{}
	s.seen[(s.maxExt/64)%int64(len(s.seen))] |= 1 << (s.maxExt % 64)
}

// advance moves the highest sequence number forward by delta > 0 and marks it received.
func (s *rtpStats) advance(delta int64) {
	if delta >= dupWindow {
		s.seen = [len(s.seen)]uint64{}
	} else {
		for e := s.maxExt + 1; e < s.maxExt+delta; e++ {
			s.seen[(e/64)%int64(len(s.seen))] &^= 1 << (e % 64)
		}
	}
	s.maxExt += delta
	s.seen[(s.maxExt/64)%int64(len(s.seen))] |= 1 << (s.maxExt % 64)
}

// jitterUpdate applies RFC 3550 §6.4.1 with the difference of transit times computed from differences, so that
// the 32-bit timestamp may wrap.
func (s *rtpStats) jitterUpdate(ts uint32, now int64) {
	if s.haveLast {
		arrival := float64(now-s.lastNano) * s.clockRate / 1e9
		d := arrival - float64(int32(ts-s.lastTS))
		s.jitter += (math.Abs(d) - s.jitter) / jitterFactor
	}
	s.lastTS, s.lastNano, s.haveLast = ts, now, true
}

// snapshot returns the figures since the previous snapshot (or creation) at now.
func (s *rtpStats) snapshot(now int64) TrackQuality {
	s.mu.Lock()
	defer s.mu.Unlock()
	expected := s.expectedBefore
	if s.started {
		expected += uint64(s.maxExt - s.baseExt + 1)
	}
	expInt, recvInt := expected-s.prevExpected, s.received-s.prevReceived
	var q TrackQuality
	q.Packets = recvInt
	if expInt > recvInt { // late packets of an earlier interval can make recvInt the larger
		q.Lost = expInt - recvInt
		q.Loss = float64(q.Lost) / float64(expInt)
	}
	if s.clockRate > 0 {
		q.JitterMs = s.jitter / s.clockRate * 1000
	}
	if dt := now - s.prevNano; dt > 0 {
		q.BitrateKbps = float64(s.bytes-s.prevBytes) * 8 / (float64(dt) / 1e9) / 1000
	}
	s.prevExpected, s.prevReceived, s.prevBytes, s.prevNano = expected, s.received, s.bytes, now
	return q
}

// rrStats keeps what a subscriber reports about one subscribed track (RFC 3550 §6.4.1 report blocks).
type rrStats struct {
	clockRate float64
	ssrc      uint32 // the SSRC the edge sends the track with

	mu   sync.Mutex
	have bool
	last forward.ReceptionReport
	// base is the report of the previous snapshot, if any
	base     forward.ReceptionReport
	haveBase bool
}

func (r *rrStats) report(rr forward.ReceptionReport) {
	if rr.SSRC != r.ssrc {
		return
	}
	r.mu.Lock()
	r.last, r.have = rr, true
	r.mu.Unlock()
}

// snapshot returns the figures since the previous snapshot; ok is false before the first report.
func (r *rrStats) snapshot() (q TrackQuality, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.have {
		return q, false
	}
	if r.clockRate > 0 {
		q.JitterMs = float64(r.last.Jitter) / r.clockRate * 1000
	}
	if r.haveBase {
		expected := int64(r.last.LastSeq - r.base.LastSeq)
		lost := max(int64(r.last.TotalLost)-int64(r.base.TotalLost), 0)
		if expected > 0 {
			lost = min(lost, expected)
			q.Packets, q.Lost = uint64(expected-lost), uint64(lost)
			q.Loss = float64(lost) / float64(expected)
		}
	} else {
		q.Loss = float64(r.last.FractionLost) / 256 // only the last report's own figure so far
	}
	r.base, r.haveBase = r.last, true
	return q, true
}

// reportQuality emits the session's quality event if it has anything to say: track figures, or its join time
// not yet reported. final marks the report that follows the session's leave. Runs on the session's goroutine.
func (s *session) reportQuality(final bool) {
	if !s.joined {
		return
	}
	now := nanotime()
	var tracks []TrackQuality
	for _, p := range s.published {
		if p.up == nil {
			continue
		}
		q := p.up.snapshot(now)
		q.TrackID, q.Kind, q.Direction = p.id, string(p.kind), DirectionUp
		tracks = append(tracks, q)
	}
	for id, d := range s.downStats {
		q, ok := d.stats.snapshot()
		if !ok {
			continue
		}
		q.TrackID, q.Kind, q.Direction = id, string(d.kind), DirectionDown
		tracks = append(tracks, q)
	}
	joinMs := int64(0)
	if s.joinTime > 0 && !s.joinReported {
		joinMs = max(s.joinTime.Milliseconds(), 1)
		s.joinReported = true
	}
	if len(tracks) == 0 && joinMs == 0 {
		return
	}
	s.srv.emit(Event{Type: EventQuality, AppID: s.room.key.appID, Channel: s.room.key.channel, UID: s.uid,
		Session: s.id, JoinMs: joinMs, IntervalMs: time.Duration(now - s.lastReport).Milliseconds(), Final: final,
		Tracks: tracks})
	s.lastReport = now
}

// downStat is a subscription's receiver-report figures.
type downStat struct {
	kind  protocol.Kind
	stats *rrStats
}

// startQualityReports reports the session's quality every QualityInterval until it ends.
func (s *session) startQualityReports() {
	s.lastReport = nanotime()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.srv.cfg.QualityInterval)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				s.post(func() { s.reportQuality(false) })
			}
		}
	}()
}

// connected records the join time when the subscriber connection first connects. Runs on the session's
// goroutine.
func (s *session) connected() {
	if s.joinTime == 0 && !s.joinStart.IsZero() {
		s.joinTime = max(time.Since(s.joinStart), time.Nanosecond)
	}
}
