package cluster

import (
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stoa-rtc/stoa/internal/clustertest"
	"github.com/stoa-rtc/stoa/internal/ticket"
)

// streamActions counts JetStream's stream advisories ("created", "updated") per stream of one prefix.
type streamActions struct {
	mu sync.Mutex
	n  map[string]int // "updated KV_x_projects" → count
}

func watchStreamActions(t *testing.T, nc *nats.Conn) *streamActions {
	t.Helper()
	sa := &streamActions{n: map[string]int{}}
	for _, action := range []string{"CREATED", "UPDATED"} {
		sub, err := nc.Subscribe("$JS.EVENT.ADVISORY.STREAM."+action+".>", func(m *nats.Msg) {
			stream := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
			sa.mu.Lock()
			sa.n[strings.ToLower(action)+" "+stream]++
			sa.mu.Unlock()
		})
		must(t, err)
		t.Cleanup(func() { sub.Unsubscribe() })
	}
	must(t, nc.Flush())
	return sa
}

func (sa *streamActions) count(action string) int {
	sa.mu.Lock()
	defer sa.mu.Unlock()
	n := 0
	for k, v := range sa.n {
		if strings.HasPrefix(k, action+" ") {
			n += v
		}
	}
	return n
}

func (sa *streamActions) get(key string) int {
	sa.mu.Lock()
	defer sa.mu.Unlock()
	return sa.n[key]
}

// A node that starts on a cluster whose buckets and event stream are as it wants them changes nothing. In
// nats-server 2.15.x, a stream update races the creation of a durable consumer (fileStore.UpdateConfig writes the
// configuration that fileStore.ConsumerStore reads without its lock); every node start updated the event stream,
// and TestClusterCommands caught the race when `stoa cluster status` started while the console created its
// consumer. A node whose configuration differs still updates the stream.
func TestStartLeavesStreamsAlone(t *testing.T) {
	srv := clustertest.NewServer(t)
	b := bus{url: srv.URL(), prefix: clustertest.Prefix(t)}
	sa := watchStreamActions(t, srv.Connect(t))
	b.node(t, "eu", "first")
	clustertest.Eventually(t, 5*time.Second, func() error {
		// Two global buckets, four of the region, the event stream.
		return errorf(sa.count("created") == 7, "%d streams created", sa.count("created"))
	})
	for i := range 3 {
		b.node(t, "eu", "again", func(c *Config) { c.Node = c.Node + string(rune('0'+i)) })
	}
	// The control: a node with another event retention updates the stream. Advisories come in order, so once
	// this one is in, any update by the nodes above would be too.
	b.node(t, "eu", "longer", func(c *Config) { c.EventMaxAge += time.Hour })
	clustertest.Eventually(t, 5*time.Second, func() error {
		return errorf(sa.get("updated "+b.prefix+"_events") == 1, "advisories %v", sa.n)
	})
	if n := sa.count("updated"); n != 1 {
		t.Errorf("%d stream updates, want only the control's: %v", n, sa.n)
	}
}

// An operator's command (UseExisting) creates nothing, not even its own region's buckets, and follows the others.
func TestUseExisting(t *testing.T) {
	srv := clustertest.NewServer(t)
	b := bus{url: srv.URL(), prefix: clustertest.Prefix(t)}
	ctx := ctxT(t)
	// One heartbeat each, listed for a minute: on a loaded machine the check below may come seconds later.
	longTTL := func(c *Config) { c.EdgeTTL = time.Minute }
	for _, region := range []string{"eu", "us"} {
		n := b.node(t, region, "edge-"+region, longTTL)
		must(t, n.Heartbeat(ctx, EdgeInfo{ID: region + "-1", URL: "wss://" + region + ".example/v1/signal"}))
	}
	sa := watchStreamActions(t, srv.Connect(t))
	cli := b.node(t, "local", "cli", longTTL, func(c *Config) { c.UseExisting, c.Regions = true, []string{"*"} })
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	regions, err := cli.SyncRegions(sctx)
	must(t, err)
	// Nothing followed is missing once SyncRegions returns: no polling here.
	if strings.Join(regions, ",") != "eu,local,us" || len(cli.Edges("eu")) != 1 || len(cli.Edges("us")) != 1 {
		t.Fatalf("regions %v, edges eu %v us %v", regions, cli.Edges("eu"), cli.Edges("us"))
	}
	// The control that advisories arrive: a node of a new region creates its buckets.
	b.node(t, "ap", "edge-ap")
	clustertest.Eventually(t, 5*time.Second, func() error {
		return errorf(sa.get("created KV_"+b.prefix+"_edges_ap") == 1, "advisories %v", sa.n)
	})
	if n := sa.count("created"); n != 4 {
		t.Errorf("%d streams created, want the four of region ap: %v", n, sa.n)
	}
	if n := sa.count("updated"); n != 0 {
		t.Errorf("%d streams updated: %v", n, sa.n)
	}
}

// An edge verifies a ticket signed by a dispatcher key that its local copy does not hold yet, reading the key from
// the bucket (TestFailoverToBackupEdge failed when the first edge refused the call's first ticket so and the
// client joined another edge). The key read is not cached; a missing or undecodable key is an error.
func TestFetchDispatcherKey(t *testing.T) {
	srv := clustertest.NewServer(t)
	b := bus{url: srv.URL(), prefix: clustertest.Prefix(t)}
	ctx := ctxT(t)
	disp := b.node(t, "eu", "dispatcher")
	edge := b.node(t, "eu", "edge")
	pub, priv, err := ed25519.GenerateKey(nil)
	must(t, err)
	const kid = "d.eu:2"
	must(t, disp.PutDispatcherKey(ctx, DispatcherKey{ID: kid, PublicKey: pub}))
	clustertest.Eventually(t, 2*time.Second, func() error {
		_, ok := edge.DispatcherKey(kid)
		return errorf(ok, "key not delivered")
	})
	// The edge's copy as it was before the announcement arrived.
	edge.dkeys.removeIf(kid, func(DispatcherKey) bool { return true })
	keys := ticket.Keys{Fetch: func(id string) ed25519.PublicKey {
		k, err := edge.FetchDispatcherKey(ctx, id)
		if err != nil {
			return nil
		}
		return k.PublicKey
	}}
	tk := ticket.Ticket{KID: kid, AppID: appA, Channel: "c", UID: "42", Region: "eu", Edges: []string{"e1"},
		IssuedAt: time.Now().Unix(), Expires: time.Now().Add(time.Minute).Unix()}
	s, err := ticket.Sign(tk, priv)
	must(t, err)
	if _, err := keys.Verify(s, ticket.Want{Edge: "e1", AppID: appA, Channel: "c", UID: "42", Now: time.Now()}); err != nil {
		t.Fatalf("ticket of a key not yet delivered: %v", err)
	}
	if _, ok := edge.DispatcherKey(kid); ok {
		t.Error("the key read was added to the local copy")
	}
	if _, err := edge.FetchDispatcherKey(ctx, "nobody"); !errors.Is(err, ErrNoDispatcherKey) {
		t.Errorf("missing key: %v", err)
	}
	// A value that is not a key (written past PutDispatcherKey) is refused, not used.
	must(t, disp.put(ctx, disp.dispatchersBucket, encodeToken("junk"), map[string]string{"id": "junk"}, 0))
	if _, err := edge.FetchDispatcherKey(ctx, "junk"); err == nil || errors.Is(err, ErrNoDispatcherKey) {
		t.Errorf("undecodable key: %v", err)
	}
}
