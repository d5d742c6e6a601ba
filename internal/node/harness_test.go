package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/stoa-rtc/stoa/internal/busauth"
	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/clustertest"
	"github.com/stoa-rtc/stoa/internal/dispatch"
	"github.com/stoa-rtc/stoa/internal/edge"
	"github.com/stoa-rtc/stoa/internal/guard"
	"github.com/stoa-rtc/stoa/token"
)

const (
	testApp  = "0123456789abcdef0123456789abcdef"
	testCert = "fedcba9876543210fedcba9876543210"
)

// testNet is an in-process network: one NATS server, and dispatchers and edges in several regions, each node with
// its own cluster connection, on random loopback ports.
type testNet struct {
	t    testing.TB
	bus  *clustertest.Server
	log  *slog.Logger
	mu   sync.Mutex
	dsps map[string][]*runningNode // region → dispatchers
	edgs map[string][]*runningNode // region → edges
	// guard configures the nodes added next.
	guard guard.Config
	// quality is the QualityInterval of the edges added next (0: the default).
	quality time.Duration
	// edgeMod, if set, adjusts the configuration of the edges added next; dspMod that of the dispatchers.
	edgeMod func(*EdgeConfig)
	// auth, if set, is the bus authority: the bus admits only nodes with its credentials, each node gets an
	// identity for its role, and edges link through relay transports (newAuthNet).
	auth   *busauth.Authority
	dspMod func(*DispatcherConfig)
}

type runningNode struct {
	id, region, url string
	edge            *edge.Server       // nil for a dispatcher
	cl              *cluster.Cluster   // the node's connection to the cluster
	proxy           *clustertest.Proxy // the node's path to the bus, which a test can cut
	stop            context.CancelFunc
	done            chan error
	stopped         atomic.Bool
}

// Stop stops the node gracefully and waits for it; it may be called again.
func (n *runningNode) Stop(t testing.TB) {
	n.stopped.Store(true)
	n.stop()
	if err := <-n.done; err != nil {
		t.Errorf("node %s: %v", n.id, err)
	}
	n.done <- nil
}

func newTestNet(t testing.TB) *testNet {
	// Cleanups run last-in first-out: the leak check, registered first, runs after every node, cluster
	// connection, proxy and the bus have stopped.
	t.Cleanup(clustertest.Goroutines(t))
	return startTestNet(t, nil, clustertest.NewServer(t))
}

// newAuthNet is newTestNet on a bus that admits only the credentials of its own authority, as stoa dev runs it:
// every node proves its role, and edges holding the same channel link.
func newAuthNet(t testing.TB) *testNet {
	t.Cleanup(clustertest.Goroutines(t))
	auth, err := busauth.New()
	if err != nil {
		t.Fatal(err)
	}
	bus := clustertest.NewServer(t, func(o *server.Options) {
		if err := auth.ServerOptions(o); err != nil {
			t.Fatal(err)
		}
	})
	return startTestNet(t, auth, bus)
}

