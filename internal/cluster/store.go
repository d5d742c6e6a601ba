package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// health is shared by the stores of one Cluster: whether their watches are current (connected, initial values
// received) and since when. While they are not, entries that would expire are kept as last known: a node cut
// off from the bus cannot tell a dead edge from a live one, and keeps scheduling onto the ones it knew.
type health struct {
	ok    atomic.Bool
	since atomic.Int64 // unix nanoseconds when ok last became true
}

func (h *health) set(ok bool, now time.Time) {
	if ok {
		h.since.Store(now.UnixNano())
	}
	h.ok.Store(ok)
}

// sink receives what a bucket watch sees.
type sink interface {
	// reset replaces the whole content with a snapshot (the values present when a watch started).
	reset(entries []jetstream.KeyValueEntry, now time.Time)
	// apply applies one change seen after the snapshot.
	apply(e jetstream.KeyValueEntry, now time.Time)
}

type item[V any] struct {
	v    V
	raw  []byte // as stored: a resync compares it (revisions restart when a memory-stored bucket is lost)
	rev  uint64
	seen int64 // unix nanoseconds, local clock, when the value was last seen in the bucket
}

type change[K comparable, V any] struct {
	k  K
	v  V
	ok bool // false: removed (v is the last value)
}

type listener[K comparable, V any] struct {
	fn      func(K, V, bool)
	stopped atomic.Bool
}

// store is the local copy of one KV bucket: a map kept current by one watch, read without any network round trip,
// with listeners called on every change. With a ttl, entries not seen again within ttl are hidden and then
// removed (emulating per-key expiry where the server does not do it, and as a safety net where it does).
type store[K comparable, V any] struct {
	bucket   string
	ttl      time.Duration
	h        *health
	parseKey func(string) (K, bool)
	decode   func(K, []byte) (V, error)
	log      *slog.Logger
	// supersedes, when set, says whether a value read from the bucket may replace the one held (a higher
	// version); one that may not is ignored, unless its bytes are those held.
	supersedes func(held, v V) bool
	// sticky ignores removals from the bucket (deletes, purges, keys missing from a snapshot): values are only
	// ever replaced.
	sticky bool

	mu    sync.RWMutex
	items map[K]item[V]

	// dmu serialises changes with their delivery to listeners and with registration, so that a new listener sees
	// every value exactly once: first the current ones, then each change.
	dmu       sync.Mutex
	lmu       sync.Mutex
	listeners []*listener[K, V]
}

func newStore[K comparable, V any](bucket string, ttl time.Duration, h *health, log *slog.Logger,
	parseKey func(string) (K, bool), decode func(K, []byte) (V, error)) *store[K, V] {
	return &store[K, V]{bucket: bucket, ttl: ttl, h: h, log: log, parseKey: parseKey, decode: decode,
		items: map[K]item[V]{}}
}

// live reports whether it is current at now (unix nanoseconds).
func (s *store[K, V]) live(it item[V], now int64) bool {
	if s.ttl == 0 || !s.h.ok.Load() {
		return true
	}
	return now < max(it.seen, s.h.since.Load())+int64(s.ttl)
}

// get returns the current value of k.
func (s *store[K, V]) get(k K) (V, bool) {
	s.mu.RLock()
	it, ok := s.items[k]
	s.mu.RUnlock()
	if !ok || (s.ttl != 0 && !s.live(it, time.Now().UnixNano())) {
		var zero V
		return zero, false
	}
	return it.v, true
}

// each calls fn for every current value until fn returns false. fn must not call back into s.
func (s *store[K, V]) each(fn func(K, V) bool) {
	now := time.Now().UnixNano()
	s.mu.RLock()
	defer s.mu.RUnlock()
	for k, it := range s.items {
		if s.live(it, now) && !fn(k, it.v) {
			return
		}
	}
}

func (s *store[K, V]) len() int {
	n := 0
	s.each(func(K, V) bool { n++; return true })
	return n
}

func (s *store[K, V]) reset(entries []jetstream.KeyValueEntry, now time.Time) {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	fresh := make(map[K]item[V], len(entries))
	s.mu.RLock()
	for _, e := range entries {
		k, v, ok := s.read(e)
		switch {
		case !ok:
		case s.admits(k, v, e.Value()):
			fresh[k] = item[V]{v: v, raw: e.Value(), rev: e.Revision(), seen: now.UnixNano()}
		default:
			fresh[k] = s.items[k] // an older record: keep the one held
		}
	}
	s.mu.RUnlock()
	var changes []change[K, V]
	s.mu.Lock()
	for k, old := range s.items {
		if _, ok := fresh[k]; !ok {
			if s.sticky {
				fresh[k] = old
				continue
			}
			changes = append(changes, change[K, V]{k: k, v: old.v})
		}
	}
	for k, it := range fresh {
		if old, ok := s.items[k]; !ok || old.rev != it.rev || !bytes.Equal(old.raw, it.raw) {
			changes = append(changes, change[K, V]{k: k, v: it.v, ok: true})
		}
	}
	s.items = fresh
	s.mu.Unlock()
	s.deliver(changes)
}

