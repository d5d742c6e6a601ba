package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stoa-rtc/stoa/internal/clustertest"
)

// TestSuperCluster runs the production topology in miniature: a NATS cluster per region joined by gateways, each
// node connected to its own region's cluster. Global state crosses regions, regional state stays in its region's
// cluster, and a region's outage leaves the other working.
func TestSuperCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("supercluster: skipped in -short")
	}
	begin := time.Now()
	sc := clustertest.NewSuperCluster(t, "eu", "us")
	t.Logf("supercluster formed in %v", time.Since(begin).Round(time.Millisecond))
	prefix := clustertest.Prefix(t)
	node := func(region, name string) *Cluster {
		cfg := Default()
		cfg.URLs = []string{sc.Regions[region].URL()}
		cfg.Region = region
		cfg.Node = name
		cfg.Prefix = prefix
		cfg.Regions = []string{"*"}
		cfg.GlobalCluster = "eu"
		cfg.Logger = testLogger(t)
		return start(t, cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	eu := node("eu", "eu-node")
	us := node("us", "us-node")
	t.Logf("nodes started at %v", time.Since(begin).Round(time.Millisecond))

	// Global: a project written in us reaches eu.
	must(t, us.PutProject(ctx, Project{AppID: appA, Certificates: []string{certA}, Enabled: true}))
	clustertest.Eventually(t, 3*time.Second, func() error {
		_, ok := eu.Project(appA)
		return errorf(ok, "project written in us not seen in eu")
	})

	// Regional: each region's edges live in its own cluster, and every region is followed ("*").
	must(t, eu.Heartbeat(ctx, EdgeInfo{ID: "e1", URL: "x"}))
	beat := func() {
		_ = us.Heartbeat(ctx, EdgeInfo{ID: "u1", URL: "x"})
		_ = eu.Heartbeat(ctx, EdgeInfo{ID: "e1", URL: "x"})
	}
	clustertest.Eventually(t, 6*time.Second, func() error {
		beat()
		return errorf(len(eu.Edges("us")) == 1 && len(us.Edges("eu")) == 1 && len(eu.Edges("eu")) == 1,
			"eu sees %v in us, us sees %v in eu", eu.Edges("us"), us.Edges("eu"))
	})
	js, err := jetstream.New(sc.Regions["eu"].Connect(t))
	must(t, err)
	for bucket, want := range map[string]string{prefix + "_edges_us": "us", prefix + "_edges_eu": "eu",
		prefix + "_blocks_us": "us", prefix + "_projects": "eu"} {
		s, err := js.Stream(ctx, "KV_"+bucket)
		must(t, err)
		if got := s.CachedInfo().Cluster.Name; got != want {
			t.Errorf("bucket %s placed in cluster %q, want %q", bucket, got, want)
		}
	}

	t.Logf("regions followed at %v", time.Since(begin).Round(time.Millisecond))

	// Blocks stay in their region.
	ip := netip.MustParseAddr("127.0.0.2")
	must(t, us.PutBlock(ctx, Block{IP: ip, Until: time.Now().Add(time.Minute)}))
	clustertest.Eventually(t, time.Second, func() error { _, ok := us.Blocked(ip); return errorf(ok, "not blocked in us") })
	if _, ok := eu.Blocked(ip); ok {
		t.Error("block of us enforced in eu")
	}

	// eu goes down, with the global buckets and the JetStream majority: us keeps its own region fully working —
	// new edges appear as before, eu's disappear from its view — and its copies of the global state.
	sc.Regions["eu"].Shutdown()
	down := time.Now()
	n := 0
	for time.Since(down) < 4*time.Second {
		n++
		id := fmt.Sprintf("u-%d", n) // a new edge every round: seen only if us's own watches are alive
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		err := us.Heartbeat(hctx, EdgeInfo{ID: id, URL: "x"})
		cancel()
		if err != nil {
			t.Fatalf("us heartbeat %d, %v after eu went down: %v", n, time.Since(down).Round(time.Millisecond), err)
		}
		clustertest.Eventually(t, time.Second, func() error {
			_, ok := us.Edge("us", id)
			return errorf(ok, "new edge %s of us not seen by us while eu is down", id)
		})
		if _, ok := us.Project(appA); !ok {
			t.Fatal("us lost the project while eu is down")
		}
		if _, ok := us.Blocked(ip); !ok {
			t.Fatal("us lost its block while eu is down")
		}
		time.Sleep(500 * time.Millisecond) // heartbeat pace
	}
	if !us.Connected() {
		t.Error("us reports itself disconnected while its own region is up")
	}
	if es := us.Edges("eu"); len(es) != 0 {
		t.Errorf("edges of the unreachable region still listed: %+v", es)
	}
	if es := us.Edges("us"); len(es) < 2 || len(es) > 6 {
		t.Errorf("us edges %d: want the ones that beat within EdgeTTL", len(es))
	}
}
