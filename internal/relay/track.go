package relay

import (
	"sync"
	"time"

	"github.com/stoa-rtc/stoa/internal/protocol"
)

// OutTrack sends one track on a link.
type OutTrack struct {
	l     *Link
	num   uint64
	info  TrackInfo
	media bool

	mu        sync.Mutex
	ring      *sendRing // nil for a data track, and once closed
	closed    bool
	lastWrite time.Time // of the last packet
	reported  uint64    // ring.next when the last tail frame was sent
}

// WriteRTP sends one RTP packet (as received from the publisher); it copies pkt and never blocks. A packet that
// cannot be queued, or is larger than maxRTPPacket, is dropped and counted (Stats.Dropped).
func (o *OutTrack) WriteRTP(pkt []byte) {
	if !o.media {
		return
	}
	if len(pkt) < minRTP || len(pkt) > maxRTPPacket {
		o.l.drop(dropSize)
		return
	}
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	seq := o.ring.push(pkt)
	now := time.Now()
	o.lastWrite = now
	o.mu.Unlock()
	select {
	case o.l.c.media <- dgramJob{out: o, seq: seq, queued: now}:
	default:
		o.l.drop(dropQueue)
	}
}

// datagram appends the datagram of packet seq to dst and returns it with the packet's size, 0 if the packet is
// no longer there.
func (o *OutTrack) datagram(dst []byte, seq uint64) ([]byte, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return dst, 0
	}
	s := o.ring.get(seq)
	if s == nil {
		return dst, 0
	}
	s.sent = true
	dst = appendDatagramHeader(dst, o.l.id, o.num, uint16(seq))
	return append(dst, s.pkt...), len(s.pkt)
}

// retransmit queues the packets the peer asks for again: those still in the buffer that went out before (one
// this end dropped went nowhere because its uplink could not keep up, and sending it late would add to that).
func (o *OutTrack) retransmit(seqs []uint16) {
	for _, s := range seqs {
		o.mu.Lock()
		seq, ok := uint64(0), false
		if !o.closed {
			seq, ok = o.ring.lookup(s)
			if ok {
				slot := o.ring.get(seq)
				ok = slot != nil && slot.sent
			}
		}
		o.mu.Unlock()
		if !ok {
			continue
		}
		select {
		case o.l.c.resend <- dgramJob{out: o, seq: seq, queued: time.Now(), resend: true}:
		default:
			o.l.drop(dropQueue)
		}
	}
}

// SendData sends one data message (reliably, in order). A message larger than protocol.MaxDataMessage is
// dropped and counted.
func (o *OutTrack) SendData(msg []byte) {
	if o.media {
		return
	}
	if len(msg) > protocol.MaxDataMessage {
		o.l.drop(dropSize)
		return
	}
	o.mu.Lock() // held while queueing, so that no message follows the unpublish frame
	defer o.mu.Unlock()
	if !o.closed {
		o.l.send(&frame{typ: frameData, track: o.num, msg: msg}, false)
	}
}

// Unpublish tells the peer the track has ended.
func (o *OutTrack) Unpublish() {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.closed, o.ring = true, nil
	o.l.send(&frame{typ: frameUnpublish, track: o.num}, false)
	o.mu.Unlock()
	o.l.outMu.Lock()
	delete(o.l.out, o.num)
	delete(o.l.outIDs, o.info.ID)
	o.l.outMu.Unlock()
}
