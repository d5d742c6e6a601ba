package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/connlimit"
	"github.com/stoa-rtc/stoa/internal/dispatch"
	"github.com/stoa-rtc/stoa/internal/guard"
	"github.com/stoa-rtc/stoa/token"
)

// DispatcherConfig configures a dispatcher node.
type DispatcherConfig struct {
	Cluster *cluster.Cluster
	ID      string
	// Region is the dispatcher's region; clients are scheduled onto its edges only.
	Region string
	// Regions lists further regions this dispatcher may schedule into when a client asks for one (stoa dev serves
	// every region of its layout from one entry point); empty in production.
	Regions []string
	// RegionMap, if set, places clients that name no region by their address; the dispatcher then also schedules
	// into every region it names (the Cluster must follow them, as it must follow Regions and Fallback).
	RegionMap *dispatch.RegionMap
	// Fallback, if set, is the region to use when the client's region has no healthy edge (off by default:
	// regional isolation).
	Fallback string
	// Listener, if set, is served (wrapped in TLS off loopback, and in a connlimit.Listener beneath the TLS).
	Listener net.Listener
	// Limits sets the HTTP server's timeouts.
	Limits connlimit.Config
	Guard  guard.Config
	Logger *slog.Logger
}

// Followed returns the regions other than its own that the dispatcher may schedule into (Regions, Fallback and
// the RegionMap's), sorted: its Cluster must follow them (cluster.Config.Regions).
func (c DispatcherConfig) Followed() []string {
	out := slices.Clone(c.Regions)
	if c.Fallback != "" {
		out = append(out, c.Fallback)
	}
	if c.RegionMap != nil {
		out = append(out, c.RegionMap.Regions()...)
	}
	slices.Sort(out)
	return slices.DeleteFunc(slices.Compact(out), func(r string) bool { return r == c.Region })
}

// Dispatcher is a dispatcher node. Its Handler can also be embedded in another server (stoa dev).
type Dispatcher struct {
	cfg      DispatcherConfig
	handler  http.Handler
	guard    *guard.Guard
	verifier *token.Verifier
	key      ed25519.PrivateKey
	inflight *dispatch.Inflight
}

// NewDispatcher prepares a dispatcher with a fresh key pair; Run publishes the key and serves.
func NewDispatcher(cfg DispatcherConfig) (*Dispatcher, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	g, err := guard.New(guardConfig(cfg.Guard, cfg.Cluster, cfg.Region, cfg.ID, cfg.Logger))
	if err != nil {
		return nil, err
	}
	verifier := token.NewVerifier()
	d := &Dispatcher{cfg: cfg, guard: g, key: priv, verifier: verifier,
		inflight: &dispatch.Inflight{}}
	h := &dispatch.Handler{Verifier: verifier, Logger: cfg.Logger, Edges: d.schedule, RegionMap: cfg.RegionMap,
		Signer: &dispatch.Signer{KID: cfg.ID, Key: priv}}
	mux := http.NewServeMux()
	mux.Handle("/v1/dispatch", g.Middleware(guard.Dispatch, h))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok"}`))
	})
	d.handler = mux
	return d, nil
}

// Handler serves /v1/dispatch and /healthz.
func (d *Dispatcher) Handler() http.Handler { return d.handler }

// Run follows the cluster's projects, publishes the dispatcher's public key (so edges accept its tickets), runs
// its guard and, with a Listener, serves until ctx is done. ready, if set, is called once the key is published
// and the dispatcher serves.
func (d *Dispatcher) Run(ctx context.Context, ready func()) error {
	c := d.cfg.Cluster
	defer c.SyncVerifier(d.verifier)()
	pub := d.key.Public().(ed25519.PublicKey)
	put := func() error {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return c.PutDispatcherKey(pctx, cluster.DispatcherKey{ID: d.cfg.ID, Region: d.cfg.Region, PublicKey: pub})
	}
	if err := put(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Go(func() {
		if err := d.guard.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			errs <- err
		}
	})
	wg.Go(func() {
		// Refresh the key well within its lifetime, so it never lapses while the dispatcher runs.
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				put()
			}
		}
	})
	if d.cfg.Listener != nil {
		srv := d.cfg.Limits.Server(d.handler, slog.NewLogLogger(d.cfg.Logger.Handler(), slog.LevelDebug))
		wg.Go(func() {
			if err := serve(ctx, srv, func() error { return srv.Serve(d.cfg.Listener) }); err != nil {
				errs <- err
				cancel()
			}
		})
	}
	if ready != nil {
		ready()
	}
	<-ctx.Done()
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// schedule picks the edges of a verified request: exactly three distinct healthy edges of the client's region
// (fewer only if the region has fewer), placement and rendezvous hashing for affinity, load-aware; full edges
// never.
func (d *Dispatcher) schedule(req dispatch.Request) (string, []dispatch.Edge, error) {
	region := d.cfg.Region
	if req.Region != "" && req.Region != region {
		if !d.serves(req.Region) {
			return "", nil, &dispatch.Error{Status: http.StatusBadRequest, Code: "wrong_region",
				Message: "this dispatcher serves region " + d.cfg.Region}
		}
		region = req.Region
	}
	picked := d.pick(region, req)
	if len(picked) == 0 && d.cfg.Fallback != "" && d.cfg.Fallback != region {
		region = d.cfg.Fallback
		picked = d.pick(region, req)
	}
	if len(picked) == 0 {
		return "", nil, &dispatch.Error{Status: http.StatusServiceUnavailable, Code: "no_edges",
			Message: "no healthy edge in region " + region}
	}
	return region, picked, nil
}

// serves reports whether the dispatcher schedules into region besides its own.
func (d *Dispatcher) serves(region string) bool {
	return slices.Contains(d.cfg.Regions, region) ||
		d.cfg.RegionMap != nil && slices.Contains(d.cfg.RegionMap.Regions(), region)
}

func (d *Dispatcher) pick(region string, req dispatch.Request) []dispatch.Edge {
	c := d.cfg.Cluster
	var cands []dispatch.Candidate
	for _, e := range c.Edges(region) {
		cands = append(cands, dispatch.Candidate{ID: e.ID, Region: e.Region, URL: e.URL, Load: e.Load,
			Sessions: e.Sessions, Updated: e.Updated, Capacity: e.Capacity, Draining: e.Draining})
	}
	var placed []string
	for _, p := range c.ChannelEdges(region, req.AppID, req.Channel) {
		placed = append(placed, p.EdgeID)
	}
	var out []dispatch.Edge
	for _, e := range d.inflight.Pick(cands, req.AppID, req.Channel, placed, 3) {
		out = append(out, dispatch.Edge{ID: e.ID, Region: e.Region, URL: e.URL})
	}
	return out
}
