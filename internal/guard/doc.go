// Package guard protects Stoa's public endpoints — the dispatcher's POST /v1/dispatch and the edge's WebSocket
// signaling — from request floods and from clients that keep sending bad requests.
//
// # Model
//
// Every decision is about a key: the client's IPv4 address, or the IPv6 network of Config.IPv6PrefixLen bits
// (default /64, the smallest network one subscriber is usually given, so an attacker cannot evade the limits by
// rotating through the 2^64 addresses it owns). IPv4-mapped IPv6 addresses count as IPv4.
//
// Three mechanisms apply to a key, in this order:
//
//  1. Allowlist. A key inside one of Config.Allow (trusted ranges, empty by default; loopback is not exempt) is
//     always allowed and never scored.
//  2. Blocks. A blocked key is refused (403 with Retry-After over HTTP) until the block ends. A block is made here,
//     when the key's bad requests reach Config.BadThreshold within Config.BadWindow (default: 20 in a minute), and
//     lasts Config.BlockFor (default 10 minutes); or it comes from the region through the BlockStore.
//  3. Rate limits. Each endpoint Class (Dispatch, Connect, Message) has its own token bucket per key
//     (Config.Dispatch, Config.Connect, Config.Message), implemented as GCRA: one atomic timestamp per key and
//     class, updated with compare-and-swap. A request over the limit is refused (429 with Retry-After) and does
//     not consume a token, so a client that backs off for Retry-After is served again.
//
// A handler reports a bad request — an invalid or expired token, a malformed body, an unknown app, a ticket for
// another edge, and on the edge a session that misbehaves before it joins (any message but a join, a flood, no
// join by the join deadline) — with Guard.Bad, or with ReportBad from inside Guard.Middleware. Blocks are enforced locally at
// once; Run publishes them to the BlockStore so every dispatcher and edge of the region enforces them too. The
// store is authoritative for published blocks: when a block disappears from it (an operator's `stoa cluster
// unblock`), every node stops enforcing it within RemoteRecheck. Guard.Unblock lifts a block here and in the store.
//
// # Use
//
// The dispatcher wraps POST /v1/dispatch in g.Middleware(guard.Dispatch, h) and calls guard.ReportBad(r, reason)
// when it answers a bad token, body or app. The edge wraps its WebSocket endpoint in g.Middleware(guard.Connect,
// h), keeps g.ClientIP(r) with the session, calls g.Check(ip, guard.Message) for every signaling message (closing
// the session when it is Blocked) and g.Bad(ip, reason) for a bad join or ticket, a malformed message, and an
// unjoined session's misbehaviour (ReasonNotJoined, ReasonFlood, ReasonJoinTimeout). Each role runs g.Run(ctx) next
// to its server. The client is r.RemoteAddr unless Config.TrustedProxies says otherwise.
//
// # Cost
//
// Check does not allocate for a key it already tracks, whether the answer is allow, limit or block. The key table
// is split into 64 shards by a keyed hash; each shard is an open-addressing table of atomic pointers that readers
// probe without a lock (only inserting or removing a key takes the shard's mutex), and the per-key state is
// updated with atomics. A published or regional block is read from the BlockStore, which must answer from memory,
// and is then trusted for RemoteRecheck (100 ms) before it is read again, so a flood from a blocked key does not
// reach the store on every request; a key that is not blocked is looked up in the store on every Check, so that a
// new block applies at once. The system clock is read through its monotonic part only.
//
// # Memory
//
// At most Config.MaxTracked keys are tracked (about 220 bytes each, plus 8 bytes × BadThreshold for a key that
// has sent bad requests; with the defaults at most about 40 MB, of which 2 MB is allocated up front). A key at
// rest — its buckets full again, no bad request in the window, not blocked — carries no information, and Run drops
// it every Config.SweepInterval. When a shard is full (a flood of distinct source addresses), inserting a key
// evicts one of 8 keys sampled from a random slot: a key at rest if there is one, else the one idle longest that
// is not blocked, else the one idle longest. Forgetting a key only ever makes the guard more lenient to it (a full
// bucket, a zero score); a published block survives in the BlockStore.
//
// # Events
//
// Config.Events receives a block, an unblock, a failed publication, and every Config.SummaryInterval one
// summary per key of the requests refused for rate or block (at most Config.MaxSummaries keys, the rest
// aggregated) — never one event per request. Events carry the key, class, reason code and counts: never a token,
// a body or a header.
package guard
