package sframe

import (
	"math"
	"math/rand/v2"
	"testing"
)

// replayModel is the contract of ReplayWindow written as plainly as possible.
type replayModel struct {
	top      uint64
	seen     bool
	accepted map[uint64]bool
}

func (m *replayModel) check(ctr uint64) bool {
	if !m.seen || ctr > m.top {
		return true
	}
	return m.top-ctr < ReplayWindowSize && !m.accepted[ctr]
}

func (m *replayModel) accept(ctr uint64) bool {
	if !m.check(ctr) {
		return false
	}
	if !m.seen || ctr > m.top {
		m.top, m.seen = ctr, true
	}
	m.accepted[ctr] = true
	return true
}

func TestReplayWindowZeroValue(t *testing.T) {
	for _, first := range []uint64{0, 1, 959, 960, 1 << 40, math.MaxUint64} {
		var w ReplayWindow
		if !w.Check(first) || !w.Accept(first) {
			t.Errorf("zero window rejected first counter %d", first)
		}
		if w.Check(first) || w.Accept(first) {
			t.Errorf("counter %d accepted twice", first)
		}
	}
}

// TestReplayWindowBoundaries starts windows at counters around block and window boundaries and at both ends of the
// counter space, and probes the edges of the window.
func TestReplayWindowBoundaries(t *testing.T) {
	starts := []uint64{0, 1, 63, 64, 65, 959, 960, 961, 1023, 1024, 1025, 1 << 32, math.MaxUint64 - 1024, math.MaxUint64 - 1, math.MaxUint64}
	for _, top := range starts {
		var w ReplayWindow
		w.Accept(top)
		// The oldest counter still in the window, and the first one out of it.
		if top >= ReplayWindowSize-1 {
			oldest := top - (ReplayWindowSize - 1)
			if !w.Check(oldest) {
				t.Errorf("top %d: oldest in-window counter %d rejected", top, oldest)
			}
			if top >= ReplayWindowSize && w.Check(oldest-1) {
				t.Errorf("top %d: counter %d, just out of the window, accepted", top, oldest-1)
			}
		}
		// Every counter of the window, once: all accepted, then all rejected.
		for d := uint64(1); d < ReplayWindowSize && d <= top; d++ {
			if !w.Accept(top - d) {
				t.Fatalf("top %d: counter %d rejected", top, top-d)
			}
		}
		for d := uint64(0); d < ReplayWindowSize && d <= top; d++ {
			if w.Check(top - d) {
				t.Fatalf("top %d: counter %d accepted twice", top, top-d)
			}
		}
		if top < math.MaxUint64 && !w.Accept(top+1) {
			t.Errorf("top %d: next counter rejected", top)
		}
	}
}

func TestReplayWindowLargeJumps(t *testing.T) {
	var w ReplayWindow
	w.Accept(5)
	w.Accept(1 << 40)
	for _, tc := range []struct {
		ctr  uint64
		want bool
	}{
		{5, false}, {6, false}, {1<<40 - ReplayWindowSize, false}, {1<<40 - ReplayWindowSize + 1, true},
		{1<<40 - 1, true}, {1 << 40, false}, {1<<40 + 1, true},
	} {
		if got := w.Check(tc.ctr); got != tc.want {
			t.Errorf("after jump, Check(%d) = %v, want %v", tc.ctr, got, tc.want)
		}
	}
	// A jump to the end of the counter space clears everything older.
	w.Accept(math.MaxUint64)
	if w.Check(1<<40+1) || !w.Check(math.MaxUint64-1) || w.Check(math.MaxUint64) {
		t.Error("jump to 2^64-1 mishandled")
	}
	w.Reset()
	if !w.Check(0) {
		t.Error("Reset did not forget")
	}
}

// TestReplayWindowModel runs random counter sequences (small steps, reordering, replays, jumps) through the
// window and the plain model of its contract.
func TestReplayWindowModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, base := range []uint64{0, 1 << 33, math.MaxUint64 - 5000} {
		var w ReplayWindow
		m := &replayModel{accepted: map[uint64]bool{}}
		ctr := base
		for i := range 200000 {
			switch r := rng.IntN(100); {
			case r < 50:
				ctr += uint64(rng.IntN(3))
			case r < 80:
				ctr -= min(ctr, uint64(rng.IntN(2*ReplayWindowSize)))
			case r < 99:
				ctr += uint64(rng.IntN(200))
			default:
				ctr += uint64(rng.IntN(5 * ReplayWindowSize))
			}
			if ctr < base { // stay in the region, and below 2^64-1 where wrapping arithmetic would leave it
				ctr = base
			}
			if ctr > math.MaxUint64-100 {
				ctr = math.MaxUint64 - uint64(rng.IntN(100))
			}
			if w.Check(ctr) != m.check(ctr) {
				t.Fatalf("base %d step %d: Check(%d) = %v, model %v", base, i, ctr, w.Check(ctr), m.check(ctr))
			}
			if rng.IntN(4) > 0 {
				if got, want := w.Accept(ctr), m.accept(ctr); got != want {
					t.Fatalf("base %d step %d: Accept(%d) = %v, model %v", base, i, ctr, got, want)
				}
			}
		}
	}
}
