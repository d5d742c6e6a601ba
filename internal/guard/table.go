package guard

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// The key table maps keys to entries. It is split into numShards shards by a keyed hash (so that an attacker
// cannot aim a flood at one shard). Each shard is an open-addressing hash table with linear probing over a fixed
// array of atomic pointers, at most half full: readers probe without a lock; writers (insertion, deletion by
// backward shift) hold the shard's mutex. A reader racing a writer may miss an entry that is present; a miss
// then takes the mutex and looks again before inserting, so an entry is never duplicated.

// numShards splits the key table so that concurrent insertions of different keys rarely share a lock.
const numShards = 64

// evictSample is how many keys a full shard considers when it must evict one.
const evictSample = 8

// key is a normalized Prefix's address as two words. IPv4 keys are IPv4-mapped, so they cannot collide with
// IPv6 keys (IPv4-mapped IPv6 addresses are unmapped first).
type key struct{ hi, lo uint64 }

func keyOf(p netip.Prefix) key {
	a := p.Addr().As16()
	return key{binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])}
}

type shard struct {
	slots []atomic.Pointer[entry] // len is a power of two, at least twice the shard's capacity
	mask  uint64
	mu    sync.Mutex // serializes writers
	n     int        // entries, guarded by mu
	rng   *rand.PCG  // eviction sampling, guarded by mu
	_     [64]byte   // keep shards' mutexes on separate cache lines
}

// entry is the state of one key.
type entry struct {
	key    key
	prefix netip.Prefix

	tat     [numClasses]atomic.Int64 // GCRA theoretical arrival time per class (ns; 0: never)
	seen    atomic.Int64             // last Check or Bad, to a millisecond
	lastBad atomic.Int64             // last bad request (0: never)
	block   atomic.Pointer[block]    // the block made here, nil if none
	remote  atomic.Pointer[remoteBlock]
	limited [numClasses]atomic.Uint64 // requests refused for rate since the last summary
	refused atomic.Uint64             // requests refused for a block since the last summary

	mu       sync.Mutex // guards the fields below
	dead     bool       // removed from the table
	bad      []int64    // ring of the times of the last BadThreshold bad requests
	badNext  int        // next slot of bad
	badCount int        // bad requests in the ring since the last block, at most BadThreshold
}

// block is a block made by this Guard.
type block struct {
	until     int64 // ns since the Guard's epoch
	info      Block
	published atomic.Bool // the store holds it: from then on the store is authoritative
}

// remoteBlock remembers a block read from the BlockStore, so that a flood from a blocked key does not read the
// store for every request.
type remoteBlock struct {
	until   int64 // ns since the Guard's epoch
	recheck int64 // read the store again from then on
	reason  string
}

// blockedAt reports whether e is known to be blocked at now, here or in the region.
func (e *entry) blockedAt(now int64) bool {
	if b := e.block.Load(); b != nil && now < b.until {
		return true
	}
	r := e.remote.Load()
	return r != nil && now < r.until
}

// touch records activity at now, for eviction. It writes at most once a millisecond, so that cores checking the
// same key mostly read the cache line.
func (e *entry) touch(now int64) {
	if now-e.seen.Load() > int64(time.Millisecond) {
		e.seen.Store(now)
	}
}

// take spends one token of class c at now and reports whether there was one; if not, it returns how long until
// there is. GCRA (the generic cell rate algorithm): the bucket is full when tat <= now; each request pushes tat
// one interval further; a request that would push it more than tau past now is refused.
func (e *entry) take(c Class, now int64, l gcra) (bool, int64) {
	if l.interval == 0 {
		return true, 0 // no limit
	}
	for {
		tat := e.tat[c].Load()
		next := max(tat, now) + l.interval
		if over := next - now - l.tau; over > 0 {
			return false, over
		}
		if e.tat[c].CompareAndSwap(tat, next) {
			return true, 0
		}
	}
}

// initTable sizes the shards for shardCap entries each.
func (g *Guard) initTable() {
	g.seed = [2]uint64{rand.Uint64(), rand.Uint64()}
	size := 1 << bits.Len(uint(2*g.shardCap-1)) // the power of two >= 2 × shardCap
	for i := range g.shards {
		s := &g.shards[i]
		s.slots = make([]atomic.Pointer[entry], size)
		s.mask = uint64(size - 1)
		s.rng = rand.NewPCG(rand.Uint64(), rand.Uint64())
	}
}

// hash is a keyed hash of k: its top bits choose the shard, its low bits the home slot.
func (g *Guard) hash(k key) uint64 {
	hi, lo := bits.Mul64(k.hi^g.seed[0], k.lo^g.seed[1])
	return hi ^ lo
}

func (g *Guard) shardOf(h uint64) *shard { return &g.shards[h>>(64-6)] }

