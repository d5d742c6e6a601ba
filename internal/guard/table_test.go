package guard

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// checkTable verifies the invariants of every shard: the count matches, no key appears twice, and every entry is
// found from its home slot (no hole in its probe sequence).
func checkTable(t *testing.T, g *Guard) {
	t.Helper()
	for i := range g.shards {
		s := &g.shards[i]
		seen := map[key]bool{}
		n := 0
		for j := range s.slots {
			e := s.slots[j].Load()
			if e == nil {
				continue
			}
			n++
			if seen[e.key] {
				t.Fatalf("shard %d: key %v twice", i, e.prefix)
			}
			seen[e.key] = true
			h := g.hash(e.key)
			if g.shardOf(h) != s {
				t.Fatalf("shard %d holds %v of another shard", i, e.prefix)
			}
			if s.find(e.key, h) != e {
				t.Fatalf("shard %d: %v not found from its home slot", i, e.prefix)
			}
			if e.dead {
				t.Fatalf("shard %d: dead entry %v in the table", i, e.prefix)
			}
		}
		if n != s.n {
			t.Fatalf("shard %d: %d entries, count %d", i, n, s.n)
		}
		if n > g.shardCap {
			t.Fatalf("shard %d: %d entries, capacity %d", i, n, g.shardCap)
		}
	}
}

// TestTable drives the table with random insertions, evictions and removals over few keys, so that probe
// sequences collide and wrap, and checks its invariants and the model of which keys are present.
func TestTable(t *testing.T) {
	for _, maxTracked := range []int{64, 64 * 3, 64 * 8} {
		g, _, _ := newTestGuard(t, Config{MaxTracked: maxTracked})
		rng := rand.New(rand.NewPCG(1, uint64(maxTracked)))
		keys := make([]netip.Prefix, 4*maxTracked)
		for i := range keys {
			keys[i] = g.Key(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
		}
		present := map[netip.Prefix]*entry{}
		for step := range 5000 {
			p := keys[rng.IntN(len(keys))]
			switch op := rng.IntN(10); {
			case op < 6: // look up or insert
				e := g.entry(p, int64(step))
				if old := present[p]; old != nil && !old.dead && old != e {
					t.Fatalf("step %d: %v has a new entry though it was never removed", step, p)
				}
				present[p] = e
			case op < 8: // look up
				if e := g.lookup(p); e != nil && present[p] != e {
					t.Fatalf("step %d: lookup(%v) found an unknown entry", step, p)
				}
			default: // remove a random subset
				g.removeIf(func(e *entry) bool { return rng.IntN(4) == 0 })
			}
			// Entries evicted or removed are dead; drop them from the model, and check the rest are found.
			if step%8 != 0 {
				continue
			}
			for q, e := range present {
				if e.dead {
					delete(present, q)
				} else if g.lookup(q) != e {
					t.Fatalf("step %d: %v lost", step, q)
				}
			}
			if step%500 == 0 {
				checkTable(t, g)
			}
		}
		checkTable(t, g)
		for q, e := range present {
			if e.dead {
				delete(present, q)
			}
		}
		if g.Tracked() != len(present) {
			t.Fatalf("Tracked %d, model %d", g.Tracked(), len(present))
		}
	}
}
