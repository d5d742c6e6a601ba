package dispatch

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for Inflight.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newInflight(capacity int) (*Inflight, *fakeClock) {
	c := &fakeClock{t: time.Unix(1_000_000, 0)}
	return &Inflight{Capacity: capacity, Now: c.now}, c
}

// heartbeat returns the candidates as their heartbeats would announce sessions[i] of capacity each, at t.
func heartbeat(sessions []int, capacity int, t time.Time) []Candidate {
	cs := edges(len(sessions))
	for i := range cs {
		cs[i].Sessions, cs[i].Load, cs[i].Updated = sessions[i], min(float64(sessions[i])/float64(capacity), 1), t
	}
	return cs
}

// A burst of one channel's clients, before any heartbeat shows them, fills each edge to its capacity and no
// further, then spills to the next; a full edge is neither a primary nor a backup; a full region gets no edge.
func TestInflightSpreadsABurst(t *testing.T) {
	f, clock := newInflight(4)
	cs := heartbeat([]int{0, 0, 0, 0}, 4, clock.t)
	sent := map[string]int{}
	for i := range 16 {
		got := f.Pick(cs, "app", "room", nil, 3)
		if len(got) == 0 {
			t.Fatalf("client %d: no edge with %v sent", i, sent)
		}
		for _, e := range got {
			if float64(sent[e.ID])/4 >= MaxLoad {
				t.Errorf("client %d: %s offered with %d of 4 sessions sent", i, e.ID, sent[e.ID])
			}
		}
		sent[got[0].ID]++
	}
	if len(sent) != 4 {
		t.Errorf("16 clients of capacity-4 edges on %d edges: %v", len(sent), sent)
	}
	if got := f.Pick(cs, "app", "room", nil, 3); len(got) != 0 {
		t.Errorf("every edge full, yet offered %v", ids(got))
	}
}

// Heartbeats that show the clients take them off the count; a client that never joins counts for Window after a
// heartbeat that does not show it.
func TestInflightFollowsHeartbeats(t *testing.T) {
	f, clock := newInflight(4)
	one := func(sessions int) []Candidate { return heartbeat([]int{sessions}, 4, clock.t) }
	cs := one(0)
	for range 4 {
		if got := f.Pick(cs, "app", "room", nil, 3); len(got) != 1 {
			t.Fatalf("Pick = %v", ids(got))
		}
	}
	if got := f.Pick(cs, "app", "room", nil, 3); len(got) != 0 {
		t.Fatalf("full edge offered")
	}
	// The four joined: the heartbeat says full by itself.
	clock.add(time.Second)
	if got := f.Pick(one(4), "app", "room", nil, 3); len(got) != 0 {
		t.Fatalf("full edge offered")
	}
	// Two left: two places, not more (the heartbeat's growth took the four joined clients off).
	clock.add(time.Second)
	cs = one(2)
	for i := range 2 {
		if got := f.Pick(cs, "app", "room", nil, 3); len(got) != 1 {
			t.Fatalf("place %d: Pick = %v", i, ids(got))
		}
	}
	if got := f.Pick(cs, "app", "room", nil, 3); len(got) != 0 {
		t.Fatalf("full edge offered")
	}
	// Neither of the two joins. A heartbeat first seen within Window of their dispatch still counts them ...
	clock.add(time.Second)
	if got := f.Pick(one(2), "app", "room", nil, 3); len(got) != 0 {
		t.Fatalf("the two clients in flight forgotten early")
	}
	// ... one first seen Window after it does not.
	clock.add(5 * time.Second)
	if got := f.Pick(one(2), "app", "room", nil, 3); len(got) != 1 {
		t.Fatalf("clients that never joined still count")
	}
}

// An edge's capacity comes from its heartbeat (sessions/load) or, while it has no session, from its region's
// other edges; with none known, an edge is judged by its heartbeat alone.
func TestInflightCapacity(t *testing.T) {
	f, clock := newInflight(0)
	cs := heartbeat([]int{1, 0, 0}, 4, clock.t)
	sent := map[string]int{"e0": 1}
	for range 11 {
		got := f.Pick(cs, "app", "room", nil, 3)
		if len(got) == 0 {
			t.Fatalf("no edge with %v", sent)
		}
		sent[got[0].ID]++
	}
	for id, n := range sent {
		if n > 4 {
			t.Errorf("%s holds %d of 4: %v", id, n, sent)
		}
	}
	// Unknown capacity: the heartbeat's load only, so the burst stays on one edge.
	f, clock = newInflight(0)
	cs = heartbeat([]int{0, 0, 0}, 4, clock.t)
	first := f.Pick(cs, "app", "room", nil, 1)[0].ID
	for range 10 {
		if got := f.Pick(cs, "app", "room", nil, 1); got[0].ID != first {
			t.Fatalf("unknown capacity, yet the channel moved from %s to %s", first, got[0].ID)
		}
	}
}

// Dispatches to an edge that is no longer a candidate (it died) are forgotten.
func TestInflightForgets(t *testing.T) {
	f, clock := newInflight(4)
	f.Pick(heartbeat([]int{0}, 4, clock.t), "app", "room", nil, 3)
	clock.add(forget + time.Second)
	f.Pick(nil, "app", "room", nil, 3)
	if len(f.edges) != 0 {
		t.Errorf("%d edges remembered", len(f.edges))
	}
}

// Concurrent dispatches never overfill an edge.
func TestInflightConcurrent(t *testing.T) {
	f := &Inflight{Capacity: 10}
	cs := heartbeat([]int{0, 0, 0}, 10, time.Now())
	var mu sync.Mutex
	sent := map[string]int{}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			if got := f.Pick(cs, "app", fmt.Sprint("room", i%3), nil, 3); len(got) > 0 {
				mu.Lock()
				sent[got[0].ID]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	total := 0
	for id, n := range sent {
		total += n
		if n > 9 {
			t.Errorf("%s got %d of capacity 10 (at most 9 below MaxLoad)", id, n)
		}
	}
	if total != 27 {
		t.Errorf("%d clients placed, want 27 (3 edges of 9): %v", total, sent)
	}
}

func BenchmarkInflightPick(b *testing.B) {
	f := &Inflight{Capacity: 1 << 30}
	cs := heartbeat(make([]int, 20), 1<<30, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		f.Pick(cs, "app", "room", nil, 3)
	}
}
