package relay

import (
	"encoding/binary"
	"slices"
	"testing"
	"time"
)

// TestSendRingWrap: from every start value, lookup finds the packets still held, across the u16 wrap.
func TestSendRingWrap(t *testing.T) {
	const size, pushed = minRing, minRing + 10
	for start := range uint64(1 << 16) {
		r := newSendRing(size, start)
		for i := range uint64(pushed) {
			if got := r.push([]byte{byte(i)}); got != start+i {
				t.Fatalf("start %d: push %d got seq %d", start, i, got)
			}
		}
		for i := range uint64(pushed) {
			seq, ok := r.lookup(uint16(start + i))
			held := i >= pushed-size
			if ok != held || ok && (seq != start+i || r.get(seq).pkt[0] != byte(i)) {
				t.Fatalf("start %d: lookup of packet %d: %d %v", start, i, seq, ok)
			}
		}
		if _, ok := r.lookup(uint16(start + pushed)); ok {
			t.Fatalf("start %d: found a packet not sent", start)
		}
	}
	r := newSendRing(size, 0)
	if _, ok := r.lookup(0); ok {
		t.Error("an empty ring found a packet")
	}
}

// TestRecvTrackWrap: from every start value, a stream with a gap, a reordered packet and duplicates is
// delivered once per packet and the gap is asked for.
func TestRecvTrackWrap(t *testing.T) {
	now := time.Now()
	for start := range uint64(1 << 16) {
		r := newRecvTrack(start)
		var got []uint64
		for _, d := range []uint64{0, 1, 3, 2, 3, 5, 1, 6} { // 4 is missing
			if r.receive(uint16(start+d), now) {
				got = append(got, d)
			}
		}
		if !slices.Equal(got, []uint64{0, 1, 3, 2, 5, 6}) || r.next != start+7 {
			t.Fatalf("start %d: delivered %v, next %d", start, got, r.next)
		}
		nacks := r.scan(now.Add(reorderDelay), time.Second, true, nil)
		if !slices.Equal(nacks, []uint16{uint16(start + 4)}) {
			t.Fatalf("start %d: nacks %v", start, nacks)
		}
		if !r.receive(uint16(start+4), now) || r.recovered != 1 || r.missed != 1 || r.expected != 7 {
			t.Fatalf("start %d: %+v", start, r)
		}
	}
}

func TestRecvTrackNacks(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const retry = 100 * time.Millisecond
	r := newRecvTrack(0)
	r.receive(0, t0)
	r.receive(3, t0) // 1 and 2 missing
	at := func(d time.Duration) []uint16 {
		n := r.scan(t0.Add(d), retry, true, nil)
		slices.Sort(n)
		return n
	}
	if n := at(reorderDelay / 2); len(n) != 0 {
		t.Fatalf("asked within the reorder allowance: %v", n)
	}
	if !r.receive(2, t0) || r.recovered != 0 { // late, but not asked for: reordered, not recovered
		t.Fatalf("reordered packet: %+v", r)
	}
	if n := at(reorderDelay); !slices.Equal(n, []uint16{1}) || r.missed != 1 {
		t.Fatalf("first request %v, missed %d", n, r.missed)
	}
	d := reorderDelay
	for i := 1; i < maxNacks; i++ {
		if n := at(d + retry - time.Millisecond); len(n) != 0 {
			t.Fatalf("request %d came early", i+1)
		}
		d += retry
		if n := at(d); !slices.Equal(n, []uint16{1}) {
			t.Fatalf("request %d: %v", i+1, n)
		}
	}
	if n := at(d + retry); len(n) != 0 || r.lost != 1 || len(r.missing) != 0 {
		t.Fatalf("after %d requests: %v, lost %d", maxNacks, n, r.lost)
	}
	if !r.receive(1, t0) { // after giving up, still new: delivered once
		t.Error("a packet given up on was refused")
	}
	if r.receive(1, t0) {
		t.Error("a duplicate was delivered")
	}
}

// TestRecvTrackSentUpTo: a tail frame makes the packets lost before a pause gaps, and is ignored when late.
func TestRecvTrackSentUpTo(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := newRecvTrack(0)
	r.receive(0, t0)
	r.sentUpTo(3, t0) // 1, 2 and 3 lost, and nothing follows
	if n := r.scan(t0.Add(reorderDelay), time.Second, true, nil); len(n) != 3 || r.next != 4 || r.expected != 4 {
		t.Fatalf("nacks %v, %+v", n, r)
	}
	r.sentUpTo(2, t0) // behind: nothing
	if !r.receive(3, t0) || r.recovered != 1 || r.next != 4 || r.expected != 4 {
		t.Fatalf("%+v", r)
	}
}

func TestRecvTrackNoRecovery(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := newRecvTrack(0)
	r.receive(0, t0)
	r.receive(2, t0)
	if n := r.scan(t0.Add(reorderDelay), time.Second, false, nil); len(n) != 0 || r.lost != 1 || r.missed != 1 {
		t.Fatalf("without recovery: nacks %v, %+v", n, r)
	}
}

func TestRecvTrackJumps(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := newRecvTrack(0)
	r.receive(0, t0)
	r.receive(30000, t0) // beyond maxMissing: the oldest gaps are given up at once
	if len(r.missing) != maxMissing || r.lost != 30000-1-maxMissing {
		t.Fatalf("missing %d, lost %d", len(r.missing), r.lost)
	}
	if r.receive(1, t0) {
		t.Error("a packet older than the window was delivered")
	}
	r.receive(30000+windowBits+1, t0) // the window moves past every gap
	r.scan(t0, time.Second, true, nil)
	for s := range r.missing {
		if r.next-s > windowBits {
			t.Fatalf("gap %d kept outside the window (next %d)", s, r.next)
		}
	}
	if r.receive(0, t0) { // far behind: older than the window
		t.Error("a wrapped old packet was delivered")
	}
}

// FuzzRecvTrack: whatever the sequence, no packet is delivered twice in a row, the gaps stay bounded and in
// the window, and scan asks only for gaps. Seeds: testdata/fuzz.
func FuzzRecvTrack(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		t0 := time.Unix(1000, 0)
		r := newRecvTrack(0)
		for i := 0; i+1 < len(b); i += 2 {
			s := binary.BigEndian.Uint16(b[i:])
			now := t0.Add(time.Duration(i) * time.Millisecond)
			if r.receive(s, now) && r.receive(s, now) {
				t.Fatalf("packet %d delivered twice", s)
			}
			for _, n := range r.scan(now, 50*time.Millisecond, true, nil) {
				ext := r.next - uint64(uint16(uint16(r.next)-n))
				if _, ok := r.missing[ext]; !ok {
					t.Fatalf("asked for %d, not a gap", n)
				}
			}
			if len(r.missing) > maxMissing {
				t.Fatalf("%d gaps", len(r.missing))
			}
			for g := range r.missing {
				if g >= r.next || r.next-g > windowBits {
					t.Fatalf("gap %d outside the window (next %d)", g, r.next)
				}
			}
		}
	})
}
