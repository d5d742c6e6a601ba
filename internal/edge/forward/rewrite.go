package forward

// maxTimestampGap bounds the timestamp advance across a source change. RTP
// receivers compare timestamps modulo 2^32 (RFC 3550 §5.1), so an advance of
// 2^31 or more would read as a step backwards; 2^30 ticks is over three
// hours at 90 kHz.
const maxTimestampGap = 1 << 30

// rewriter maps one upstream source's sequence numbers and timestamps into a
// binding's downstream space. The zero value has forwarded nothing; it must
// be anchored before it rewrites.
//
// Within a source the mapping is a fixed offset (modulo 2^16 and 2^32), so
// gaps and reordering survive. Across sources it keeps the downstream stream
// continuous: the next anchor continues at the last sequence number + 1 and
// advances the timestamp by the wall-clock time since the last packet, at
// least one frame.
//
// The clock is read only when anchoring, not per packet: the wall-clock time
// of the last packet is taken to be the anchor's plus the media time between
// them (lastTS - anchorTS), which is what RTP timestamps measure (RFC 3550
// §5.1), silence and pauses included.
type rewriter struct {
	// anchored reports whether the fields below map the current source.
	anchored bool
	// epoch is the source epoch the anchor belongs to; see Track.sourceEpoch.
	epoch uint64

	// maxIn is the highest upstream sequence number seen since the anchor,
	// and maxExt its distance from the anchor packet. Comparing each packet
	// with maxIn (not with the anchor) keeps the comparison within a
	// half-window however long the source runs, so wraparound is handled
	// by 16-bit modular arithmetic.
	maxIn  uint16
	maxExt int64
	// outBase is the downstream sequence number of the anchor packet.
	outBase uint16
	// tsOffset is added to upstream timestamps, modulo 2^32.
	tsOffset uint32
	// anchorTS is the anchor packet's downstream timestamp, and
	// anchorNanos the clock reading when it was forwarded.
	anchorTS    uint32
	anchorNanos int64

	// started reports whether anything has been forwarded, that is, whether
	// lastSeq and lastTS hold the downstream position.
	started bool
	// lastSeq and lastTS are the downstream numbers of the highest packet
	// forwarded.
	lastSeq uint16
	lastTS  uint32
}

// anchor starts mapping a source at the packet (seq, ts) forwarded at
// nowNanos. A rewriter that has never forwarded starts at (initSeq, initTS);
// one that has continues at lastSeq+1 and lastTS plus the time since the
// last packet in clock ticks, at least minGap.
func (r *rewriter) anchor(seq uint16, ts uint32, epoch uint64, nowNanos int64,
	clockRate, minGap uint32, initSeq uint16, initTS uint32,
) {
	outSeq, outTS := initSeq, initTS
	if r.started {
		outSeq = r.lastSeq + 1
		// Media time the old source covered after its anchor; a source
		// whose timestamps went backwards covered none.
		span := max(int64(int32(r.lastTS-r.anchorTS)), 0)
		gap := ticks(nowNanos-r.anchorNanos, clockRate) - span
		outTS = r.lastTS + uint32(min(max(gap, int64(minGap)), maxTimestampGap))
	}
	*r = rewriter{
		anchored:    true,
		epoch:       epoch,
		maxIn:       seq,
		outBase:     outSeq,
		tsOffset:    outTS - ts,
		anchorTS:    outTS,
		anchorNanos: nowNanos,
		started:     true,
		lastSeq:     outSeq,
		lastTS:      outTS,
	}
}

// rewrite maps an upstream packet of the anchored source. It reports false
// for a packet older than the anchor, which has no place downstream: its
// number would collide with one already sent before the anchor.
func (r *rewriter) rewrite(seq uint16, ts uint32) (outSeq uint16, outTS uint32, ok bool) {
	diff := int64(int16(seq - r.maxIn))
	ext := r.maxExt + diff
	if ext < 0 {
		return 0, 0, false
	}
	outSeq = r.outBase + uint16(ext) // modulo 2^16 by design
	outTS = ts + r.tsOffset
	if diff > 0 {
		r.maxIn, r.maxExt = seq, ext
		r.lastSeq, r.lastTS = outSeq, outTS
	}
	return outSeq, outTS, true
}

// upstream maps back a downstream sequence number forwarded since the
// anchor, at most historySize packets behind the highest, to its upstream
// number.
func (r *rewriter) upstream(outSeq uint16) (uint16, bool) {
	back := int64(r.lastSeq - outSeq) // modulo 2^16: how far behind the highest
	if !r.anchored || back > r.maxExt || back >= historySize {
		return 0, false
	}
	return r.maxIn - uint16(back), true
}

// maxTicks bounds ticks: far beyond any gap that is used, far below
// overflow.
const maxTicks = 1 << 40

// ticks converts elapsed wall-clock time into RTP clock ticks, 0 for no
// time and at most maxTicks.
func ticks(elapsedNanos int64, clockRate uint32) int64 {
	if elapsedNanos <= 0 || clockRate == 0 {
		return 0
	}
	const nanosPerSecond = 1_000_000_000
	e, rate := uint64(elapsedNanos), uint64(clockRate)
	// Whole seconds and the rest apart, so neither product can overflow:
	// secs*rate < maxTicks, and rest*rate < 1e9 * 2^32 < 2^64.
	secs := e / nanosPerSecond
	if secs >= maxTicks/rate {
		return maxTicks
	}
	return int64(secs*rate + e%nanosPerSecond*rate/nanosPerSecond)
}
