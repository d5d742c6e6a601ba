package guard

import (
	"net/netip"
	"time"
)

// EventType names what happened.
type EventType string

const (
	// EventBlock: this node blocked a key (Reason, Count, Until).
	EventBlock EventType = "block"
	// EventUnblock: a block ended: Reason is "unblocked" (Guard.Unblock), "lifted" (deleted from the BlockStore
	// by another node or an operator) or "expired".
	EventUnblock EventType = "unblock"
	// EventPublishFailed: a block could not be published to the BlockStore yet (Reason is the error class); it is
	// enforced here and retried.
	EventPublishFailed EventType = "publish_failed"
	// EventRateLimited: a summary of the requests of one Class refused for rate from a key during the last
	// SummaryInterval (Count). An event with an invalid Prefix aggregates Keys further keys.
	EventRateLimited EventType = "rate_limited"
	// EventBlockedRequests: a summary of the requests refused because their key was blocked (Count), as above.
	EventBlockedRequests EventType = "blocked_requests"
)

// Event is a structured record of the guard's decisions, for logs and the console. It carries keys, codes and
// counts, never request content.
type Event struct {
	Time   time.Time    `json:"time"`
	Type   EventType    `json:"type"`
	Node   string       `json:"node,omitempty"`
	Prefix netip.Prefix `json:"prefix,omitzero"`
	Class  string       `json:"class,omitempty"`
	Reason string       `json:"reason,omitempty"`
	Until  time.Time    `json:"until,omitzero"`
	Count  uint64       `json:"count,omitempty"`
	Keys   int          `json:"keys,omitempty"`
}
