package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/connlimit"
	"github.com/stoa-rtc/stoa/internal/edge"
	"github.com/stoa-rtc/stoa/internal/guard"
	"github.com/stoa-rtc/stoa/internal/ticket"
	"github.com/stoa-rtc/stoa/token"
)

// EdgeConfig configures an edge node.
type EdgeConfig struct {
	Cluster *cluster.Cluster
	ID      string
	Region  string
	// Listener serves signaling, health and metrics (already wrapped in TLS off loopback, and in a
	// connlimit.Listener beneath the TLS to cap connections per address).
	Listener net.Listener
	// Limits sets the HTTP server's timeouts, and caps connections per address on the ICE TCP port.
	Limits connlimit.Config
	// JoinTimeout closes a signaling session that has not joined this long after it opened (0: edge.Default's, 5 s).
	JoinTimeout time.Duration
	// SignalURL is the ws:// or wss:// URL of /v1/signal that clients are given.
	SignalURL string
	// RTCAddr and PublicIPs are the edge's ICE settings (see edge.Config).
	RTCAddr   string
	PublicIPs []string
	// RelayAddr is the UDP address of the relay transport that links this edge to the other edges holding its
	// channels (default: RTCAddr's host, a free port). Links need an edge identity on the bus (Stoa credentials).
	RelayAddr string
	// MaxSessions is the number of joined sessions at which the edge reports itself full (load 1).
	MaxSessions int
	// QualityInterval is how often each session publishes a "quality" event (0: edge.Default's, 10 s).
	QualityInterval time.Duration
	// Guard configures DoS protection; its Store is the cluster.
	Guard  guard.Config
	Logger *slog.Logger
}

// RunEdge runs an edge in the cluster until ctx is done: it verifies tokens with the projects the cluster holds
// (and keeps the last copy while the bus is down), admits only clients with a dispatcher's ticket naming it,
// announces itself and its channels, obeys drain requests, shares blocks, and publishes its events. ready is
// called with the edge once it serves.
func RunEdge(ctx context.Context, cfg EdgeConfig, ready func(*edge.Server)) error {
	c := cfg.Cluster
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 2000
	}
	log := cfg.Logger.With("edge", cfg.ID, "region", cfg.Region)
	verifier := token.NewVerifier()
	defer c.SyncVerifier(verifier)()
	keys := &ticket.Keys{Fetch: func(kid string) ed25519.PublicKey {
		// A ticket of a dispatcher whose key this edge has not heard of yet: read it from the bucket rather than
		// refuse the client, who would then join another edge than its channel's.
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		k, err := c.FetchDispatcherKey(fctx, kid)
		if err != nil {
			return nil
		}
		return k.PublicKey
	}}
	defer c.SyncTicketKeys(keys)()

	g, err := guard.New(guardConfig(cfg.Guard, c, cfg.Region, cfg.ID, log))
	if err != nil {
		return err
	}
	// A new channel is announced at once, not at the next tick: the channel's next participants, dispatched a
	// moment later, then find it.
	channelsChanged := make(chan struct{}, 1)
	e, err := edge.New(edge.Config{ChannelsChanged: func() {
		select {
		case channelsChanged <- struct{}{}:
		default:
		}
	},
		ID: cfg.ID, Region: cfg.Region, RTCAddr: cfg.RTCAddr, PublicIPs: cfg.PublicIPs,
		Verifier: verifier, Tickets: keys, Guard: g, Logger: log, QualityInterval: cfg.QualityInterval,
		JoinTimeout: cfg.JoinTimeout, ConnLimits: cfg.Limits,
		// Every edge event, quality reports included, goes to the cluster's event stream for the console.
		Events: func(ev edge.Event) { c.PublishEvent(context.Background(), cfg.Region, string(ev.Type), ev) }})
	if err != nil {
		return err
	}
	rt, err := startRelay(c, cfg, e, log)
	if err != nil {
		return err
	}
	relayAddr := ""
	if rt != nil {
		defer rt.Close()
		relayAddr = relayAdvertised(rt, cfg.PublicIPs)
	}
	srv := cfg.Limits.Server(e.Handler(), slog.NewLogLogger(log.Handler(), slog.LevelDebug))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	run := func(f func() error) {
		wg.Go(func() {
			if err := f(); err != nil {
				errs <- err
				cancel()
			}
		})
	}
	run(func() error { return e.Run(ctx) })
	run(func() error { return g.Run(ctx) })
	run(func() error { return serve(ctx, srv, func() error { return srv.Serve(cfg.Listener) }) })
	run(func() error {
		return c.RunHeartbeat(ctx, func() cluster.EdgeInfo {
			// Only joined sessions are load: unjoined sockets cost little and are gone by the join deadline,
			// while counting them would let anyone make the edge look full without a token.
			n := e.Joined()
			return cluster.EdgeInfo{ID: cfg.ID, Region: cfg.Region, URL: cfg.SignalURL, Sessions: n, Capacity: cfg.MaxSessions,
				Load: min(float64(n)/float64(cfg.MaxSessions), 1), Draining: e.Draining(),
				Relay: relayAddr, Links: linkStatus(rt)}
		})
	})
	wg.Go(func() { followCluster(ctx, c, e, cfg, channelsChanged) })
	if ready != nil {
		ready(e)
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if !errors.Is(err, context.Canceled) {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// followCluster applies drain requests and keeps the edge's channel placement announced.
func followCluster(ctx context.Context, c *cluster.Cluster, e *edge.Server, cfg EdgeConfig, changed <-chan struct{}) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	announced := map[edge.Channel]time.Time{}
	for {
		select {
		case <-ctx.Done():
			for ch := range announced {
				wctx, cancel := context.WithTimeout(context.Background(), time.Second)
				c.WithdrawChannel(wctx, cluster.Placement{Region: cfg.Region, AppID: ch.AppID, Channel: ch.Name, EdgeID: cfg.ID})
				cancel()
			}
			return
		case <-t.C:
		case <-changed:
		}
		switch drain := c.DrainRequested(cfg.Region, cfg.ID); {
		case drain && !e.Draining():
			e.Drain()
		case !drain && e.Draining():
			e.Undrain()
		}
		now := time.Now()
		live := map[edge.Channel]bool{}
		for _, ch := range e.Channels() {
			live[ch] = true
			// Re-announce well within the placement's lifetime.
			if now.Sub(announced[ch]) > 3*time.Second {
				if err := c.AnnounceChannel(ctx, cluster.Placement{Region: cfg.Region, AppID: ch.AppID, Channel: ch.Name, EdgeID: cfg.ID}); err == nil {
					announced[ch] = now
				}
			}
		}
		linkChannels(c, e, cfg)
		for ch := range announced {
			if !live[ch] {
				c.WithdrawChannel(ctx, cluster.Placement{Region: cfg.Region, AppID: ch.AppID, Channel: ch.Name, EdgeID: cfg.ID})
				delete(announced, ch)
			}
		}
	}
}
