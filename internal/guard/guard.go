package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
)

// Verdict is the outcome of a Check.
type Verdict uint8

const (
	// Allow: serve the request.
	Allow Verdict = iota
	// Limited: the key is over the rate limit of the class; retry after Decision.RetryAfter (HTTP 429).
	Limited
	// Blocked: the key is blocked; retry after Decision.RetryAfter (HTTP 403).
	Blocked
)

// String returns "allow", "limited" or "blocked".
func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case Limited:
		return "limited"
	case Blocked:
		return "blocked"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// Decision answers a Check.
type Decision struct {
	Verdict Verdict
	// RetryAfter is how long until a request of this class would be allowed (zero when allowed).
	RetryAfter time.Duration
	// Reason is the block's reason code when Verdict is Blocked.
	Reason string
}

// Allowed reports whether the request may be served.
func (d Decision) Allowed() bool { return d.Verdict == Allow }

// RetryAfterSeconds is RetryAfter rounded up to whole seconds, at least 1 unless the request is allowed: the value
// of a Retry-After header (RFC 9110, section 10.2.3).
func (d Decision) RetryAfterSeconds() int {
	if d.Verdict == Allow {
		return 0
	}
	s := (d.RetryAfter + time.Second - 1) / time.Second
	return int(max(s, 1))
}

// Reason codes for Bad. They match the error codes the dispatcher and the edge answer with.
const (
	ReasonInvalidToken  = "invalid_token"  // malformed token or bad signature
	ReasonTokenExpired  = "token_expired"  // expired token or privilege
	ReasonBadRequest    = "bad_request"    // malformed body or message
	ReasonUnknownApp    = "unknown_app"    // no project with this App ID
	ReasonInvalidTicket = "invalid_ticket" // an edge ticket that is invalid or names other edges
	// Reasons for a signaling session that has not joined: a client only ever sends its join first, at once.
	ReasonNotJoined   = "not_joined"   // a message other than join before the join
	ReasonJoinTimeout = "join_timeout" // no join within the edge's join deadline
	ReasonFlood       = "rate_limited" // messages over the session's rate limit before the join
)

// Guard rate-limits, scores and blocks keys (see the package documentation). Its methods are safe for
// concurrent use. Create it with New; call Run to publish blocks, report summaries and drop idle keys.
type Guard struct {
	cfg     Config
	clock   func() time.Time // nil: the system's monotonic clock
	epoch   time.Time        // origin of the nanoseconds kept in entries, with the monotonic reading if clock is nil
	epochW  time.Time        // epoch without its monotonic reading
	allow   []netip.Prefix
	proxies []netip.Prefix
	v6bits  int
	limits  [numClasses]gcra
	window  int64 // BadWindow in nanoseconds
	store   BlockStore
	log     *slog.Logger
	pubq    chan pubReq
	running atomic.Bool

	seed     [2]uint64
	shardCap int
	shards   [numShards]shard
}

// gcra is a Limit in the integer form GCRA uses: the emission interval and the burst tolerance, in nanoseconds.
type gcra struct {
	interval int64 // 1/Rate
	tau      int64 // Burst × interval
}

// pubReq asks Run to publish a block.
type pubReq struct {
	e      *entry
	b      *block
	failed int // failed tries so far
}

// New returns a Guard for cfg, whose zero fields take the defaults of Default.
func New(cfg Config) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	g := &Guard{
		cfg:      cfg,
		clock:    cfg.Clock,
		allow:    normalizePrefixes(cfg.Allow),
		proxies:  normalizePrefixes(cfg.TrustedProxies),
		v6bits:   cfg.IPv6PrefixLen,
		window:   int64(cfg.BadWindow),
		store:    cfg.Store,
		log:      cfg.Logger.With("component", "guard"),
		pubq:     make(chan pubReq, 1024),
		shardCap: cfg.MaxTracked / numShards,
	}
	// The epoch lies an hour back so that every time the guard sees is positive: a zero timestamp means "never".
	if g.clock == nil {
		g.epoch = time.Now().Add(-time.Hour)
	} else {
		g.epoch = g.clock().Add(-time.Hour)
	}
	g.epochW = g.epoch.Round(0)
	for c, l := range [numClasses]Limit{Dispatch: cfg.Dispatch, Connect: cfg.Connect, Message: cfg.Message} {
		if !math.IsInf(l.Rate, 1) {
			iv := int64(float64(time.Second) / l.Rate)
			g.limits[c] = gcra{interval: iv, tau: iv * int64(l.Burst)}
		}
	}
	g.initTable()
	return g, nil
}

// normalizePrefixes unmaps IPv4-mapped prefixes and masks host bits, so that Contains matches normalized addresses.
func normalizePrefixes(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out
}