// find returns k's entry in s or nil, without a lock.
func (s *shard) find(k key, h uint64) *entry {
	for i := h & s.mask; ; i = (i + 1) & s.mask {
		e := s.slots[i].Load()
		if e == nil || e.key == k {
			return e
		}
	}
}

// lookup returns the entry of p, or nil.
func (g *Guard) lookup(p netip.Prefix) *entry {
	k := keyOf(p)
	h := g.hash(k)
	s := g.shardOf(h)
	if e := s.find(k, h); e != nil {
		return e
	}
	s.mu.Lock() // a miss may be a race with a writer
	defer s.mu.Unlock()
	return s.find(k, h)
}

// entry returns the entry of p, creating it (and evicting another if the shard is full) if needed.
func (g *Guard) entry(p netip.Prefix, now int64) *entry {
	k := keyOf(p)
	h := g.hash(k)
	s := g.shardOf(h)
	if e := s.find(k, h); e != nil {
		return e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.find(k, h); e != nil {
		return e
	}
	if s.n >= g.shardCap {
		g.evict(s, now)
	}
	e := &entry{key: k, prefix: p}
	e.seen.Store(now)
	i := h & s.mask
	for s.slots[i].Load() != nil {
		i = (i + 1) & s.mask
	}
	s.slots[i].Store(e)
	s.n++
	return e
}

// evict removes one entry of the full shard s: among evictSample entries from a random slot on, a key at rest if
// any, else the one idle longest that is not blocked, else the one idle longest. s.mu is held.
func (g *Guard) evict(s *shard, now int64) {
	var (
		victim   *entry
		vBlocked bool
		n        int
	)
	start := s.rng.Uint64() & s.mask
	for i := start; n < evictSample; i = (i + 1) & s.mask {
		e := s.slots[i].Load()
		if e == nil {
			if i == (start-1)&s.mask {
				break // wrapped around
			}
			continue
		}
		if g.atRest(e, now) {
			victim = e
			break
		}
		blocked := e.blockedAt(now)
		if victim == nil || (vBlocked && !blocked) || (vBlocked == blocked && e.seen.Load() < victim.seen.Load()) {
			victim, vBlocked = e, blocked
		}
		n++
	}
	if victim != nil {
		g.remove(s, victim)
	}
}

// remove deletes e from s, shifting back the entries after it so that no probe sequence has a hole. s.mu is held.
func (g *Guard) remove(s *shard, e *entry) {
	e.mu.Lock()
	e.dead = true
	e.mu.Unlock()
	i := g.hash(e.key) & s.mask
	for s.slots[i].Load() != e {
		i = (i + 1) & s.mask
	}
	s.slots[i].Store(nil)
	s.n--
	// Backward-shift deletion: move up every later entry of the cluster whose home slot is not in (i, j].
	for j := (i + 1) & s.mask; ; j = (j + 1) & s.mask {
		f := s.slots[j].Load()
		if f == nil {
			return
		}
		home := g.hash(f.key) & s.mask
		if (j-home)&s.mask >= (j-i)&s.mask {
			s.slots[i].Store(f)
			s.slots[j].Store(nil)
			i = j
		}
	}
}

// each calls f for every entry, without a lock: entries inserted or removed meanwhile may be missed or seen.
func (g *Guard) each(f func(*entry)) {
	for i := range g.shards {
		s := &g.shards[i]
		for j := range s.slots {
			if e := s.slots[j].Load(); e != nil {
				f(e)
			}
		}
	}
}

// removeIf removes the entries for which f returns true.
func (g *Guard) removeIf(f func(*entry) bool) {
	var doomed []*entry
	for i := range g.shards {
		s := &g.shards[i]
		s.mu.Lock()
		doomed = doomed[:0]
		for j := range s.slots {
			if e := s.slots[j].Load(); e != nil && f(e) {
				doomed = append(doomed, e)
			}
		}
		for _, e := range doomed {
			g.remove(s, e)
		}
		s.mu.Unlock()
	}
}

// Tracked returns the number of keys tracked.
func (g *Guard) Tracked() int {
	n := 0
	for i := range g.shards {
		s := &g.shards[i]
		s.mu.Lock()
		n += s.n
		s.mu.Unlock()
	}
	return n
}

// atRest reports whether forgetting e changes nothing: its buckets are full, it has no bad request in the window,
// no block and no uncounted refusal.
func (g *Guard) atRest(e *entry, now int64) bool {
	for c := range e.tat {
		if e.tat[c].Load() > now || e.limited[c].Load() != 0 {
			return false
		}
	}
	if lb := e.lastBad.Load(); lb != 0 && now-lb <= g.window {
		return false
	}
	return !e.blockedAt(now) && e.refused.Load() == 0
}
