package forward

import (
	"sync"

	"github.com/pion/rtp"
)

// historySize is how many of a video Track's latest packets it keeps for retransmission: about 5 s of a
// 30 fps stream, far longer than a NACK is worth answering. slotSize holds the payload of any packet the SDK
// sends (1200 bytes with its header); a larger one grows its slot.
const (
	historySize = 512
	slotSize    = 1200
)

// history keeps one copy of each of a video Track's latest packets, shared by every binding, so that a
// subscriber's NACK (RFC 4585 §6.2.1) is answered from it: the binding maps the downstream sequence number back
// to the upstream one and rewrites the header as it did the first time. Per binding this costs nothing; Pion's
// NACK responder, which the edge does not use, copied every packet into a buffer of each subscriber leg.
//
// record runs on the forwarding goroutine; lookup on the subscribers' RTCP readers. The first record allocates
// every slot at once (historySize × slotSize bytes, per video track with subscribers); after that, neither
// allocates.
type history struct {
	mu    sync.Mutex
	slots []historySlot
}

// historySlot is one packet: what Forward needs of its header, and its payload.
type historySlot struct {
	valid       bool
	epoch       uint64
	seq         uint16
	ts          uint32
	marker      bool
	paddingSize byte
	csrc        []uint32
	payload     []byte
}

// record keeps the packet (h, payload) of source epoch epoch, replacing the one historySize sequence numbers
// before it.
func (hs *history) record(h *rtp.Header, payload []byte, epoch uint64) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.slots == nil {
		hs.slots = make([]historySlot, historySize)
		backing := make([]byte, historySize*slotSize)
		for i := range hs.slots {
			hs.slots[i].payload = backing[i*slotSize : i*slotSize : (i+1)*slotSize]
		}
	}
	s := &hs.slots[h.SequenceNumber%historySize]
	s.valid, s.epoch, s.seq, s.ts, s.marker = true, epoch, h.SequenceNumber, h.Timestamp, h.Marker
	s.paddingSize = 0
	if h.Padding {
		s.paddingSize = h.PaddingSize
	}
	s.csrc = append(s.csrc[:0], h.CSRC...)
	s.payload = append(s.payload[:0], payload...)
}

// resend is a packet taken from the history to be sent again; an RTCP reader keeps one and reuses it.
type resend struct {
	ts          uint32
	marker      bool
	paddingSize byte
	csrc        []uint32
	payload     []byte
}

// lookup copies the packet with upstream sequence number seq of source epoch epoch into r; it reports false if
// the history no longer holds it.
func (hs *history) lookup(seq uint16, epoch uint64, r *resend) bool {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.slots == nil {
		return false
	}
	s := &hs.slots[seq%historySize]
	if !s.valid || s.seq != seq || s.epoch != epoch {
		return false
	}
	r.ts, r.marker, r.paddingSize = s.ts, s.marker, s.paddingSize
	r.csrc = append(r.csrc[:0], s.csrc...)
	r.payload = append(r.payload[:0], s.payload...)
	return true
}

// resend writes again, from the history, the packet that the binding with SSRC ssrc sent as downstream sequence
// number seq, with the same header; it reports whether it did. r is the caller's scratch space.
func (t *Track) resend(ssrc uint32, seq uint16, r *resend) bool {
	if t.history == nil {
		return false
	}
	var b *binding
	for _, c := range *t.bindings.Load() {
		if c.ssrc == ssrc {
			b = c
			break
		}
	}
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.unbound {
		return false
	}
	up, ok := b.rw.upstream(seq)
	if !ok || !t.history.lookup(up, b.rw.epoch, r) {
		return false
	}
	b.hdr = rtp.Header{
		Version:        2,
		Padding:        r.paddingSize > 0,
		PaddingSize:    r.paddingSize,
		Marker:         r.marker,
		PayloadType:    b.payloadType,
		SequenceNumber: seq,
		Timestamp:      r.ts + b.rw.tsOffset,
		SSRC:           b.ssrc,
		CSRC:           r.csrc,
	}
	if _, err := b.writer.WriteRTP(&b.hdr, r.payload); err != nil {
		return false
	}
	t.retransmits.Add(1)
	return true
}
