package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Block bars an IP address from a region's dispatchers and edges until a time.
type Block struct {
	// IP is the blocked address.
	IP netip.Addr `json:"ip"`
	// Region is where the block applies; empty in PutBlock means the node's region.
	Region string `json:"region"`
	// Until is when the block ends.
	Until time.Time `json:"until"`
	// Reason says why, for operators ("20 bad tokens in 1m0s").
	Reason string `json:"reason"`
	// By names the node (or operator) that blocked the address.
	By string `json:"by"`
}

func decodeBlock(ip netip.Addr, data []byte) (Block, error) {
	var b Block
	if err := json.Unmarshal(data, &b); err != nil {
		return b, err
	}
	if b.IP != ip {
		return b, fmt.Errorf("block of %s stored under %s", b.IP, ip)
	}
	return b, nil
}

// PutBlock blocks b.IP in b.Region until b.Until; every dispatcher and edge of the region enforces it within about
// a second. An empty By is the node's name. A block ends at Until even while the bus is down.
func (c *Cluster) PutBlock(ctx context.Context, b Block) error {
	if b.Region == "" {
		b.Region = c.cfg.Region
	}
	if !validName(b.Region, 32) {
		return fmt.Errorf("cluster: block: bad region %q", b.Region)
	}
	if !b.IP.IsValid() {
		return errors.New("cluster: block: no IP address")
	}
	b.IP = canonicalIP(b.IP)
	d := time.Until(b.Until)
	if d <= 0 {
		return fmt.Errorf("cluster: block of %s: until %s has passed", b.IP, b.Until)
	}
	if d > c.cfg.MaxBlock {
		return fmt.Errorf("cluster: block of %s: longer than %s", b.IP, c.cfg.MaxBlock)
	}
	if b.By == "" {
		b.By = c.cfg.Node
	}
	v, err := c.sealed(kindBlock, b)
	if err != nil {
		return err
	}
	if err := c.ensureRegion(ctx, b.Region); err != nil {
		return err
	}
	return c.put(ctx, c.regionBuckets(b.Region).blocks, ipKey(b.IP), v, d)
}

// DeleteBlock lifts the block of ip in region (empty: the node's).
func (c *Cluster) DeleteBlock(ctx context.Context, region string, ip netip.Addr) error {
	if region == "" {
		region = c.cfg.Region
	}
	if !validName(region, 32) {
		return fmt.Errorf("cluster: block: bad region %q", region)
	}
	return c.remove(ctx, c.regionBuckets(region).blocks, ipKey(ip), true)
}

// Blocked reports whether ip is blocked in the node's region now, from the local copy: a map look-up, without
// allocation, network or even a clock reading (a timer removes each block from the copy at its Until).
func (c *Cluster) Blocked(ip netip.Addr) (Block, bool) {
	if ip.Is4In6() {
		ip = ip.Unmap()
	}
	if ip.Zone() != "" {
		ip = ip.WithZone("")
	}
	return c.own.blocks.get(ip)
}

// blockTimers removes blocks from a region's local copy at their Until, whether or not the bus is up.
type blockTimers struct {
	s      *store[netip.Addr, Block]
	mu     sync.Mutex
	timers map[netip.Addr]*time.Timer
	closed bool
}

// changed is a listener of the blocks store: it (re)schedules or cancels the block's removal.
func (bt *blockTimers) changed(ip netip.Addr, b Block, ok bool) {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if t := bt.timers[ip]; t != nil {
		t.Stop()
		delete(bt.timers, ip)
	}
	if ok && !bt.closed {
		bt.timers[ip] = time.AfterFunc(time.Until(b.Until), func() { bt.expire(ip) })
	}
}

func (bt *blockTimers) expire(ip netip.Addr) {
	now := time.Now()
	if bt.s.removeIf(ip, func(b Block) bool { return !now.Before(b.Until) }) {
		return // changed has run and forgotten the timer
	}
	// The wall clock disagrees with the timer's monotonic one; try again when the block should end.
	if b, ok := bt.s.get(ip); ok {
		bt.changed(ip, b, true)
	}
}

func (bt *blockTimers) stop() {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	bt.closed = true
	for ip, t := range bt.timers {
		t.Stop()
		delete(bt.timers, ip)
	}
}

// Blocks returns the blocks in force in the node's region, ordered by address.
func (c *Cluster) Blocks() []Block {
	now := time.Now()
	var out []Block
	c.own.blocks.each(func(_ netip.Addr, b Block) bool {
		if now.Before(b.Until) {
			out = append(out, b)
		}
		return true
	})
	slices.SortFunc(out, func(a, b Block) int { return a.IP.Compare(b.IP) })
	return out
}

// OnBlock calls fn with every block of the node's region, then on every change (removed: lifted or expired on
// the server), until stop is called; see OnProject for the rules fn follows.
func (c *Cluster) OnBlock(fn func(b Block, removed bool)) (stop func()) {
	return c.own.blocks.listen(func(_ netip.Addr, b Block, ok bool) { fn(b, !ok) })
}
