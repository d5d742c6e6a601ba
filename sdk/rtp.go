package sdk

import (
	"bytes"
	"math/rand/v2"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/stoa-rtc/stoa/internal/rtc"
)

// rtpMTU is the largest RTP packet the client sends, leaving room for SRTP, UDP, IP and TURN overheads.
const rtpMTU = 1200

// packetizer turns encrypted frames of one track into RTP packets: one packet per Opus frame (RFC 7587), VP8
// frames split by Pion's VP8 payloader (RFC 7741, with picture ids). The payload type and SSRC are placeholders that
// the PeerConnection rewrites.
type packetizer struct {
	p         rtp.Packetizer
	clockRate float64
	remainder float64
}

func newPacketizer(kind Kind) *packetizer {
	var (
		pl   rtp.Payloader
		pt   uint8
		rate uint32
	)
	switch kind {
	case KindVideo:
		pl, pt, rate = &codecs.VP8Payloader{EnablePictureID: true}, uint8(rtc.VP8.PayloadType), rtc.VP8.ClockRate
	default:
		pl, pt, rate = &codecs.OpusPayloader{}, uint8(rtc.Opus.PayloadType), rtc.Opus.ClockRate
	}
	return &packetizer{
		p:         rtp.NewPacketizer(rtpMTU, pt, rand.Uint32(), pl, rtp.NewRandomSequencer(), rate),
		clockRate: float64(rate),
	}
}

// packetize returns the packets of one frame lasting d; the next frame's timestamp is d later.
func (p *packetizer) packetize(payload []byte, d time.Duration) []*rtp.Packet {
	ticks := d.Seconds()*p.clockRate + p.remainder
	n := uint32(ticks)
	p.remainder = ticks - float64(n)
	return p.p.Packetize(payload, n)
}

// reorder puts the packets of one RTP stream back in sequence order. A packet that arrives early is held until the
// missing ones arrive (a reordering, or a retransmission after a NACK), or until hold packets are waiting or the
// oldest has waited wait, at which point the missing ones count as lost. Packets older than the next expected one
// (duplicates, retransmissions that came too late) are dropped.
type reorder struct {
	hold      int           // how many packets may wait for a missing one
	wait      time.Duration // how long they may wait (0: no limit)
	next      uint16
	started   bool
	held      [reorderWindow]*rtp.Packet // by sequence number modulo the window
	nheld     int
	heldSince time.Time
}

// reorderWindow bounds how far ahead of the next expected packet one may be held; further jumps resynchronize.
const reorderWindow = 64

// resyncDistance is how far behind a packet must be to be taken as a restarted stream rather than a late packet.
const resyncDistance = 1000

// push feeds p, arrived at now, and calls emit for every packet that is now in order; lost is true when packets
// were lost just before it.
func (r *reorder) push(p *rtp.Packet, now time.Time, emit func(p *rtp.Packet, lost bool)) {
	if !r.started {
		r.started, r.next = true, p.SequenceNumber
	}
	d := int16(p.SequenceNumber - r.next)
	switch {
	case d == 0:
		r.next++
		emit(p, false)
		r.drain(emit, false)
	case d < 0 && d > -resyncDistance:
		// Late or duplicate: already given up on or delivered.
	case d < 0 || int(d) >= reorderWindow:
		// A jump: the stream restarted or a long stretch was lost. Flush what is held and follow the new numbers.
		r.flush(emit)
		r.next = p.SequenceNumber + 1
		emit(p, true)
	default:
		slot := &r.held[p.SequenceNumber%reorderWindow]
		if *slot != nil {
			return // duplicate of a held packet
		}
		*slot = p
		if r.nheld == 0 {
			r.heldSince = now
		}
		r.nheld++
		if r.nheld >= r.hold || (r.wait > 0 && now.Sub(r.heldSince) >= r.wait) {
			r.skip(emit)
			r.heldSince = now // whatever is still held waits for its own gap from now
		}
	}
}

// drain emits the held packets that follow on from next.
func (r *reorder) drain(emit func(*rtp.Packet, bool), lost bool) {
	for r.nheld > 0 {
		slot := &r.held[r.next%reorderWindow]
		p := *slot
		if p == nil || p.SequenceNumber != r.next {
			return
		}
		*slot = nil
		r.nheld--
		r.next++
		emit(p, lost)
		lost = false
	}
}

// skip gives up on the missing packets before the first held one.
func (r *reorder) skip(emit func(*rtp.Packet, bool)) {
	for i := uint16(1); i < reorderWindow; i++ {
		if p := r.held[(r.next+i)%reorderWindow]; p != nil && p.SequenceNumber == r.next+i {
			r.next += i
			r.drain(emit, true)
			return
		}
	}
}

// flush emits every held packet in order, marking gaps as losses.
func (r *reorder) flush(emit func(*rtp.Packet, bool)) {
	for r.nheld > 0 {
		r.skip(emit)
	}
}

// vp8Assembler rebuilds VP8 frames from in-order RTP packets (RFC 7741). A frame starts with a packet whose S bit
// is set and partition index is 0, and ends with the marker bit; all its packets share a timestamp. A frame with a
// lost packet is dropped whole: a frame is only ever delivered complete.
type vp8Assembler struct {
	buf    []byte
	ts     uint32
	active bool // collecting the frame of ts

	// The timestamp of the last frame delivered or dropped, so that the remains of a broken frame count once.
	lastTS   uint32
	haveLast bool
}

// push takes the next packet; lost says packets were lost just before it. It returns a complete frame (a new
// slice) or nil, and how many frames it gave up on.
func (a *vp8Assembler) push(p *rtp.Packet, lost bool) (frame []byte, dropped int) {
	var vp codecs.VP8Packet
	payload, err := vp.Unmarshal(p.Payload)
	if err != nil || len(payload) == 0 {
		return nil, 0 // padding or garbage: nothing to add
	}
	if lost && a.active {
		a.drop(&dropped)
	}
	if vp.S == 1 && vp.PID == 0 {
		if a.active {
			a.drop(&dropped) // the previous frame never got its marker
		}
		a.buf = append(a.buf[:0], payload...)
		a.ts, a.active = p.Timestamp, true
	} else {
		switch {
		case !a.active:
			// The rest of a frame whose start was lost.
			if !a.haveLast || a.lastTS != p.Timestamp {
				a.lastTS, a.haveLast = p.Timestamp, true
				dropped++
			}
			return nil, dropped
		case p.Timestamp != a.ts:
			// The end of this frame and the start of the next were lost: both are broken.
			a.drop(&dropped)
			a.lastTS = p.Timestamp
			dropped++
			return nil, dropped
		}
		a.buf = append(a.buf, payload...)
	}
	if p.Marker {
		a.active = false
		a.lastTS, a.haveLast = a.ts, true
		return bytes.Clone(a.buf), dropped
	}
	return nil, dropped
}

func (a *vp8Assembler) drop(n *int) {
	a.active = false
	a.lastTS, a.haveLast = a.ts, true
	*n++
}
