package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stoa-rtc/stoa/internal/busauth"
)

// ErrClosed is returned by operations on a closed Cluster.
var ErrClosed = errors.New("cluster: closed")

// markerTTL is how long a bucket with expiring keys keeps the marker of a removed or expired key, so that
// watchers learn about the removal.
const markerTTL = time.Minute

// setupTimeout bounds one attempt to create the buckets and start the watches.
const setupTimeout = 10 * time.Second

// Cluster is a node's view of the cluster: a NATS connection (to an embedded server or external ones), local copies
// of the buckets it follows, kept current by watches, and the event publisher. Reads (Project, Edges, Blocked,
// ...) are answered from the local copies without a network round trip; writes go to the bus.
//
// When the bus is unreachable, the node keeps running: reads keep answering with the last known values (expiring
// entries are not expired meanwhile), writes fail fast, and events are dropped and counted. The client reconnects
// forever with backoff; on reconnection every watch is restarted from the bucket's current content, so the copies
// catch up with whatever changed meanwhile.
//
// A Cluster is safe for concurrent use.
type Cluster struct {
	cfg Config
	log *slog.Logger

	srv    *server.Server // the embedded server, or nil
	tmpDir string         // removed on Close
	nc     *nats.Conn
	js     jetstream.JetStream

	creds    *busauth.Credentials // the node's credentials, or nil
	verifier *busauth.Verifier    // checks signed records; nil accepts them unchecked
	refused  atomic.Uint64        // records ignored for want of a valid signature

	h        health
	ttlMode  atomic.Bool // the servers expire keys themselves (per-message TTL)
	ttlKnown atomic.Bool // ttlMode has been learnt from the servers

	projects *store[string, Project]
	vmu      sync.Mutex
	written  map[string]uint64 // App ID → the highest project version this node wrote
	dkeys    *store[string, DispatcherKey]
	own      *region
	rmu      sync.RWMutex
	regions  map[string]*region // followed regions, own included

	emu     sync.Mutex
	ensured map[string]bool // regions whose buckets exist, this session

	kick       chan struct{} // (re)connected: restart the watches
	connClosed chan struct{} // closed when the client has given up (Close, or authentication refused)
	ready      chan struct{} // closed when the first session is current
	readyMu    sync.Once
	lastErr    atomic.Value // string: the last setup error, for Start's report

	projectsBucket, dispatchersBucket string
	evStream, evSubjectPrefix         string
	events                            chan *nats.Msg
	evPublished, evDropped, evFailed  atomic.Uint64

	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	mu        sync.Mutex // guards closed and wg.Add
	closed    bool
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// region holds the local copies of one region's buckets.
type region struct {
	name     string
	edges    *store[string, EdgeInfo]
	channels *store[placementKey, Placement]
	drains   *store[string, drainCmd]
	blocks   *store[netip.Addr, Block] // own region only

	imu    sync.RWMutex
	byChan map[[2]string]map[string]struct{} // (app, channel) → edge ids, for ChannelEdges
	stop   func()                            // stops the region's listeners and timers

	synced     chan struct{} // closed once the copies first held the buckets' content
	syncedOnce sync.Once
}

func (r *region) markSynced() { r.syncedOnce.Do(func() { close(r.synced) }) }

// Start connects to the cluster (starting the embedded server when cfg.URLs is empty), creates the buckets and the
// event stream that are missing and updates those whose configuration differs (none with UseExisting), and
// returns once the local copies hold the buckets' current content (other regions': see SyncRegions). ctx bounds
// only the start: if the bus cannot be reached before ctx is done, Start fails. The Cluster then runs until Close.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "cluster", "region", cfg.Region, "node", cfg.Node)
	c := &Cluster{
		cfg:               cfg,
		log:               log,
		regions:           map[string]*region{},
		ensured:           map[string]bool{},
		kick:              make(chan struct{}, 1),
		connClosed:        make(chan struct{}),
		ready:             make(chan struct{}),
		events:            make(chan *nats.Msg, cfg.EventBuffer),
		evStream:          cfg.Prefix + "_events",
		evSubjectPrefix:   cfg.Prefix + ".events.",
		projectsBucket:    cfg.Prefix + "_projects",
		dispatchersBucket: cfg.Prefix + "_dispatchers",
	}
	if err := c.loadCredentials(); err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.projects = newStore(c.projectsBucket, 0, &c.h, log, parseTokenKey, decodeProject(cfg.ProjectKeys, cfg.ProjectOpenKey))
	c.projects.supersedes = newerProject
	// With trusted keys, only a signed tombstone removes a project: a delete from the bus is anyone's.
	c.projects.sticky = len(cfg.ProjectKeys) > 0
	c.written = map[string]uint64{}
	c.dkeys = newStore(c.dispatchersBucket, cfg.DispatcherKeyTTL, &c.h, log, parseTokenKey,
		opened(c, kindDispatcherKey, "", decodeDispatcherKey))
	c.own = c.region(cfg.Region)

	if len(cfg.URLs) == 0 {
		if err := c.startEmbedded(); err != nil {
			c.cleanup()
			return nil, err
		}
	}
	if err := c.connect(); err != nil {
		c.cleanup()
		return nil, err
	}
	c.wg.Go(c.run)
	c.wg.Go(c.publishEvents)

	select {
	case <-c.ready:
		return c, nil
	case <-c.connClosed:
		c.Close()
		return nil, fmt.Errorf("cluster: not ready: connection closed (last error: %s)", c.lastErr.Load())
	case <-ctx.Done():
		c.Close()
		if e, _ := c.lastErr.Load().(string); e != "" {
			return nil, fmt.Errorf("cluster: not ready: %w (last error: %s)", ctx.Err(), e)
		}
		return nil, fmt.Errorf("cluster: not ready: %w", ctx.Err())
	}
}

