package dispatch

import (
	"cmp"
	"slices"
	"time"
)

// Candidate is an edge as the scheduler sees it.
type Candidate struct {
	ID, Region, URL string
	// Load is the edge's own estimate of how busy it is, 0 (idle) to 1 (full).
	Load float64
	// Sessions is the number of joined sessions the edge reported with Load, and Updated when (on the edge's
	// clock): Inflight uses them.
	Sessions int
	Updated  time.Time
	// Capacity is the edge's MaxSessions as its heartbeat announces it (0: not announced).
	Capacity int
	Draining bool
}

// MaxLoad is the load from which an edge gets no new clients: a full edge (load 1) never does, and the margin
// below it is room for the clients that fail over to the edge as their backup, which no dispatcher sees coming.
const MaxLoad = 0.9

// Pick returns up to n distinct edges for a client of channel (of appID): the primary first, then backups.
//
// Affinity: participants of a channel must meet on one primary. An edge that already hosts the channel (placed)
// comes first; otherwise edges are ranked by rendezvous hashing of (app, channel, edge), which every dispatcher
// computes alike without talking to the others, so the first participants of a new channel agree too.
// Load: draining edges and edges at MaxLoad or above are never picked; a placed edge that became overloaded is
// skipped, and the channel's next participants go to the next edge in rendezvous order.
func Pick(cands []Candidate, appID, channel string, placed []string, n int) []Candidate {
	type ranked struct {
		c      Candidate
		placed bool
		score  uint64
	}
	var rs []ranked
	for _, c := range cands {
		if c.Draining || c.Load >= MaxLoad {
			continue
		}
		rs = append(rs, ranked{c: c, placed: slices.Contains(placed, c.ID), score: Rendezvous(appID, channel, c.ID)})
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if a.placed != b.placed {
			if a.placed {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.c.ID, b.c.ID)
	})
	out := make([]Candidate, 0, min(n, len(rs)))
	for _, r := range rs[:min(n, len(rs))] {
		out = append(out, r.c)
	}
	return out
}

// Rendezvous is the highest-random-weight score of edge for a channel: FNV-1a over the length-prefixed fields,
// then a 64-bit finalizer so that scores of similar names are unrelated. Every dispatcher computes the same, and
// edges pick each region's hub of a channel with it (internal/node).
func Rendezvous(appID, channel, edge string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for _, s := range [3]string{appID, channel, edge} {
		h = (h ^ uint64(len(s))) * prime
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * prime
		}
	}
	// splitmix64 finalizer
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