func (s *store[K, V]) apply(e jetstream.KeyValueEntry, now time.Time) {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	var c change[K, V]
	switch e.Operation() {
	case jetstream.KeyValuePut:
		k, v, ok := s.read(e)
		if !ok {
			return
		}
		s.mu.Lock()
		if !s.admits(k, v, e.Value()) {
			s.mu.Unlock()
			return
		}
		s.items[k] = item[V]{v: v, raw: e.Value(), rev: e.Revision(), seen: now.UnixNano()}
		s.mu.Unlock()
		c = change[K, V]{k: k, v: v, ok: true}
	default: // delete, purge, expiry marker
		k, ok := s.parseKey(e.Key())
		if !ok || s.sticky {
			return
		}
		s.mu.Lock()
		old, had := s.items[k]
		delete(s.items, k)
		s.mu.Unlock()
		if !had {
			return
		}
		c = change[K, V]{k: k, v: old.v}
	}
	s.deliver([]change[K, V]{c})
}

// sweep removes the entries that have expired, while the watch is current.
func (s *store[K, V]) sweep(now time.Time) {
	if s.ttl == 0 || !s.h.ok.Load() {
		return
	}
	s.dmu.Lock()
	defer s.dmu.Unlock()
	n := now.UnixNano()
	var changes []change[K, V]
	s.mu.Lock()
	for k, it := range s.items {
		if !s.live(it, n) {
			delete(s.items, k)
			changes = append(changes, change[K, V]{k: k, v: it.v})
		}
	}
	s.mu.Unlock()
	s.deliver(changes)
}

// removeIf removes k if its current value satisfies cond, and reports whether it did.
func (s *store[K, V]) removeIf(k K, cond func(V) bool) bool {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	s.mu.Lock()
	it, ok := s.items[k]
	ok = ok && cond(it.v)
	if ok {
		delete(s.items, k)
	}
	s.mu.Unlock()
	if ok {
		s.deliver([]change[K, V]{{k: k, v: it.v}})
	}
	return ok
}

// admits reports whether v, read as raw, may replace what is held under k; s.mu must be held (read or write).
func (s *store[K, V]) admits(k K, v V, raw []byte) bool {
	held, ok := s.items[k]
	if !ok || s.supersedes == nil || s.supersedes(held.v, v) || bytes.Equal(held.raw, raw) {
		return true
	}
	s.log.Warn("older or conflicting value ignored", "bucket", s.bucket, "key", k)
	return false
}

func (s *store[K, V]) read(e jetstream.KeyValueEntry) (K, V, bool) {
	var zero V
	k, ok := s.parseKey(e.Key())
	if !ok {
		s.log.Debug("foreign key ignored", "bucket", s.bucket, "key", e.Key())
		return k, zero, false
	}
	v, err := s.decode(k, e.Value())
	if err != nil {
		s.log.Warn("undecodable value ignored", "bucket", s.bucket, "key", e.Key(), "err", err)
		return k, zero, false
	}
	return k, v, true
}

// deliver calls the listeners; dmu must be held.
func (s *store[K, V]) deliver(changes []change[K, V]) {
	if len(changes) == 0 {
		return
	}
	s.lmu.Lock()
	ls := s.listeners
	s.lmu.Unlock()
	for _, l := range ls {
		for _, c := range changes {
			if !l.stopped.Load() {
				l.fn(c.k, c.v, c.ok)
			}
		}
	}
}

// listen calls fn with every current value, then with every change, until stop is called. Calls are serial; fn
// must not block for long nor register listeners itself; it may call stop.
func (s *store[K, V]) listen(fn func(k K, v V, ok bool)) (stop func()) {
	l := &listener[K, V]{fn: fn}
	s.dmu.Lock()
	defer s.dmu.Unlock()
	var current []change[K, V]
	s.each(func(k K, v V) bool { current = append(current, change[K, V]{k: k, v: v, ok: true}); return true })
	for _, c := range current {
		if !l.stopped.Load() {
			fn(c.k, c.v, true)
		}
	}
	s.lmu.Lock()
	s.listeners = append(s.listeners[:len(s.listeners):len(s.listeners)], l)
	s.lmu.Unlock()
	return func() {
		l.stopped.Store(true)
		s.lmu.Lock()
		defer s.lmu.Unlock()
		for i, x := range s.listeners {
			if x == l {
				s.listeners = append(s.listeners[:i:i], s.listeners[i+1:]...)
				break
			}
		}
	}
}

var errWatchClosed = errors.New("cluster: watch closed")

// watch feeds sink from bucket kv until ctx is done or the watch breaks; ready is called once the initial
// values are in.
func watch(ctx context.Context, kv jetstream.KeyValue, s sink, ready func()) error {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("cluster: watch %s: %w", kv.Bucket(), err)
	}
	defer stopWatch(w)
	var snapshot []jetstream.KeyValueEntry
	initial := true
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("%w: %s", errWatchClosed, kv.Bucket())
			}
			now := time.Now()
			switch {
			case e == nil:
				if initial {
					s.reset(latest(snapshot), now)
					snapshot, initial = nil, false
					ready()
				}
			case initial:
				snapshot = append(snapshot, e)
			default:
				s.apply(e, now)
			}
		}
	}
}

// latest keeps the last entry of each key and drops removed keys.
func latest(entries []jetstream.KeyValueEntry) []jetstream.KeyValueEntry {
	last := make(map[string]int, len(entries))
	for i, e := range entries {
		last[e.Key()] = i
	}
	out := entries[:0:0]
	for i, e := range entries {
		if last[e.Key()] == i && e.Operation() == jetstream.KeyValuePut {
			out = append(out, e)
		}
	}
	return out
}

// stopWatch stops w and drains its channel, so that the client's delivery goroutine, which may be blocked
// handing us an update, can finish and close it.
func stopWatch(w jetstream.KeyWatcher) {
	_ = w.Stop()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case _, ok := <-w.Updates():
			if !ok {
				return
			}
		case <-t.C:
			return
		}
	}
}
