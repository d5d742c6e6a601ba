package dispatch

import (
	"math"
	"sync"
	"time"
)

// Inflight makes a dispatcher count the clients it has just sent to an edge before the edge's heartbeats show them.
// Heartbeats come every 750 ms, and a client joins some time after its dispatch: without this, every client of a
// burst would see the same stale load and go to the same edge, far past its capacity.
//
// For each edge it keeps the times at which it made the edge a client's primary (backups get clients only on
// failover). Such a client counts toward the edge's load until a heartbeat shows it: the edge's next heartbeats
// that report more sessions take the oldest of them off, and a heartbeat first seen Window after a dispatch takes
// that dispatch off (the client has joined, or gone elsewhere). Each dispatcher counts only its own clients; the
// others' arrive with the heartbeats.
//
// A load counts in sessions, so an edge's capacity must be known: it is the capacity its heartbeat announces, else
// Sessions/Load of its heartbeat once it has a session, else the smallest capacity seen among its region's edges, else Capacity. An edge of unknown capacity
// is judged by its heartbeat alone.
//
// The zero value is ready to use. Its methods are safe for concurrent use.
type Inflight struct {
	// Window is how long a client may take from its dispatch to its join (default 5 s: the edge's join deadline).
	Window time.Duration
	// Capacity is the MaxSessions assumed of an edge whose capacity is not known otherwise (0: none).
	Capacity int
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu    sync.Mutex
	edges map[inflightKey]*inflightEdge
}

type inflightKey struct{ region, id string }

// inflightEdge is what Inflight knows of one edge to which it sent clients lately.
type inflightEdge struct {
	heartbeat time.Time // the Updated of the last heartbeat seen: identifies it, on the edge's clock
	sessions  int       // the Sessions of that heartbeat
	seen      time.Time // when that heartbeat was first seen, on this clock
	sent      []time.Time
}

// forget bounds how long a dispatch is remembered when its edge is no longer a candidate (dead, or its region
// not asked for).
const forget = time.Minute

// Pick is the package's Pick over cands with their loads raised by the clients sent to them lately (the edges it
// returns carry these estimates), and it records the primary it returns. cands are edges of one region.
func (f *Inflight) Pick(cands []Candidate, appID, channel string, placed []string, n int) []Candidate {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if f.Now != nil {
		now = f.Now()
	}
	window := f.Window
	if window <= 0 {
		window = 5 * time.Second
	}
	if f.edges == nil {
		f.edges = map[inflightKey]*inflightEdge{}
	}
	regionCap := 0
	for _, c := range cands {
		if k := capacity(c); k > 0 && (regionCap == 0 || k < regionCap) {
			regionCap = k
		}
	}
	est := make([]Candidate, len(cands))
	for i, c := range cands {
		est[i] = c
		e := f.edges[inflightKey{c.Region, c.ID}]
		if e == nil {
			continue
		}
		e.observe(c, now, window)
		k := capacity(c)
		if k == 0 {
			k = regionCap
		}
		if k == 0 {
			k = f.Capacity
		}
		if k > 0 && len(e.sent) > 0 {
			est[i].Load = max(c.Load, min(float64(c.Sessions+len(e.sent))/float64(k), 1))
		}
	}
	out := Pick(est, appID, channel, placed, n)
	if len(out) > 0 {
		p := out[0]
		k := inflightKey{p.Region, p.ID}
		e := f.edges[k]
		if e == nil {
			e = &inflightEdge{heartbeat: p.Updated, sessions: p.Sessions, seen: now}
			f.edges[k] = e
		}
		e.sent = append(e.sent, now)
	}
	for k, e := range f.edges {
		e.drop(func(t time.Time) bool { return now.Sub(t) > forget })
		if len(e.sent) == 0 {
			delete(f.edges, k)
		}
	}
	return out
}

// observe takes the clients that c's heartbeat shows off e, if it is a heartbeat e has not seen yet.
func (e *inflightEdge) observe(c Candidate, now time.Time, window time.Duration) {
	if c.Updated.Equal(e.heartbeat) {
		return
	}
	if grown := c.Sessions - e.sessions; grown > 0 {
		e.sent = e.sent[min(grown, len(e.sent)):]
	}
	e.heartbeat, e.sessions, e.seen = c.Updated, c.Sessions, now
	e.drop(func(t time.Time) bool { return e.seen.Sub(t) >= window })
}

// drop removes the oldest dispatches for which old is true.
func (e *inflightEdge) drop(old func(time.Time) bool) {
	i := 0
	for i < len(e.sent) && old(e.sent[i]) {
		i++
	}
	e.sent = e.sent[i:]
}

// capacity is the MaxSessions of c that its heartbeat announces or reveals (Load = Sessions/MaxSessions), or 0.
func capacity(c Candidate) int {
	if c.Capacity > 0 {
		return c.Capacity
	}
	if c.Sessions <= 0 || c.Load <= 0 || c.Load >= 1 {
		// A full edge reports load 1 whatever its excess: its capacity may be anything up to Sessions.
		return 0
	}
	return int(math.Round(float64(c.Sessions) / c.Load))
}
