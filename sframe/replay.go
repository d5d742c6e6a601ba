package sframe

// ReplayWindowSize is how far below the highest accepted counter a ReplayWindow still accepts a counter it has
// not seen: it tolerates that much reordering.
const ReplayWindowSize = (replayBlocks - 1) * replayBlockBits

const (
	replayBlockBits = 64
	replayBlocks    = 16 // a power of two, so that the ring index is a mask
)

// ReplayWindow is an anti-replay window for the counters of one KID, a sliding bitmap kept as a ring of 64-bit
// blocks as in RFC 6479. Its zero value is ready to use and accepts any first counter.
//
// The contract, with top the highest counter accepted so far: a counter ctr is accepted if no counter has been
// accepted yet, or ctr > top, or top-ctr < ReplayWindowSize and ctr has not been accepted before. Everything else
// (a repeat, or a counter ReplayWindowSize or more below top) is rejected. Counters are the full 64-bit SFrame CTR;
// there is no wraparound, since a sender never reuses a counter.
//
// A ReplayWindow is not safe for concurrent use.
type ReplayWindow struct {
	top    uint64 // highest accepted counter, valid once seen is true
	seen   bool
	blocks [replayBlocks]uint64 // bit ctr%64 of blocks[(ctr/64)%replayBlocks] is set once ctr is accepted
}

// Check reports whether ctr would be accepted, without recording it.
func (w *ReplayWindow) Check(ctr uint64) bool {
	if !w.seen || ctr > w.top {
		return true
	}
	if w.top-ctr >= ReplayWindowSize {
		return false
	}
	return w.blocks[(ctr/replayBlockBits)%replayBlocks]&(1<<(ctr%replayBlockBits)) == 0
}

// Accept records ctr if Check(ctr) holds, and reports whether it did. Call it only for authentic frames, so that
// forged frames cannot move the window.
func (w *ReplayWindow) Accept(ctr uint64) bool {
	if !w.Check(ctr) {
		return false
	}
	if w.seen && ctr > w.top {
		// Clear the blocks the window slides over: they hold counters that are now out of the window. Blocks
		// from top's block (exclusive) to ctr's block (inclusive), at most the whole ring.
		from, to := w.top/replayBlockBits, ctr/replayBlockBits
		for i := range min(to-from, replayBlocks) {
			w.blocks[(from+1+i)%replayBlocks] = 0
		}
	}
	if !w.seen || ctr > w.top {
		w.top, w.seen = ctr, true
	}
	w.blocks[(ctr/replayBlockBits)%replayBlocks] |= 1 << (ctr % replayBlockBits)
	return true
}

// Reset forgets every counter; the window is then as its zero value.
func (w *ReplayWindow) Reset() {
	*w = ReplayWindow{}
}
