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
// advances the timestamp by the wall-clock time between the sources.
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

	// started reports whether anything has been forwarded, that is, whether
	// lastSeq, lastTS and lastNanos hold the downstream position.
	started bool
	// lastSeq and lastTS are the downstream numbers of the highest packet
	// forwarded, and lastNanos the clock reading when it was forwarded.
	lastSeq   uint16
	lastTS    uint32
	lastNanos int64
}

// anchor starts mapping a source at the packet (seq, ts) forwarded at
// nowNanos. A rewriter that has never forwarded starts at (initSeq, initTS);
// one that has continues at lastSeq+1 and lastTS plus the elapsed time in
// clock ticks, at least minGap.
func (r *rewriter) anchor(seq uint16, ts uint32, epoch uint64, nowNanos int64,
	clockRate, minGap uint32, initSeq uint16, initTS uint32,
) {
	outSeq, outTS := initSeq, initTS
	if r.started {
		outSeq = r.lastSeq + 1
		outTS = r.lastTS + timestampGap(nowNanos-r.lastNanos, clockRate, minGap)
	}
	*r = rewriter{
		anchored:  true,
		epoch:     epoch,
		maxIn:     seq,
		outBase:   outSeq,
		tsOffset:  outTS - ts,
		started:   true,
		lastSeq:   outSeq,
		lastTS:    outTS,
		lastNanos: nowNanos,
	}
}

// rewrite maps an upstream packet of the anchored source. It reports false
// for a packet older than the anchor, which has no place downstream: its
// number would collide with one already sent before the anchor.
func (r *rewriter) rewrite(seq uint16, ts uint32, nowNanos int64) (outSeq uint16, outTS uint32, ok bool) {
	diff := int64(int16(seq - r.maxIn))
	ext := r.maxExt + diff
	if ext < 0 {
		return 0, 0, false
	}
	outSeq = r.outBase + uint16(ext) // modulo 2^16 by design
	outTS = ts + r.tsOffset
	if diff > 0 {
		r.maxIn, r.maxExt = seq, ext
		r.lastSeq, r.lastTS, r.lastNanos = outSeq, outTS, nowNanos
	}
	return outSeq, outTS, true
}

// timestampGap converts elapsed wall-clock time into RTP clock ticks, at
// least minGap and at most maxTimestampGap.
func timestampGap(elapsedNanos int64, clockRate, minGap uint32) uint32 {
	if elapsedNanos <= 0 {
		return minGap
	}
	const nanosPerSecond = 1_000_000_000
	e := uint64(elapsedNanos)
	// Split into whole seconds and the rest so no product can overflow:
	// secs*clockRate < 2^30 * 2^32 and rest*clockRate < 1e9 * 2^32 < 2^64.
	secs := e / nanosPerSecond
	if secs >= maxTimestampGap {
		return maxTimestampGap
	}
	ticks := secs*uint64(clockRate) + e%nanosPerSecond*uint64(clockRate)/nanosPerSecond
	switch {
	case ticks < uint64(minGap):
		return minGap
	case ticks > maxTimestampGap:
		return maxTimestampGap
	}
	return uint32(ticks)
}