// Close stops the node's cluster activity and returns after every goroutine the Cluster started has stopped:
// the watches, the event publisher (which first sends what is queued, for at most two seconds), running
// RunHeartbeat and ConsumeEvents calls (which return), the NATS connection and, if there is one, the embedded
// server, whose temporary store it then removes. Other processes connected to the embedded server lose it.
// Reads keep answering with the last values; writes return ErrClosed. Close is idempotent.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		c.h.set(false, time.Now())
		c.cleanup()
	})
	return nil
}

func (c *Cluster) cleanup() {
	if c.nc != nil {
		c.nc.Close()
	}
	if c.srv != nil {
		c.srv.Shutdown()
		c.srv.WaitForShutdown()
	}
	if c.tmpDir != "" {
		if err := os.RemoveAll(c.tmpDir); err != nil {
			c.log.Warn("temporary store not removed", "dir", c.tmpDir, "err", err)
		}
	}
	c.rmu.RLock()
	defer c.rmu.RUnlock()
	for _, r := range c.regions {
		r.stop()
	}
}

// goTracked runs fn as part of the Cluster: Close cancels its context and waits for it.
func (c *Cluster) goTracked(fn func(ctx context.Context) error) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.wg.Add(1)
	c.mu.Unlock()
	defer c.wg.Done()
	return fn(c.ctx)
}

// Region returns the node's region.
func (c *Cluster) Region() string { return c.cfg.Region }

// ClientURL returns the URL of the embedded NATS server, through which other processes can join (`stoa dev
// --nats-listen`), or "" when the node uses external servers.
func (c *Cluster) ClientURL() string {
	if c.srv == nil {
		return ""
	}
	return c.srv.ClientURL()
}

// Connected reports whether the node is connected to the bus and its local copies are current.
func (c *Cluster) Connected() bool { return c.h.ok.Load() && c.nc.IsConnected() }

// MessageTTL reports whether the servers expire keys themselves (nats-server 2.11 and later), rather than the
// node emulating it.
func (c *Cluster) MessageTTL() bool { return c.ttlMode.Load() }

