package guard

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Block is a key refused until a time.
type Block struct {
	// Prefix is the blocked key: an IPv4 address (/32), or an IPv6 network of Config.IPv6PrefixLen bits.
	Prefix netip.Prefix `json:"prefix"`
	// Until is when the block ends (wall clock: blocks cross nodes).
	Until time.Time `json:"until"`
	// Reason is a short code for why the key was blocked, e.g. "invalid_token". Never request content.
	Reason string `json:"reason"`
	// Count is the number of bad requests that led to the block.
	Count int `json:"count,omitempty"`
	// Node is the dispatcher or edge that made the block.
	Node string `json:"node,omitempty"`
}

// BlockStore shares blocks with the rest of the region. Implementations must be safe for concurrent use.
type BlockStore interface {
	// PutBlock publishes a block region-wide. Once it returns nil, Blocked on the same store reports the block
	// (the local cache is written through), since a Guard then relies on the store for it.
	PutBlock(ctx context.Context, b Block) error
	// DeleteBlock lifts the block of p region-wide. Deleting a block that does not exist is not an error.
	DeleteBlock(ctx context.Context, p netip.Prefix) error
	// Blocked reports the region-wide block of p from a local cache, without I/O: a Guard calls it on every
	// request. It may report a block whose Until has passed; the Guard compares.
	Blocked(p netip.Prefix) (Block, bool)
}

// MemStore is a BlockStore in memory, for a single node and for tests (several Guards sharing one MemStore
// behave like the nodes of one region). The zero value is ready to use.
type MemStore struct {
	// Max bounds the number of blocks held (0: 100,000). When it is reached, expired blocks are dropped, then
	// the block that ends soonest.
	Max int
	// Now gives the time used to drop expired blocks (nil: time.Now).
	Now func() time.Time

	mu     sync.RWMutex
	blocks map[prefixKey]Block
}

// prefixKey is a netip.Prefix as a map key that hashes as plain memory.
type prefixKey struct{ hi, lo, bits uint64 }

func prefixKeyOf(p netip.Prefix) prefixKey {
	k := keyOf(p)
	return prefixKey{k.hi, k.lo, uint64(p.Bits() + 1)}
}

// PutBlock stores b, replacing any block of the same prefix.
func (s *MemStore) PutBlock(_ context.Context, b Block) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blocks == nil {
		s.blocks = make(map[prefixKey]Block)
	}
	k := prefixKeyOf(b.Prefix)
	if _, ok := s.blocks[k]; !ok {
		s.makeRoom()
	}
	s.blocks[k] = b
	return nil
}

// makeRoom drops blocks until one more fits. s.mu is held.
func (s *MemStore) makeRoom() {
	limit := s.Max
	if limit <= 0 {
		limit = 100_000
	}
	if len(s.blocks) < limit {
		return
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := now()
	for p, b := range s.blocks {
		if !t.Before(b.Until) {
			delete(s.blocks, p)
		}
	}
	for len(s.blocks) >= limit {
		var first prefixKey
		var until time.Time
		for p, b := range s.blocks {
			if until.IsZero() || b.Until.Before(until) {
				first, until = p, b.Until
			}
		}
		delete(s.blocks, first)
	}
}

// DeleteBlock removes the block of p.
func (s *MemStore) DeleteBlock(_ context.Context, p netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.blocks, prefixKeyOf(p))
	return nil
}

// Blocked reports the block of p.
func (s *MemStore) Blocked(p netip.Prefix) (Block, bool) {
	s.mu.RLock()
	b, ok := s.blocks[prefixKeyOf(p)]
	s.mu.RUnlock()
	return b, ok
}

// Blocks returns the stored blocks, including expired ones not yet dropped, ordered by prefix.
func (s *MemStore) Blocks() []Block {
	s.mu.RLock()
	out := make([]Block, 0, len(s.blocks))
	for _, b := range s.blocks {
		out = append(out, b)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Block) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return out
}