func startTestNet(t testing.TB, auth *busauth.Authority, bus *clustertest.Server) *testNet {
	n := &testNet{t: t, bus: bus, auth: auth, log: slog.New(slog.DiscardHandler),
		dsps: map[string][]*runningNode{}, edgs: map[string][]*runningNode{}, guard: testGuard()}
	c := n.cluster("admin", "admin")
	if err := c.PutProject(context.Background(), cluster.Project{AppID: testApp, Certificates: []string{testCert}, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	return n
}

// testGuard is the production guard with request rates high enough for tests that poll.
func testGuard() guard.Config {
	g := guard.Default()
	g.Dispatch = guard.Limit{Rate: 10000, Burst: 10000}
	g.Connect = guard.Limit{Rate: 10000, Burst: 10000}
	return g
}

// cluster connects an observer or administrator to the bus through its own proxy (on an authenticated bus, with
// the console's credentials).
func (n *testNet) cluster(region, id string) *cluster.Cluster {
	c, _ := n.clusterVia(busauth.RoleConsole, region, id)
	return c
}

func (n *testNet) clusterVia(role busauth.Role, region, id string, follow ...string) (*cluster.Cluster, *clustertest.Proxy) {
	p := clustertest.NewProxy(n.t, n.bus.URL())
	cfg := cluster.Default()
	cfg.URLs, cfg.Region, cfg.Node, cfg.Logger, cfg.Regions = []string{p.URL()}, region, id, n.log, follow
	if n.auth != nil {
		ident := busauth.Identity{Role: role, Regions: []string{region}, ID: id}
		if role == busauth.RoleConsole {
			ident = busauth.Identity{Role: role}
		}
		creds, err := n.auth.Issue(ident, cfg.Prefix)
		if err != nil {
			n.t.Fatal(err)
		}
		cfg.Credentials = creds
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := cluster.Start(ctx, cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { c.Close() })
	return c, p
}

func (n *testNet) addEdge(region, id string) *runningNode {
	n.t.Helper()
	// Edges follow every region: a channel's hubs link across them.
	c, p := n.clusterVia(busauth.RoleEdge, region, id, "*")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		n.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rn := &runningNode{id: id, region: region, url: "ws://" + ln.Addr().String() + "/v1/signal", cl: c, proxy: p, stop: cancel, done: make(chan error, 2)}
	ready := make(chan *edge.Server, 1)
	cfg := EdgeConfig{Cluster: c, ID: id, Region: region, Listener: ln, SignalURL: rn.url,
		RTCAddr: "127.0.0.1:0", Guard: n.guard, Logger: n.log, QualityInterval: n.quality}
	if n.edgeMod != nil {
		n.edgeMod(&cfg)
	}
	go func() { rn.done <- RunEdge(ctx, cfg, func(e *edge.Server) { ready <- e }) }()
	select {
	case rn.edge = <-ready:
	case err := <-rn.done:
		n.t.Fatalf("edge %s: %v", id, err)
	}
	n.mu.Lock()
	n.edgs[region] = append(n.edgs[region], rn)
	n.mu.Unlock()
	n.t.Cleanup(func() { rn.Stop(n.t) })
	n.settle(region)
	return rn
}

func (n *testNet) addDispatcher(region, id string) *runningNode {
	return n.addDispatcherWithFallback(region, id, "")
}

func (n *testNet) addDispatcherWithFallback(region, id, fallback string) *runningNode {
	n.t.Helper()
	cfg := DispatcherConfig{ID: id, Region: region, Fallback: fallback, Guard: n.guard, Logger: n.log}
	if n.dspMod != nil {
		n.dspMod(&cfg)
	}
	c, p := n.clusterVia(busauth.RoleDispatch, region, id, cfg.Followed()...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		n.t.Fatal(err)
	}
	cfg.Cluster, cfg.Listener = c, ln
	d, err := NewDispatcher(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rn := &runningNode{id: id, region: region, url: "http://" + ln.Addr().String(), cl: c, proxy: p, stop: cancel, done: make(chan error, 2)}
	ready := make(chan struct{})
	go func() { rn.done <- d.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-rn.done:
		n.t.Fatalf("dispatcher %s: %v", id, err)
	}
	n.mu.Lock()
	n.dsps[region] = append(n.dsps[region], rn)
	n.mu.Unlock()
	n.t.Cleanup(func() { rn.Stop(n.t) })
	n.settle(region)
	return rn
}

// settle waits until the running nodes of region know each other: every dispatcher lists every edge, and every
// edge holds every dispatcher's key. Until then a call could start split: a dispatcher that does not list the
// channel's rendezvous-first edge yet sends its first participant elsewhere.
func (n *testNet) settle(region string) {
	n.t.Helper()
	eventually(n.t, 20*time.Second, func() error {
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, d := range n.dsps[region] {
			if d.stopped.Load() {
				continue
			}
			for _, e := range n.edgs[region] {
				if e.stopped.Load() {
					continue
				}
				if !slices.ContainsFunc(d.cl.Edges(region), func(i cluster.EdgeInfo) bool { return i.ID == e.id }) {
					return fmt.Errorf("dispatcher %s does not list edge %s yet", d.id, e.id)
				}
				if _, ok := e.cl.DispatcherKey(d.id); !ok {
					return fmt.Errorf("edge %s does not hold the key of dispatcher %s yet", e.id, d.id)
				}
			}
		}
		return nil
	})
}

func (n *testNet) token(channel, uid string) string {
	s, err := token.BuildRTC(testCert, token.RTCOptions{AppID: testApp, Channel: channel, UID: uid, Expire: time.Hour})
	if err != nil {
		n.t.Fatal(err)
	}
	return s
}

// dispatchResult is an answer of POST /v1/dispatch.
type dispatchResult struct {
	status     int
	retryAfter string
	resp       dispatch.Response
	err        dispatch.ErrorBody
}

// dispatchFrom posts a dispatch request from a loopback source address ("" for any).
func dispatchFrom(t testing.TB, url, source string, req dispatch.Request) dispatchResult {
	t.Helper()
	client := http.DefaultClient
	if source != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
		client = &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	}
	body, _ := json.Marshal(req)
	resp, err := client.Post(url+"/v1/dispatch", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := dispatchResult{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if resp.StatusCode == 200 {
		json.Unmarshal(b, &r.resp)
	} else {
		json.Unmarshal(b, &r.err)
	}
	return r
}

func edgeIDs(es []dispatch.Edge) string {
	var ids []string
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	return strings.Join(ids, ",")
}

// eventually polls cond until it returns nil, failing the test after d.
func eventually(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	clustertest.Eventually(t, d, cond)
}