func (c *Cluster) connect() error {
	opts := []nats.Option{
		nats.Name("stoa " + c.cfg.Node),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.CustomReconnectDelay(reconnectDelay),
		// Publishing while disconnected fails at once instead of queueing stale heartbeats and writes.
		nats.ReconnectBufSize(-1),
		nats.PingInterval(10 * time.Second),
		nats.ConnectHandler(func(*nats.Conn) { c.log.Info("connected to NATS"); c.kickNow() }),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
			c.kickNow()
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			c.h.set(false, time.Now())
			if err != nil {
				c.log.Warn("disconnected from NATS; keeping last known state", "err", err)
			}
		}),
		// The client gives up on repeated authentication errors: a node that cannot be let in stops trying.
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				c.lastErr.Store(err.Error())
			}
			close(c.connClosed)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			c.log.Debug("NATS async error", "subject", subj, "err", err)
		}),
	}
	url := strings.Join(c.cfg.URLs, ",")
	if c.srv != nil {
		url = c.srv.ClientURL()
		opts = append(opts, nats.InProcessServer(c.srv))
	}
	if c.creds != nil {
		opts = append(opts, nats.UserJWT(func() (string, error) { return c.creds.JWT(), nil }, c.creds.SignNonce))
		if _, ok := c.creds.Identity(); ok {
			// Stoa's credentials let a node subscribe only to its own replies (busauth.Permissions).
			opts = append(opts, nats.CustomInboxPrefix(c.creds.InboxPrefix()))
		}
	}
	if c.cfg.User != "" {
		pw, err := os.ReadFile(c.cfg.PasswordFile)
		if err != nil {
			return fmt.Errorf("cluster: password_file: %w", err)
		}
		p, _, _ := strings.Cut(string(pw), "\n")
		opts = append(opts, nats.UserInfo(c.cfg.User, strings.TrimRight(p, "\r")))
	}
	if len(c.cfg.URLs) > 0 {
		tc, err := c.tlsConfig()
		if err != nil {
			return err
		}
		if tc != nil {
			opts = append(opts, nats.Secure(tc))
		}
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("cluster: connect: %w", err)
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(256),
		jetstream.WithPublishAsyncTimeout(5*time.Second),
		jetstream.WithPublishAsyncAckHandler(func(jetstream.JetStream, *nats.Msg, *jetstream.PubAck) {
			c.evPublished.Add(1)
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			c.evFailed.Add(1)
			c.log.Debug("event not stored", "subject", m.Subject, "err", err)
		}))
	if err != nil {
		nc.Close()
		return fmt.Errorf("cluster: jetstream: %w", err)
	}
	c.nc, c.js = nc, js
	return nil
}

// reconnectDelay backs off from 50ms to 2s, with jitter so that a region's nodes do not reconnect in step.
func reconnectDelay(attempts int) time.Duration {
	d := 50 * time.Millisecond << min(attempts, 6)
	d = min(d, 2*time.Second)
	return d/2 + rand.N(d/2+1)
}

