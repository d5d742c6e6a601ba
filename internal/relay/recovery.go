package relay

import "time"

// Loss recovery works on link sequence numbers: each outgoing track numbers its packets from 0 (u16 on the wire,
// extended to 64 bits at both ends) and keeps the last packets in a sendRing; the receiver's recvTrack notes the
// gaps, and the connection's ticker asks for them (nack frames) after a reorder allowance, again every
// retransmission timeout, and gives up after maxNacks requests.

const (
	// reorderDelay is how long a gap may wait for a late packet before it is asked for (and counts as a loss on
	// first arrival): longer than the reordering that jitter causes between packets sent close together.
	reorderDelay = 20 * time.Millisecond
	// maxNacks is how many times a missing packet is asked for before it counts as lost.
	maxNacks = 6
	// minRetry and maxRetry bound the interval between two requests for one packet.
	minRetry, maxRetry = 25 * time.Millisecond, time.Second
	// windowBits is how far back (in packets) a receiver remembers which packets arrived: older ones are
	// dropped, as duplicates or given up.
	windowBits = 2048
	// maxMissing bounds the gaps one track keeps; beyond it the oldest are given up.
	maxMissing = 512
	// tailDelay is how long a track must pause before its sender reports its last packet (a tail frame), so
	// that the receiver finds the loss of the packets before a pause: longer than the usual gap between two
	// packets of a stream (20 ms for audio, 33 ms for 30 fps video).
	tailDelay = 50 * time.Millisecond
	// minRing is the smallest retransmission buffer: the ring is also where a packet waits for the media
	// sender, so it must hold more than a burst.
	minRing = 64
)

// sendRing keeps the last packets of an outgoing track, indexed by extended sequence number.
type sendRing struct {
	slots []ringSlot
	next  uint64 // the extended sequence number of the next packet
}

type ringSlot struct {
	tag  uint64 // extended sequence number + 1; 0 for an empty slot
	pkt  []byte
	sent bool // sent at least once: a packet dropped before is not worth sending late
}

func newSendRing(size int, start uint64) *sendRing {
	return &sendRing{slots: make([]ringSlot, max(size, minRing)), next: start}
}

// push stores a copy of pkt, reusing the slot's buffer, and returns its extended sequence number.
func (r *sendRing) push(pkt []byte) uint64 {
	seq := r.next
	s := &r.slots[seq%uint64(len(r.slots))]
	s.tag, s.pkt, s.sent = seq+1, append(s.pkt[:0], pkt...), false
	r.next++
	return seq
}

// get returns the slot of the packet with extended sequence number seq, or nil if it has been overwritten or
// was never pushed.
func (r *sendRing) get(seq uint64) *ringSlot {
	s := &r.slots[seq%uint64(len(r.slots))]
	if s.tag != seq+1 {
		return nil
	}
	return s
}

// lookup extends a wire sequence number to the most recent packet that has it.
func (r *sendRing) lookup(seq uint16) (uint64, bool) {
	if r.next == 0 {
		return 0, false
	}
	last := r.next - 1
	back := uint64(uint16(last) - seq)
	if back > last || back >= uint64(len(r.slots)) {
		return 0, false
	}
	return last - back, true
}

// recvTrack follows the sequence numbers of an incoming track: which arrived (for duplicates) and which are
// missing (for requests).
type recvTrack struct {
	next    uint64 // one past the highest extended sequence number seen
	seen    [windowBits / 64]uint64
	missing map[uint64]gap

	// Counters, read and reset by the owner: packets expected (by sequence), missing on first arrival, given up
	// on, and received late thanks to a request.
	expected, missed, lost, recovered uint64
}

type gap struct {
	since, last time.Time // noticed, last asked for
	nacks       int
}

func newRecvTrack(start uint64) *recvTrack {
	return &recvTrack{next: start, missing: map[uint64]gap{}}
}

func (r *recvTrack) bit(seq uint64) (*uint64, uint64) {
	return &r.seen[(seq/64)%uint64(len(r.seen))], 1 << (seq % 64)
}

// extend turns a wire sequence number into the nearest extended one; false before the track's first packet.
func (r *recvTrack) extend(seq uint16) (uint64, bool) {
	ext := int64(r.next) + int64(int16(seq-uint16(r.next)))
	return uint64(ext), ext >= 0
}

// advance moves next to end (> next), noting next…end-1 as gaps: up to maxMissing of them, the rest (and older
// gaps, to make room) given up at once.
func (r *recvTrack) advance(end uint64, now time.Time) {
	r.expected += end - r.next
	if end-r.next > windowBits {
		r.seen = [windowBits / 64]uint64{}
	} else {
		for i := r.next; i < end; i++ {
			w, b := r.bit(i)
			*w &^= b
		}
	}
	from := r.next
	if end-from > maxMissing {
		from = end - maxMissing
	}
	r.lost += from - r.next
	r.missed += from - r.next
	if len(r.missing)+int(end-from) > maxMissing {
		for old := range r.missing {
			r.giveUp(old)
		}
	}
	for i := from; i < end; i++ {
		r.missing[i] = gap{since: now}
	}
	r.next = end
}

// receive notes the arrival of wire sequence number seq at now and reports whether the packet is new (to be
// delivered) rather than a duplicate or older than the window.
func (r *recvTrack) receive(seq uint16, now time.Time) bool {
	s, ok := r.extend(seq)
	if !ok {
		return false
	}
	if s >= r.next {
		r.advance(s, now)
		r.expected++
		w, b := r.bit(s)
		*w |= b
		r.next = s + 1
		return true
	}
	if r.next-s > windowBits {
		return false
	}
	w, b := r.bit(s)
	if *w&b != 0 {
		return false
	}
	*w |= b
	if g, ok := r.missing[s]; ok {
		delete(r.missing, s)
		if g.nacks > 0 {
			r.recovered++
		}
	}
	return true
}

// sentUpTo notes that the sender has sent every packet up to wire sequence number seq (a tail frame): those
// not seen are gaps, found even when nothing follows them.
func (r *recvTrack) sentUpTo(seq uint16, now time.Time) {
	if s, ok := r.extend(seq); ok && s >= r.next {
		r.advance(s+1, now)
	}
}

func (r *recvTrack) giveUp(s uint64) {
	if r.missing[s].nacks == 0 {
		r.missed++
	}
	delete(r.missing, s)
	r.lost++
}

// scan gives up on the gaps that were asked for often enough (or, without recovery, waited reorderDelay), and
// appends to nacks the wire sequence numbers to ask for now, with retry as the interval between two requests.
func (r *recvTrack) scan(now time.Time, retry time.Duration, recovery bool, nacks []uint16) []uint16 {
	for s, g := range r.missing {
		if r.next-s > windowBits { // the window moved on
			r.giveUp(s)
			continue
		}
		if g.nacks == 0 {
			if now.Sub(g.since) < reorderDelay {
				continue
			}
			if !recovery {
				r.giveUp(s)
				continue
			}
			r.missed++
		} else {
			if now.Sub(g.last) < retry {
				continue
			}
			if g.nacks >= maxNacks {
				r.giveUp(s)
				continue
			}
		}
		g.nacks++
		g.last = now
		r.missing[s] = g
		nacks = append(nacks, uint16(s))
	}
	return nacks
}

// retryInterval is the time to wait for a requested packet before asking again: a retransmission timeout
// computed from QUIC's RTT estimate (RFC 9002 §6.2.1 without the ACK delay), bounded.
func retryInterval(srtt, rttvar time.Duration) time.Duration {
	return min(max(srtt+4*rttvar, minRetry), maxRetry)
}
