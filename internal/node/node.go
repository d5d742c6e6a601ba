// Package node runs Stoa's server roles as members of a cluster: an edge or a dispatcher, wired to the cluster's
// shared state (projects, edges, channel placement, blocks, dispatcher keys, events). `stoa edge`, `stoa dispatch`
// and `stoa dev` are thin layers over it, and so are the in-process multi-region tests.
package node

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/guard"
)

// blockStore shares the guard's blocks through the cluster. Blocks this node put are also kept locally until the
// cluster's own copy has them, so that a block applies on this node at once.
type blockStore struct {
	c *cluster.Cluster

	mu    sync.Mutex
	local map[netip.Addr]guard.Block
}

func newBlockStore(c *cluster.Cluster) *blockStore {
	return &blockStore{c: c, local: map[netip.Addr]guard.Block{}}
}

func (s *blockStore) PutBlock(ctx context.Context, b guard.Block) error {
	s.mu.Lock()
	s.local[b.Prefix.Addr()] = b
	s.mu.Unlock()
	return s.c.PutBlock(ctx, cluster.Block{IP: b.Prefix.Addr(), Until: b.Until, Reason: b.Reason, By: b.Node})
}

func (s *blockStore) DeleteBlock(ctx context.Context, p netip.Prefix) error {
	s.mu.Lock()
	delete(s.local, p.Addr())
	s.mu.Unlock()
	return s.c.DeleteBlock(ctx, "", p.Addr())
}

func (s *blockStore) Blocked(p netip.Prefix) (guard.Block, bool) {
	if b, ok := s.c.Blocked(p.Addr()); ok {
		return guard.Block{Prefix: p, Until: b.Until, Reason: b.Reason, Node: b.By}, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.local[p.Addr()]
	if ok && !time.Now().Before(b.Until) {
		delete(s.local, p.Addr())
		return guard.Block{}, false
	}
	return b, ok
}

// guardConfig completes a node's guard configuration: blocks go through the cluster, and the guard's events
// (blocks, unblocks, summaries of refused requests) join the cluster's event stream.
func guardConfig(g guard.Config, c *cluster.Cluster, region, node string, log *slog.Logger) guard.Config {
	g.Store, g.Node, g.Logger = newBlockStore(c), node, log
	next := g.Events
	g.Events = func(ev guard.Event) {
		c.PublishEvent(context.Background(), region, "guard_"+string(ev.Type), ev)
		if next != nil {
			next(ev)
		}
	}
	return g
}

// serve runs srv on its listener until ctx is done, then shuts it down.
func serve(ctx context.Context, srv *http.Server, serveFn func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- serveFn() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