// normalize unmaps an IPv4-mapped address and drops an IPv6 zone.
func normalize(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() && ip.Zone() != "" {
		ip = ip.WithZone("")
	}
	return ip
}

func contains(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Key returns the key of ip: the address itself for IPv4, its network of Config.IPv6PrefixLen bits for IPv6.
// An invalid address has the zero key, shared by every request without a usable address.
func (g *Guard) Key(ip netip.Addr) netip.Prefix {
	return g.key(normalize(ip))
}

func (g *Guard) key(ip netip.Addr) netip.Prefix {
	bits := 32
	if ip.Is6() {
		bits = g.v6bits
	}
	p, _ := ip.Prefix(bits)
	return p
}

// mono returns the nanoseconds since g.epoch. With the system clock it reads only the monotonic clock (time.Now
// reads the wall clock too, which doubles the cost on some virtual machines).
func (g *Guard) mono() int64 {
	if g.clock == nil {
		return int64(time.Since(g.epoch))
	}
	return int64(g.clock().Sub(g.epoch))
}

// wall converts a time from mono into wall-clock time: the guard's start plus the time elapsed since, so steps of
// the system clock after the start do not move blocks.
func (g *Guard) wall(now int64) time.Time {
	return g.epochW.Add(time.Duration(now))
}

// now returns mono and its wall time.
func (g *Guard) now() (time.Time, int64) {
	now := g.mono()
	return g.wall(now), now
}

// Check decides whether a request of class c (Dispatch, Connect or Message) from ip may be served, and counts it
// against the key's rate limit if so. It does not allocate for a key already tracked.
func (g *Guard) Check(ip netip.Addr, c Class) Decision {
	ip = normalize(ip)
	if len(g.allow) > 0 && contains(g.allow, ip) {
		return Decision{}
	}
	p := g.key(ip)
	now := g.mono()
	e := g.entry(p, now)
	e.touch(now)
	if d, ok := g.blocked(e, now); ok {
		e.refused.Add(1)
		return d
	}
	if ok, wait := e.take(c, now, g.limits[c]); !ok {
		e.limited[c].Add(1)
		return Decision{Verdict: Limited, RetryAfter: time.Duration(wait)}
	}
	return Decision{}
}

// blocked reports whether e is blocked at now. A local block not yet published is enforced on its own; a
// published one, and any block from the region, as the store says (re-read every RemoteRecheck at most).
func (g *Guard) blocked(e *entry, now int64) (Decision, bool) {
	b := e.block.Load()
	if b != nil && now < b.until && !b.published.Load() {
		return Decision{Verdict: Blocked, RetryAfter: time.Duration(b.until - now), Reason: b.info.Reason}, true
	}
	if g.store == nil {
		return Decision{}, false
	}
	if r := e.remote.Load(); r != nil {
		if now < r.recheck && now < r.until {
			return Decision{Verdict: Blocked, RetryAfter: time.Duration(r.until - now), Reason: r.reason}, true
		}
		e.remote.CompareAndSwap(r, nil)
	}
	sb, ok := g.store.Blocked(e.prefix)
	if ok {
		if d := sb.Until.Sub(g.wall(now)); d > 0 {
			e.remote.Store(&remoteBlock{until: now + int64(d), recheck: now + int64(RemoteRecheck), reason: sb.Reason})
			return Decision{Verdict: Blocked, RetryAfter: d, Reason: sb.Reason}, true
		}
	}
	if b != nil && now < b.until && e.block.CompareAndSwap(b, nil) {
		// Our published block is gone from the store: lifted by another node or an operator, or expired there
		// (clocks differ).
		reason := "lifted"
		if ok {
			reason = "expired"
		}
		g.emit(Event{Time: g.wall(now), Type: EventUnblock, Prefix: e.prefix, Reason: reason})
	}
	return Decision{}, false
}

// RemoteRecheck is how long a Guard trusts a block it read from the BlockStore before reading it again: a block
// deleted from the store stops being enforced within this time.
const RemoteRecheck = 100 * time.Millisecond

// Bad records a bad request from ip (reason: a short code such as ReasonInvalidToken; never request content)
// and reports whether the key is blocked after it. The report that reaches Config.BadThreshold within
// Config.BadWindow blocks the key here at once; Run publishes the block to the BlockStore. Reports from an
// allowlisted or already blocked key are not counted.
func (g *Guard) Bad(ip netip.Addr, reason string) bool {
	ip = normalize(ip)
	if len(g.allow) > 0 && contains(g.allow, ip) {
		return false
	}
	p := g.key(ip)
	t, now := g.now()
	for {
		e := g.entry(p, now)
		e.touch(now)
		if _, ok := g.blocked(e, now); ok {
			return true
		}
		e.mu.Lock()
		if e.dead {
			// Evicted between the look-up and the lock: score the key's new entry instead.
			e.mu.Unlock()
			continue
		}
		if b := e.block.Load(); b != nil && now < b.until {
			e.mu.Unlock() // blocked by a concurrent report
			return true
		}
		b := g.score(e, t, now, reason)
		e.mu.Unlock()
		if b == nil {
			return false
		}
		g.emit(Event{Time: t, Type: EventBlock, Prefix: p, Reason: b.info.Reason, Until: b.info.Until, Count: uint64(b.info.Count)})
		if g.store != nil {
			select {
			case g.pubq <- pubReq{e: e, b: b}:
			default:
				g.emit(Event{Time: t, Type: EventPublishFailed, Prefix: p, Reason: "queue_full"})
			}
		}
		return true
	}
}

// score records a bad request in e and returns the block it causes, if any. e.mu is held.
func (g *Guard) score(e *entry, t time.Time, now int64, reason string) *block {
	n := g.cfg.BadThreshold
	if e.bad == nil {
		e.bad = make([]int64, n)
	}
	e.bad[e.badNext] = now
	e.badNext = (e.badNext + 1) % n
	e.badCount = min(e.badCount+1, n)
	e.lastBad.Store(now)
	// e.bad[e.badNext] is now the oldest of the last n reports.
	if e.badCount < n || now-e.bad[e.badNext] > g.window {
		return nil
	}
	e.badCount = 0
	b := &block{
		until: now + int64(g.cfg.BlockFor),
		info: Block{
			Prefix: e.prefix,
			Until:  t.Add(g.cfg.BlockFor),
			Reason: sanitizeReason(reason),
			Count:  n,
			Node:   g.cfg.Node,
		},
	}
	e.block.Store(b)
	return b
}

// sanitizeReason keeps reason if it looks like a code (at most 32 of a-z, 0-9, '_', '-', '.'), so that a careless
// caller cannot put request content into blocks and events.
func sanitizeReason(reason string) string {
	if reason == "" || len(reason) > 32 {
		return "other"
	}
	for i := 0; i < len(reason); i++ {
		c := reason[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return "other"
		}
	}
	return reason
}

// Unblock lifts the block of ip's key here and in the BlockStore, and clears its bad-request score.
func (g *Guard) Unblock(ctx context.Context, ip netip.Addr) error {
	p := g.key(normalize(ip))
	t, _ := g.now()
	if e := g.lookup(p); e != nil {
		e.mu.Lock()
		e.block.Store(nil)
		e.remote.Store(nil)
		e.badCount = 0
		e.mu.Unlock()
	}
	var err error
	if g.store != nil {
		if err = g.store.DeleteBlock(ctx, p); err != nil {
			err = fmt.Errorf("guard: unblock %v: %w", p, err)
		}
	}
	g.emit(Event{Time: t, Type: EventUnblock, Prefix: p, Reason: "unblocked"})
	return err
}

// Run publishes blocks to the BlockStore (retrying failures every second until the block ends), reports
// summaries every Config.SummaryInterval and drops keys at rest every Config.SweepInterval, until ctx is done. It
// returns nil then, having reported the last summary; it starts no goroutine. Without Run the Guard still
// enforces its own blocks and limits, but does not share blocks, report summaries or shrink.
func (g *Guard) Run(ctx context.Context) error {
	if !g.running.CompareAndSwap(false, true) {
		return errors.New("guard: Run called twice")
	}
	defer g.running.Store(false)
	sweep := time.NewTicker(g.cfg.SweepInterval)
	defer sweep.Stop()
	summary := time.NewTicker(g.cfg.SummaryInterval)
	defer summary.Stop()
	retry := time.NewTicker(time.Second) // runs only while blocks are pending
	retry.Stop()
	defer retry.Stop()
	var pending []pubReq
	for {
		select {
		case <-ctx.Done():
			g.summarize()
			return nil
		case r := <-g.pubq:
			// While earlier blocks wait for the store, a new one waits behind them without a try of its own, so
			// that a store that hangs costs Run at most one PublishTimeout a second.
			if len(pending) > 0 {
				pending = append(pending, r)
			} else if !g.publish(ctx, r, true) {
				r.failed = 1
				pending = append(pending, r)
				retry.Reset(time.Second)
			}
		case <-retry.C:
			if pending = g.retry(ctx, pending); len(pending) == 0 {
				retry.Stop()
			}
		case <-summary.C:
			g.summarize()
		case <-sweep.C:
			g.sweep()
		}
	}
}

// retry publishes the pending blocks in order until one fails, and returns those left.
func (g *Guard) retry(ctx context.Context, pending []pubReq) []pubReq {
	for i, r := range pending {
		if !g.publish(ctx, r, r.failed == 0) {
			pending[i].failed++
			return slices.Delete(pending, 0, i)
		}
	}
	return pending[:0]
}

// publish puts r's block into the store and reports whether r is done (published, or no longer needed).
func (g *Guard) publish(ctx context.Context, r pubReq, first bool) bool {
	t, now := g.now()
	if r.e.block.Load() != r.b || now >= r.b.until {
		return true // lifted, replaced or over before it could be published
	}
	cctx, cancel := context.WithTimeout(ctx, g.cfg.PublishTimeout)
	err := g.store.PutBlock(cctx, r.b.info)
	cancel()
	if err != nil {
		if first {
			g.log.Warn("publishing a block failed; enforcing it locally and retrying", "prefix", r.b.info.Prefix, "err", err)
			g.emit(Event{Time: t, Type: EventPublishFailed, Prefix: r.b.info.Prefix, Reason: errorClass(err)})
		}
		return ctx.Err() != nil
	}
	r.b.published.Store(true)
	if r.e.block.Load() == nil {
		// Unblocked while the block was being published: take it back out.
		cctx, cancel := context.WithTimeout(ctx, g.cfg.PublishTimeout)
		defer cancel()
		if err := g.store.DeleteBlock(cctx, r.b.info.Prefix); err != nil {
			g.log.Warn("withdrawing a lifted block failed", "prefix", r.b.info.Prefix, "err", err)
		}
	}
	return true
}

// errorClass names an error for an event without its text, which may carry addresses or credentials.
func errorClass(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}

// emit sends ev to Config.Events and the logger.
func (g *Guard) emit(ev Event) {
	ev.Node = g.cfg.Node
	if g.cfg.Events != nil {
		g.cfg.Events(ev)
	}
	attrs := []any{"type", ev.Type, "prefix", ev.Prefix}
	if ev.Class != "" {
		attrs = append(attrs, "class", ev.Class)
	}
	if ev.Reason != "" {
		attrs = append(attrs, "reason", ev.Reason)
	}
	if !ev.Until.IsZero() {
		attrs = append(attrs, "until", ev.Until)
	}
	if ev.Count != 0 {
		attrs = append(attrs, "count", ev.Count)
	}
	if ev.Keys != 0 {
		attrs = append(attrs, "keys", ev.Keys)
	}
	if ev.Type == EventPublishFailed {
		g.log.Warn(string(ev.Type), attrs...)
	} else {
		g.log.Info(string(ev.Type), attrs...)
	}
}

// summarize reports and resets the refused-request counters.
func (g *Guard) summarize() {
	type sum struct {
		prefix netip.Prefix
		typ    EventType
		class  string
		count  uint64
	}
	var sums []sum
	g.each(func(e *entry) {
		if n := e.refused.Swap(0); n > 0 {
			sums = append(sums, sum{e.prefix, EventBlockedRequests, "", n})
		}
		for c := range e.limited {
			if n := e.limited[c].Swap(0); n > 0 {
				sums = append(sums, sum{e.prefix, EventRateLimited, Class(c).String(), n})
			}
		}
	})
	if len(sums) == 0 {
		return
	}
	slices.SortFunc(sums, func(a, b sum) int {
		if a.count != b.count {
			if a.count > b.count {
				return -1
			}
			return 1
		}
		return a.prefix.Addr().Compare(b.prefix.Addr())
	})
	t, _ := g.now()
	// Blocked requests first, then rate-limited ones; MaxSummaries keys of each, the rest in one event.
	for _, typ := range []EventType{EventBlockedRequests, EventRateLimited} {
		rest := Event{Time: t, Type: typ}
		n := 0
		for _, s := range sums {
			if s.typ != typ {
				continue
			}
			if n < g.cfg.MaxSummaries {
				g.emit(Event{Time: t, Type: s.typ, Prefix: s.prefix, Class: s.class, Count: s.count})
			} else {
				rest.Count += s.count
				rest.Keys++
			}
			n++
		}
		if rest.Keys > 0 {
			g.emit(rest)
		}
	}
}

// sweep drops the keys at rest and reports the blocks that expired.
func (g *Guard) sweep() {
	t, now := g.now()
	var expired []netip.Prefix
	g.removeIf(func(e *entry) bool {
		if b := e.block.Load(); b != nil && now >= b.until && e.block.CompareAndSwap(b, nil) {
			expired = append(expired, e.prefix)
		}
		return g.atRest(e, now)
	})
	for _, p := range expired {
		g.emit(Event{Time: t, Type: EventUnblock, Prefix: p, Reason: "expired"})
	}
}