func (c *Cluster) tlsConfig() (*tls.Config, error) {
	if c.cfg.TLS != nil {
		return c.cfg.TLS.Clone(), nil
	}
	if c.cfg.TLSCAFile == "" && c.cfg.TLSCertFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(c.cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("cluster: tls_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster: tls_ca_file %s: no certificates", c.cfg.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	if c.cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.cfg.TLSCertFile, c.cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("cluster: tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func (c *Cluster) kickNow() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// run keeps a session (buckets ensured, watches running) going until Close, starting a new one after every
// reconnection or failure.
func (c *Cluster) run() {
	backoff := 100 * time.Millisecond
	for {
		err := c.session(c.ctx)
		c.h.set(false, time.Now())
		if c.ctx.Err() != nil {
			return
		}
		wait := time.Duration(0)
		if err != nil {
			c.lastErr.Store(err.Error())
			c.log.Warn("cluster session failed; retrying", "err", err, "retry_in", backoff)
			wait, backoff = backoff, min(2*backoff, 5*time.Second)
		} else {
			backoff = 100 * time.Millisecond
		}
		t := time.NewTimer(wait)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-c.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// globalGroup names the watches of the global buckets; regionGroup prefixes those of a region's.
const (
	globalGroup = "global"
	regionGroup = "region:"
)

// session ensures the buckets, starts the watches and keeps them until ctx is done (nil), a reconnection asks for
// a fresh start (nil) or a vital watch breaks (error).
//
// Watches come in groups: the global buckets, the own region's, each other followed region's. Only the own
// region's group is vital: when one of its watches breaks, the session starts over. Any other group that breaks —
// its buckets live in another region's NATS cluster, which may be down or cut off — is dropped alone and started
// again when it can be (looked for every two seconds), so that no other region disturbs this one. Until the node
// has been ready once, the global group is needed too: a node must not serve without the projects.
func (c *Cluster) session(ctx context.Context) error {
	select { // a session starts afresh anyway: only later reconnections matter
	case <-c.kick:
	default:
	}
	if !c.nc.IsConnected() {
		select {
		case <-ctx.Done():
		case <-c.kick:
		}
		return nil
	}
	c.emu.Lock()
	clear(c.ensured)
	c.emu.Unlock()
	wasReady := c.isReady()

	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	type failure struct {
		group string
		err   error
	}
	errc := make(chan failure, 16)
	var pending atomic.Int64
	allReady := make(chan struct{})
	pending.Add(1) // released once the initial watches are started
	done := func() {
		if pending.Add(-1) == 0 {
			close(allReady)
		}
	}
	groups := map[string]context.CancelFunc{}
	// startGroup starts one watch per bucket; initial ones count for the session's readiness. synced, if set, is
	// called once every watch of the group holds its bucket's content.
	startGroup := func(group string, kvs []jetstream.KeyValue, sinks []sink, initial bool, synced func()) {
		gctx, gcancel := context.WithCancel(sctx)
		groups[group] = gcancel
		var left atomic.Int64
		left.Store(int64(len(kvs)))
		for i, kv := range kvs {
			if initial {
				pending.Add(1)
			}
			ready := sync.OnceFunc(func() {
				if initial {
					done()
				}
				if left.Add(-1) == 0 && synced != nil {
					synced()
				}
			})
			wg.Go(func() {
				err := watch(gctx, kv, sinks[i], ready)
				if gctx.Err() == nil {
					select {
					case errc <- failure{group, err}:
					case <-sctx.Done():
					}
				}
			})
		}
	}
	addGlobal := func(ctx context.Context, initial bool) error {
		if groups[globalGroup] != nil {
			return nil
		}
		var kvs []jetstream.KeyValue
		for _, name := range []string{c.projectsBucket, c.dispatchersBucket} {
			kv, err := c.js.KeyValue(ctx, name)
			if err != nil {
				return fmt.Errorf("cluster: bucket %s: %w", name, err)
			}
			kvs = append(kvs, kv)
		}
		startGroup(globalGroup, kvs, []sink{c.projects, c.dkeys}, initial, nil)
		return nil
	}
	addRegion := func(ctx context.Context, name string, initial bool) error {
		if groups[regionGroup+name] != nil {
			return nil
		}
		kvs, err := c.bindRegion(ctx, name)
		if err != nil {
			return err
		}
		r := c.region(name)
		sinks := []sink{r.edges, r.channels, r.drains}
		if r.blocks != nil {
			sinks = append(sinks, r.blocks)
		}
		startGroup(regionGroup+name, kvs[:len(sinks)], sinks, initial, r.markSynced)
		return nil
	}
	retry := func() {
		rctx, rcancel := context.WithTimeout(sctx, 2*time.Second)
		defer rcancel()
		if groups[globalGroup] == nil {
			if err := addGlobal(rctx, false); err != nil {
				c.log.Debug("global buckets still unreachable", "err", err)
			} else {
				c.log.Info("watching the global buckets again")
			}
		}
		if len(c.cfg.Regions) == 0 {
			return
		}
		for _, name := range c.otherRegions(rctx) {
			if groups[regionGroup+name] == nil {
				if err := addRegion(rctx, name, false); err == nil {
					c.log.Info("following region", "followed", name)
				} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
					c.log.Debug("cannot follow region yet", "followed", name, "err", err)
				}
			}
		}
	}

	setup, setupCancel := context.WithTimeout(sctx, setupTimeout)
	defer setupCancel()
	if err := c.ensureGlobal(setup); err != nil {
		if !wasReady {
			return err
		}
		c.log.Warn("global buckets unavailable; keeping the last copies", "err", err)
	} else if err := addGlobal(setup, true); err != nil && !wasReady {
		return err
	}
	if err := c.ensureRegion(setup, c.cfg.Region); err != nil {
		return err
	}
	if err := addRegion(setup, c.cfg.Region, true); err != nil &&
		!(c.cfg.UseExisting && errors.Is(err, jetstream.ErrBucketNotFound)) { // UseExisting: a region without buckets is empty
		return err
	}
	setupCancel()
	done()

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	ticks := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-errc:
			if f.group == regionGroup+c.cfg.Region {
				return f.err
			}
			c.log.Warn("lost a watch; retrying it alone", "group", f.group, "err", f.err)
			if cancel := groups[f.group]; cancel != nil {
				cancel()
				delete(groups, f.group)
			}
		case <-c.kick:
			c.log.Debug("restarting watches after reconnection")
			return nil
		case <-allReady:
			allReady = nil
			if c.nc.IsConnected() {
				c.h.set(true, time.Now())
			}
			c.readyMu.Do(func() { close(c.ready) })
			c.log.Debug("cluster state current", "message_ttl", c.ttlMode.Load())
			retry()
		case now := <-tick.C:
			c.sweep(now)
			if ticks++; ticks%2 == 0 { // every two seconds
				retry()
			}
		}
	}
}

func (c *Cluster) isReady() bool {
	select {
	case <-c.ready:
		return true
	default:
		return false
	}
}

// otherRegions returns the regions to follow besides the own one: the configured ones, or for "*" every region
// that has an edges bucket.
func (c *Cluster) otherRegions(ctx context.Context) []string {
	out, err := c.listOtherRegions(ctx)
	if err != nil {
		c.log.Debug("listing buckets", "err", err)
	}
	return out
}

// listOtherRegions is otherRegions with the error of the bucket listing (for "*"), with what was listed before it.
func (c *Cluster) listOtherRegions(ctx context.Context) ([]string, error) {
	var out []string
	if len(c.cfg.Regions) == 1 && c.cfg.Regions[0] == "*" {
		pre := c.cfg.Prefix + "_edges_"
		names := c.js.KeyValueStoreNames(ctx)
		for n := range names.Name() {
			if r, ok := strings.CutPrefix(n, pre); ok && validName(r, 32) && r != c.cfg.Region {
				out = append(out, r)
			}
		}
		return out, names.Error()
	}
	for _, r := range c.cfg.Regions {
		if r != c.cfg.Region {
			out = append(out, r)
		}
	}
	return out, nil
}

// SyncRegions waits until the node follows the other regions it should (Config.Regions; for "*", every region
// that has buckets at the time of the call) and holds their buckets' content, then returns every region followed,
// the own included. Start does not wait for them: another region's NATS cluster may be unreachable. A configured
// region that has no buckets is waited for until ctx is done.
func (c *Cluster) SyncRegions(ctx context.Context) ([]string, error) {
	names, err := c.listOtherRegions(ctx)
	for err != nil { // a listing cut short would hide regions: list again
		c.log.Debug("listing buckets", "err", err)
		sleepCtx(ctx, 100*time.Millisecond)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("cluster: listing regions: %w", err)
		}
		names, err = c.listOtherRegions(ctx)
	}
	for _, name := range names {
		select {
		case <-c.region(name).synced:
		case <-ctx.Done():
			return nil, fmt.Errorf("cluster: region %s not followed yet: %w", name, ctx.Err())
		}
	}
	return c.Regions(), nil
}

func (c *Cluster) sweep(now time.Time) {
	c.dkeys.sweep(now)
	c.rmu.RLock()
	defer c.rmu.RUnlock()
	for _, r := range c.regions {
		r.edges.sweep(now)
		r.channels.sweep(now)
	}
}

// region returns the local copies of region name, creating empty ones.
func (c *Cluster) region(name string) *region {
	c.rmu.RLock()
	r := c.regions[name]
	c.rmu.RUnlock()
	if r != nil {
		return r
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if r = c.regions[name]; r != nil {
		return r
	}
	r = &region{name: name, byChan: map[[2]string]map[string]struct{}{}, synced: make(chan struct{})}
	b := c.regionBuckets(name)
	r.edges = newStore(b.edges, c.cfg.EdgeTTL, &c.h, c.log, parseTokenKey, opened(c, kindEdge, name, decodeEdge))
	r.channels = newStore(b.channels, c.cfg.ChannelTTL, &c.h, c.log, parsePlacementKey, decodePlacement(name))
	r.drains = newStore(b.control, 0, &c.h, c.log, parseDrainKey, decodeDrain)
	stopIdx := r.channels.listen(r.index)
	r.stop = stopIdx
	if name == c.cfg.Region {
		r.blocks = newStore(b.blocks, 0, &c.h, c.log, parseIPKey, opened(c, kindBlock, name, decodeBlock))
		bt := &blockTimers{s: r.blocks, timers: map[netip.Addr]*time.Timer{}}
		stopTimers := r.blocks.listen(bt.changed)
		r.stop = func() { stopIdx(); stopTimers(); bt.stop() }
	}
	c.regions[name] = r
	return r
}

type regionBuckets struct{ edges, channels, control, blocks string }

func (c *Cluster) regionBuckets(name string) regionBuckets {
	p := c.cfg.Prefix
	return regionBuckets{p + "_edges_" + name, p + "_channels_" + name, p + "_control_" + name, p + "_blocks_" + name}
}

func (c *Cluster) storage() jetstream.StorageType {
	if c.cfg.MemoryStorage {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// kvConfig is the configuration of a bucket whose keys expire after ttl (0: never).
func (c *Cluster) kvConfig(bucket string, ttl time.Duration, global bool) jetstream.KeyValueConfig {
	cfg := jetstream.KeyValueConfig{
		Bucket:   bucket,
		History:  1,
		Storage:  c.storage(),
		Replicas: c.cfg.Replicas,
	}
	if global && c.cfg.GlobalCluster != "" {
		cfg.Placement = &jetstream.Placement{Cluster: c.cfg.GlobalCluster}
	}
	if ttl > 0 {
		if c.ttlMode.Load() {
			cfg.LimitMarkerTTL = markerTTL
		} else {
			cfg.TTL = ttl
		}
	}
	return cfg
}

// ensureGlobal detects per-message TTL support and creates or updates (where needed) the global buckets and the
// event stream.
func (c *Cluster) ensureGlobal(ctx context.Context) error {
	ai, err := c.js.AccountInfo(ctx)
	switch {
	case err == nil:
		c.ttlMode.Store(!c.cfg.NoMessageTTL && ai.API.Level >= 1)
		c.ttlKnown.Store(true)
	case c.ttlKnown.Load():
		// In a supercluster the JetStream meta leader answers this; it may be unreachable (lost quorum) while
		// the buckets are not. Carry on with what was learnt before.
		c.log.Warn("JetStream account information unavailable", "err", err)
	default:
		return fmt.Errorf("cluster: JetStream account: %w", err)
	}
	for _, kc := range []jetstream.KeyValueConfig{
		c.kvConfig(c.projectsBucket, 0, true),
		c.kvConfig(c.dispatchersBucket, c.cfg.DispatcherKeyTTL, true),
	} {
		if err := c.ensureBucket(ctx, kc); err != nil {
			return err
		}
	}
	sc := jetstream.StreamConfig{
		Name:        c.evStream,
		Description: "Stoa events: edges and dispatchers publish, the console ingests",
		Subjects:    []string{c.evSubjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.cfg.EventMaxAge,
		MaxBytes:    c.cfg.EventMaxBytes,
		Storage:     c.storage(),
		Replicas:    c.cfg.Replicas,
	}
	if c.cfg.GlobalCluster != "" {
		sc.Placement = &jetstream.Placement{Cluster: c.cfg.GlobalCluster}
	}
	if !c.administers() {
		return c.createMissingStream(ctx, sc)
	}
	return c.ensureStream(ctx, sc.Name, func(have jetstream.StreamConfig) bool { return streamMatches(have, sc) },
		func() error { _, err := c.js.CreateOrUpdateStream(ctx, sc); return err })
}

// ensureBucket creates a missing bucket and updates one whose configuration differs from kc.
func (c *Cluster) ensureBucket(ctx context.Context, kc jetstream.KeyValueConfig) error {
	if !c.administers() {
		return c.createMissingBucket(ctx, kc)
	}
	return c.ensureStream(ctx, "KV_"+kc.Bucket, func(have jetstream.StreamConfig) bool { return bucketMatches(have, kc) },
		func() error { _, err := c.js.CreateOrUpdateKeyValue(ctx, kc); return err })
}

// ensureStream runs apply, which creates or updates stream name, unless the stream exists and matches its
// configuration: nodes start often (every edge, every `stoa cluster` command) and an update is not free. In
// nats-server 2.15.3 and earlier, a file stream's update writes the new configuration outside the stream lock
// under which a consumer being created reads it: updating the event stream at every start raced the console
// creating its durable consumer (the race detector caught it). When apply fails but the stream exists (a
// supercluster whose JetStream meta leader is unreachable still serves existing streams), it is used as it is.
func (c *Cluster) ensureStream(ctx context.Context, name string, matches func(jetstream.StreamConfig) bool, apply func() error) error {
	if c.cfg.UseExisting {
		return nil
	}
	s, err := c.js.Stream(ctx, name)
	if err == nil && matches(s.CachedInfo().Config) {
		return nil
	}
	if aerr := apply(); aerr != nil {
		if err != nil {
			return fmt.Errorf("cluster: stream %s: %w", name, aerr)
		}
		c.log.Warn("stream exists but could not be updated", "stream", name, "err", aerr)
	}
	return nil
}

// streamMatches reports whether an existing stream has the configuration want asks for, in the fields Stoa sets.
// The storage type is left out: it cannot change once a stream exists.
func streamMatches(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.Description == want.Description &&
		have.Retention == want.Retention && have.Discard == want.Discard && have.MaxAge == want.MaxAge &&
		have.MaxBytes == want.MaxBytes && have.Replicas == max(want.Replicas, 1) &&
		placementCluster(have.Placement) == placementCluster(want.Placement)
}

// bucketMatches reports whether the stream of an existing bucket has the configuration that
// CreateOrUpdateKeyValue would give it for want, in the fields Stoa sets (storage left out, as above).
func bucketMatches(have jetstream.StreamConfig, want jetstream.KeyValueConfig) bool {
	return have.MaxMsgsPerSubject == int64(max(want.History, 1)) && have.MaxAge == want.TTL &&
		have.Replicas == max(want.Replicas, 1) && placementCluster(have.Placement) == placementCluster(want.Placement) &&
		have.AllowMsgTTL == (want.LimitMarkerTTL != 0) && have.SubjectDeleteMarkerTTL == want.LimitMarkerTTL
}

func placementCluster(p *jetstream.Placement) string {
	if p == nil {
		return ""
	}
	return p.Cluster
}

// ensureRegion creates or updates the buckets of region name (once per session). They are placed in the cluster
// of the server this node is connected to, which in a supercluster is the node's own region's.
func (c *Cluster) ensureRegion(ctx context.Context, name string) error {
	if c.cfg.UseExisting {
		return nil
	}
	c.emu.Lock()
	done := c.ensured[name]
	c.emu.Unlock()
	if done {
		return nil
	}
	b := c.regionBuckets(name)
	for _, kc := range []jetstream.KeyValueConfig{
		c.kvConfig(b.edges, c.cfg.EdgeTTL, false),
		c.kvConfig(b.channels, c.cfg.ChannelTTL, false),
		c.kvConfig(b.control, 0, false),
		c.kvConfig(b.blocks, c.cfg.MaxBlock, false),
	} {
		if err := c.ensureBucket(ctx, kc); err != nil {
			return err
		}
	}
	c.emu.Lock()
	c.ensured[name] = true
	c.emu.Unlock()
	return nil
}

// bindRegion returns the edges, channels, control and blocks buckets of region name, which must exist.
func (c *Cluster) bindRegion(ctx context.Context, name string) ([4]jetstream.KeyValue, error) {
	var out [4]jetstream.KeyValue
	b := c.regionBuckets(name)
	for i, n := range []string{b.edges, b.channels, b.control, b.blocks} {
		kv, err := c.js.KeyValue(ctx, n)
		if err != nil {
			return out, fmt.Errorf("cluster: bucket %s: %w", n, err)
		}
		out[i] = kv
	}
	return out, nil
}

// wholeSeconds rounds d up to whole seconds, at least one: the resolution of per-message TTLs.
func wholeSeconds(d time.Duration) time.Duration {
	if r := d % time.Second; r != 0 {
		d += time.Second - r
	}
	return max(d, time.Second)
}

// writable returns ErrClosed after Close.
func (c *Cluster) writable() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	return nil
}

// put stores v as JSON under key in bucket; with ttl > 0 and server-side expiry, the key expires after ttl.
func (c *Cluster) put(ctx context.Context, bucket, key string, v any, ttl time.Duration) error {
	if err := c.writable(); err != nil {
		return err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cluster: encode: %w", err)
	}
	m := nats.NewMsg("$KV." + bucket + "." + key)
	m.Data = data
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream("KV_" + bucket)}
	if ttl > 0 && c.ttlMode.Load() {
		opts = append(opts, jetstream.WithMsgTTL(wholeSeconds(ttl)))
	}
	if _, err := c.js.PublishMsg(ctx, m, opts...); err != nil {
		return fmt.Errorf("cluster: put %s: %w", bucket, err)
	}
	return nil
}

// remove deletes key from bucket. In buckets with expiring keys (expiring) on servers that expire keys, the
// removal marker itself expires.
func (c *Cluster) remove(ctx context.Context, bucket, key string, expiring bool) error {
	if err := c.writable(); err != nil {
		return err
	}
	m := nats.NewMsg("$KV." + bucket + "." + key)
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream("KV_" + bucket)}
	if expiring && c.ttlMode.Load() {
		m.Header.Set("KV-Operation", "PURGE")
		m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
		opts = append(opts, jetstream.WithMsgTTL(markerTTL))
	} else {
		m.Header.Set("KV-Operation", "DEL")
	}
	if _, err := c.js.PublishMsg(ctx, m, opts...); err != nil {
		return fmt.Errorf("cluster: delete from %s: %w", bucket, err)
	}
	return nil
}

// parseTokenKey reads a key of one encoded token.
func parseTokenKey(key string) (string, bool) {
	s, err := decodeToken(key)
	return s, err == nil && !strings.Contains(key, ".")
}
