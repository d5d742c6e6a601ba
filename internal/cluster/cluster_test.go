package cluster

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/clustertest"
	"github.com/stoa-rtc/stoa/internal/ticket"
	"github.com/stoa-rtc/stoa/token"
)

const (
	appA  = "970ca35de60c44645bbae8a215061b33"
	certA = "5cfd2fd1755d40ecb72977518be15d3b"
	certB = "8ba4a0d5a1a347e5a1e2a2b1c9d8e7f6"
	appB  = "0123456789abcdef0123456789abcdef"
)

func rtcToken(t *testing.T, cert, app, channel string) string {
	t.Helper()
	s, err := token.BuildRTC(cert, token.RTCOptions{AppID: app, Channel: channel, UID: "42",
		Role: token.RolePublisher, Expire: time.Hour})
	must(t, err)
	return s
}

func verifies(v *token.Verifier, tok, app string) bool {
	_, err := v.Verify(tok, token.Expect{AppID: app, Channel: "c", UID: "42"})
	return err == nil
}

// TestEmbedded starts the embedded server, joins a second node through ClientURL, and checks that Close stops
// every goroutine and removes the temporary store.
func TestEmbedded(t *testing.T) {
	check := clustertest.Goroutines(t)
	cfg := Default()
	cfg.Region = "eu"
	cfg.Node = "dev"
	cfg.Prefix = clustertest.Prefix(t)
	cfg.Logger = testLogger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	a, err := Start(ctx, cfg)
	must(t, err)
	url := a.ClientURL()
	if url == "" {
		t.Fatal("no ClientURL for the embedded server")
	}
	dir := a.tmpDir
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("temporary store: %v", err)
	}

	cfgB := cfg
	cfgB.Node = "joiner"
	cfgB.URLs = []string{url}
	b, err := Start(ctx, cfgB)
	must(t, err)
	if b.ClientURL() != "" {
		t.Fatal("external node reports a ClientURL")
	}
	must(t, a.PutProject(ctx, Project{AppID: appA, Certificates: []string{certA}, Enabled: true}))
	clustertest.Eventually(t, 2*time.Second, func() error {
		_, ok := b.Project(appA)
		return errorf(ok, "project not seen by the joining node")
	})
	go func() {
		_ = b.RunHeartbeat(context.Background(), func() EdgeInfo { return EdgeInfo{ID: "e1", URL: "x"} })
	}()
	hb := make(chan error, 1)
	go func() {
		hb <- a.ConsumeEvents(context.Background(), "console", func(Event) error { return nil })
	}()
	clustertest.Eventually(t, 3*time.Second, func() error { return errorf(len(a.Edges("eu")) == 1, "no edge") })

	must(t, b.Close())
	must(t, a.Close())
	must(t, a.Close()) // idempotent
	if err := <-hb; err != nil {
		t.Fatalf("ConsumeEvents after Close: %v", err)
	}
	if err := a.PutProject(ctx, Project{AppID: appA, Certificates: []string{certA}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after Close: %v, want ErrClosed", err)
	}
	if _, ok := a.Project(appA); !ok {
		t.Fatal("local copy lost at Close")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("temporary store %s not removed: %v", dir, err)
	}
	check()
}

func TestProjects(t *testing.T) {
	buses(t, func(t *testing.T, b bus) {
		ctx := ctxT(t)
		console := b.node(t, "eu", "console")
		edge := b.node(t, "eu", "edge")

		must(t, console.PutProject(ctx, Project{AppID: appA, Certificates: []string{certA}, Enabled: true}))
		clustertest.Eventually(t, 2*time.Second, func() error {
			p, ok := edge.Project(appA)
			return errorf(ok && p.Enabled && slices.Equal(p.Certificates, []string{certA}), "project: %+v %v", p, ok)
		})

		// A watcher starts with the current values, then sees every change.
		var mu sync.Mutex
		var seen []string
		stop := edge.OnProject(func(p Project, removed bool) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, fmt.Sprintf("%s %v %d %v", p.AppID, p.Enabled, len(p.Certificates), removed))
		})
		defer stop()
		mu.Lock()
		if len(seen) != 1 || seen[0] != appA+" true 1 false" {
			t.Fatalf("initial values: %q", seen)
		}
		mu.Unlock()

		v := token.NewVerifier()
		stopV := edge.SyncVerifier(v)
		defer stopV()
		tokA, tokB := rtcToken(t, certA, appA, "c"), rtcToken(t, certB, appA, "c")
		if !verifies(v, tokA, appA) || verifies(v, tokB, appA) {
			t.Fatal("verifier not synced with the current projects")
		}

		// Rotation: add a secondary certificate, then make it the only one.
		must(t, console.PutProject(ctx, Project{AppID: appA, Certificates: []string{certA, certB}, Enabled: true}))
		clustertest.Eventually(t, 2*time.Second, func() error {
			return errorf(verifies(v, tokA, appA) && verifies(v, tokB, appA), "secondary certificate not in use")
		})
		must(t, console.PutProject(ctx, Project{AppID: appA, Certificates: []string{certB}, Enabled: true}))
		clustertest.Eventually(t, 2*time.Second, func() error {
			return errorf(!verifies(v, tokA, appA) && verifies(v, tokB, appA), "retired primary still verifies")
		})
		// Disabled, then deleted.
		must(t, console.PutProject(ctx, Project{AppID: appA, Certificates: []string{certB}, Enabled: false}))
		clustertest.Eventually(t, 2*time.Second, func() error {
			return errorf(!verifies(v, tokB, appA) && v.Apps() == 0, "disabled project still verifies")
		})
		must(t, console.PutProject(ctx, Project{AppID: appB, Certificates: []string{certA}, Enabled: true}))
		must(t, console.DeleteProject(ctx, appA, 0))
		clustertest.Eventually(t, 2*time.Second, func() error {
			ps := edge.Projects()
			return errorf(len(ps) == 1 && ps[0].AppID == appB && v.Apps() == 1, "projects %v", ps)
		})
		mu.Lock()
		want := []string{appA + " true 1 false", appA + " true 2 false", appA + " true 1 false",
			appA + " false 1 false", appB + " true 1 false", appA + " false 0 true"}
		if !slices.Equal(seen, want) {
			t.Errorf("watcher saw %q, want %q", seen, want)
		}
		mu.Unlock()

		// Invalid projects are refused before they reach the bus.
		for _, p := range []Project{{AppID: "", Certificates: []string{certA}}, {AppID: appA},
			{AppID: appA, Certificates: []string{certA, certB, certA}}, {AppID: appA, Certificates: []string{""}}} {
			if err := console.PutProject(ctx, p); err == nil {
				t.Errorf("PutProject(%+v) accepted", p)
			}
		}
	})
}

func TestEdges(t *testing.T) {
	buses(t, func(t *testing.T, b bus) {
		ctx := ctxT(t)
		disp := b.node(t, "eu", "dispatcher", func(c *Config) { c.Regions = []string{"us"} })
		edgeNode := b.node(t, "eu", "edges")
		usNode := b.node(t, "us", "us-edges")

		for _, id := range []string{"e1", "e2"} {
			must(t, edgeNode.Heartbeat(ctx, EdgeInfo{ID: id, URL: "wss://" + id, Load: 0.25, Sessions: 3}))
		}
		must(t, usNode.Heartbeat(ctx, EdgeInfo{ID: "u1", URL: "wss://u1"}))
		clustertest.Eventually(t, 2*time.Second, func() error {
			es := disp.Edges("eu")
			return errorf(len(es) == 2 && es[0].ID == "e1" && es[1].ID == "e2" && es[0].Load == 0.25 &&
				es[0].Sessions == 3 && es[0].Region == "eu" && !es[0].Draining, "edges %+v", es)
		})
		if es := usNode.Edges("eu"); es != nil {
			t.Errorf("a node of us lists the edges of eu, which it does not follow: %+v", es)
		}

		// e1 keeps beating and sets its own draining flag; e2 stops (crashes).
		stopped := time.Now()
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			tk := time.NewTicker(500 * time.Millisecond)
			defer tk.Stop()
			for {
				_ = edgeNode.Heartbeat(ctx, EdgeInfo{ID: "e1", URL: "wss://e1", Draining: true})
				select {
				case <-done:
					return
				case <-tk.C:
				}
			}
		})
		defer func() { close(done); wg.Wait() }()
		clustertest.Eventually(t, 3*time.Second, func() error {
			es := disp.Edges("eu")
			return errorf(len(es) == 1 && es[0].ID == "e1" && es[0].Draining, "edges %+v", es)
		})
		t.Logf("%s: a stopped edge disappeared %v after the last heartbeat of the others",
			b.name, time.Since(stopped).Round(10*time.Millisecond))

		// An operator drain request is visible to dispatchers and to the edge.
		must(t, edgeNode.Heartbeat(ctx, EdgeInfo{ID: "e3", URL: "wss://e3"}))
		must(t, disp.SetDraining(ctx, "eu", "e3", true))
		clustertest.Eventually(t, 2*time.Second, func() error {
			e, ok := disp.Edge("eu", "e3")
			return errorf(ok && e.Draining && edgeNode.DrainRequested("eu", "e3"), "e3 %+v %v", e, ok)
		})
		must(t, disp.SetDraining(ctx, "eu", "e3", false))
		clustertest.Eventually(t, 2*time.Second, func() error {
			return errorf(!edgeNode.DrainRequested("eu", "e3"), "drain request not withdrawn")
		})

		// A graceful leave removes the edge at once.
		must(t, edgeNode.LeaveEdge(ctx, "eu", "e3"))
		clustertest.Eventually(t, time.Second, func() error {
			_, ok := disp.Edge("eu", "e3")
			return errorf(!ok, "e3 still listed")
		})

		// The followed region "us" is found once its buckets exist (looked for every two seconds).
		clustertest.Eventually(t, 5*time.Second, func() error {
			_ = usNode.Heartbeat(ctx, EdgeInfo{ID: "u1", URL: "wss://u1"})
			es := disp.Edges("us")
			return errorf(len(es) == 1 && es[0].ID == "u1" && es[0].Region == "us", "us edges %+v", es)
		})
		if rs := disp.Regions(); !slices.Equal(rs, []string{"eu", "us"}) {
			t.Errorf("Regions: %q", rs)
		}

		for _, e := range []EdgeInfo{{ID: "", URL: "x"}, {ID: "x", Load: 1.5}, {ID: "x", Load: -1},
			{ID: "x", Region: "bad region"}, {ID: "x", Sessions: -1}} {
			if err := edgeNode.Heartbeat(ctx, e); err == nil {
				t.Errorf("Heartbeat(%+v) accepted", e)
			}
		}
	})
}

// TestEdgeExpiry measures how long after its last heartbeat a crashed edge disappears.
func TestEdgeExpiry(t *testing.T) {
	buses(t, func(t *testing.T, b bus) {
		ctx := ctxT(t)
		disp := b.node(t, "eu", "dispatcher")
		edge := b.node(t, "eu", "edge")
		must(t, edge.Heartbeat(ctx, EdgeInfo{ID: "crash", URL: "x"}))
		clustertest.Eventually(t, 2*time.Second, func() error {
			return errorf(len(disp.Edges("eu")) == 1, "edge not listed")
		})
		// A fresh heartbeat, then none: the edge "crashes" right after it.
		must(t, edge.Heartbeat(ctx, EdgeInfo{ID: "crash", URL: "x"}))
		last := time.Now()
		clustertest.Eventually(t, 3*time.Second, func() error {
			return errorf(len(disp.Edges("eu")) == 0, "crashed edge still listed")
		})
		t.Logf("%s: gone %v after its last heartbeat (EdgeTTL %v, server TTL %v)", b.name,
			time.Since(last).Round(10*time.Millisecond), disp.cfg.EdgeTTL, disp.MessageTTL())
	})
}

func TestChannels(t *testing.T) {
	buses(t, func(t *testing.T, b bus) {
		ctx := ctxT(t)
		disp := b.node(t, "eu", "dispatcher")
		edge := b.node(t, "eu", "edge")
		hostile := []string{"", " ", "a.b", "a b.c", "*", ">", "a.*.>", "ümlaut ✓", "$KV.x", "..", "=", "a/b\\c",
			"tab\tnew\nline", string(make([]byte, 300))}
		for _, id := range []string{"e1", "e.2"} {
			must(t, edge.Heartbeat(ctx, EdgeInfo{ID: id, URL: "x"}))
		}
		for _, ch := range hostile {
			must(t, edge.AnnounceChannel(ctx, Placement{AppID: appA, Channel: ch, EdgeID: "e1"}))
		}
		must(t, edge.AnnounceChannel(ctx, Placement{AppID: appA, Channel: "a.b", EdgeID: "e.2"}))
		must(t, edge.AnnounceChannel(ctx, Placement{AppID: appA, Channel: "a.b", EdgeID: "ghost"})) // no heartbeat
		clustertest.Eventually(t, 2*time.Second, func() error {
			for _, ch := range hostile {
				ps := disp.ChannelEdges("eu", appA, ch)
				want := []string{"e1"}
				if ch == "a.b" {
					want = []string{"e.2", "e1"}
				}
				var got []string
				for _, p := range ps {
					got = append(got, p.EdgeID)
					if p.Channel != ch || p.AppID != appA || p.Region != "eu" || p.Announced.IsZero() {
						return fmt.Errorf("placement %+v", p)
					}
				}
				if !slices.Equal(got, want) {
					return fmt.Errorf("channel %q: edges %q, want %q", ch, got, want)
				}
			}
			return nil
		})
		if ps := disp.ChannelEdges("", appA, "a.b"); len(ps) != 2 {
			t.Errorf("all regions: %+v", ps)
		}
		if ps := disp.ChannelEdges("eu", appB, "a.b"); len(ps) != 0 {
			t.Errorf("other app: %+v", ps)
		}
		must(t, edge.WithdrawChannel(ctx, Placement{AppID: appA, Channel: "a.b", EdgeID: "e1"}))
		clustertest.Eventually(t, 2*time.Second, func() error {
			ps := disp.ChannelEdges("eu", appA, "a.b")
			return errorf(len(ps) == 1 && ps[0].EdgeID == "e.2", "after withdrawal: %+v", ps)
		})
	})
}

func TestBlocks(t *testing.T) {
	buses(t, func(t *testing.T, b bus) {
		ctx := ctxT(t)
		guard := b.node(t, "eu", "guard")
		edge := b.node(t, "eu", "edge")
		other := b.node(t, "us", "other-region")

		ips := []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("2001:db8::1"),
			netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("::ffff:10.0.0.1")}
		var removed atomic.Int32
		stop := edge.OnBlock(func(_ Block, r bool) {
			if r {
				removed.Add(1)
			}
		})
		defer stop()
		until := time.Now().Add(2 * time.Second)
		putAt := time.Now()
		for _, ip := range ips {
			must(t, guard.PutBlock(ctx, Block{IP: ip, Until: until, Reason: "test"}))
		}
		long := netip.MustParseAddr("192.0.2.7")
		must(t, guard.PutBlock(ctx, Block{IP: long, Until: time.Now().Add(time.Minute)}))
		clustertest.Eventually(t, time.Second, func() error {
			for _, ip := range append(ips, long) {
				bl, ok := edge.Blocked(ip)
				if !ok || bl.Region != "eu" || bl.By != "guard" || (ip != long && bl.Reason != "test") {
					return fmt.Errorf("%s: %+v %v", ip, bl, ok)
				}
			}
			return nil
		})
		t.Logf("%s: blocks enforced by another node %v after PutBlock", b.name, time.Since(putAt).Round(time.Millisecond))
		if _, ok := edge.Blocked(netip.MustParseAddr("10.0.0.1")); !ok {
			t.Error("IPv4-mapped block not found by its IPv4 form")
		}
		if _, ok := edge.Blocked(netip.MustParseAddr("127.0.0.3")); ok {
			t.Error("unblocked address reported blocked")
		}
		if _, ok := other.Blocked(ips[0]); ok {
			t.Error("block of region eu enforced in region us")
		}
		if n := len(edge.Blocks()); n != len(ips)+1 {
			t.Errorf("Blocks: %d, want %d", n, len(ips)+1)
		}

		// DeleteBlock lifts a block everywhere.
		must(t, guard.DeleteBlock(ctx, "", long))
		clustertest.Eventually(t, time.Second, func() error {
			_, ok := edge.Blocked(long)
			return errorf(!ok, "lifted block still enforced")
		})

		// The others end at until.
		clustertest.Eventually(t, 3*time.Second, func() error {
			_, ok := edge.Blocked(ips[0])
			return errorf(!ok, "block still enforced at %v after until", time.Since(until))
		})
		if time.Now().Before(until) {
			t.Fatalf("block ended before until")
		}
		if guard.MessageTTL() { // the server removes them too
			clustertest.Eventually(t, 3*time.Second, func() error {
				return errorf(removed.Load() >= int32(len(ips)+1), "%d removals seen", removed.Load())
			})
		}

		for _, bl := range []Block{{}, {IP: ips[0]}, {IP: ips[0], Until: time.Now().Add(-time.Second)},
			{IP: ips[0], Until: time.Now().Add(365 * 24 * time.Hour)}, {IP: ips[0], Until: until, Region: "a.b"}} {
			if err := guard.PutBlock(ctx, bl); err == nil {
				t.Errorf("PutBlock(%+v) accepted", bl)
			}
		}
	})
}

func TestDispatcherKeys(t *testing.T) {
	buses(t, func(t *testing.T, b bus) {
		ctx := ctxT(t)
		disp := b.node(t, "eu", "dispatcher")
		edge := b.node(t, "eu", "edge")
		pub, priv, err := ed25519.GenerateKey(nil)
		must(t, err)
		const kid = "disp.eu:1" // hostile: '.' and ':'
		must(t, disp.PutDispatcherKey(ctx, DispatcherKey{ID: kid, PublicKey: pub}))

		var keys ticket.Keys
		stop := edge.SyncTicketKeys(&keys)
		defer stop()
		tk := ticket.Ticket{KID: kid, AppID: appA, Channel: "c", UID: "42", Region: "eu", Edges: []string{"e1"},
			IssuedAt: time.Now().Unix(), Expires: time.Now().Add(time.Minute).Unix()}
		s, err := ticket.Sign(tk, priv)
		must(t, err)
		want := ticket.Want{Edge: "e1", AppID: appA, Channel: "c", UID: "42", Now: time.Now()}
		clustertest.Eventually(t, 2*time.Second, func() error {
			_, err := keys.Verify(s, want)
			return err
		})
		k, ok := edge.DispatcherKey(kid)
		if !ok || k.Region != "eu" || !pub.Equal(k.PublicKey) || len(edge.DispatcherKeys()) != 1 {
			t.Fatalf("DispatcherKey: %+v %v", k, ok)
		}
		must(t, disp.DeleteDispatcherKey(ctx, kid))
		clustertest.Eventually(t, 2*time.Second, func() error {
			_, err := keys.Verify(s, want)
			return errorf(errors.Is(err, ticket.ErrUnknownKey), "withdrawn key: %v", err)
		})
		if err := disp.PutDispatcherKey(ctx, DispatcherKey{ID: "x", PublicKey: pub[:5]}); err == nil {
			t.Error("short public key accepted")
		}
	})
}

func TestEvents(t *testing.T) {
	buses(t, func(t *testing.T, b bus) {
		edge := b.node(t, "eu", "edge")
		console := b.node(t, "eu", "console")
		type payload struct {
			N int `json:"n"`
		}
		const n = 20
		for i := range n {
			must(t, edge.PublishEvent(context.Background(), "", "join", payload{i}))
		}
		clustertest.Eventually(t, 3*time.Second, func() error {
			s := edge.EventStats()
			return errorf(s.Published == n && s.Dropped == 0 && s.Failed == 0, "stats %+v", s)
		})

		// Consume half, stop; a new consumer of the same name resumes after them.
		var got []int
		consume := func(limit int) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var mu sync.Mutex
			err := console.ConsumeEvents(ctx, "console", func(e Event) error {
				mu.Lock()
				defer mu.Unlock()
				var p payload
				if err := json.Unmarshal(e.Data, &p); err != nil {
					return err
				}
				if e.Region != "eu" || e.Type != "join" || e.Node != "edge" || e.Seq == 0 || e.Time.IsZero() {
					t.Errorf("event %+v", e)
				}
				got = append(got, p.N)
				if len(got) == limit {
					cancel()
				}
				return nil
			})
			must(t, err)
		}
		consume(n / 2)
		for i := range n / 2 {
			if got[i] != i {
				t.Fatalf("events %v, want 0..%d in order", got, n/2-1)
			}
		}
		consume(n) // resumes: the others, each once (events handed back may come in another order)
		slices.Sort(got)
		for i := range n {
			if i >= len(got) || got[i] != i {
				t.Fatalf("events %v, want 0..%d, each once", got, n-1)
			}
		}
		if len(got) != n {
			t.Fatalf("events %v: duplicates", got)
		}

		for _, bad := range [][2]string{{"a.b", "join"}, {"eu", "a.b"}, {"eu", ""}, {"eu", "*"}} {
			if err := edge.PublishEvent(context.Background(), bad[0], bad[1], 1); err == nil {
				t.Errorf("PublishEvent(%q, %q) accepted", bad[0], bad[1])
			}
		}
		if err := edge.PublishEvent(context.Background(), "", "x", func() {}); err == nil {
			t.Error("unencodable event accepted")
		}
	})
}

// TestEventBatches: a backlog comes in batches of at most the size asked for, in order; a batch refused by the
// handler comes again, whole.
func TestEventBatches(t *testing.T) {
	buses(t, func(t *testing.T, b bus) {
		edge := b.node(t, "eu", "edge")
		console := b.node(t, "eu", "console")
		const n, max = 50, 20
		for i := range n {
			must(t, edge.PublishEvent(context.Background(), "", "join", i))
		}
		clustertest.Eventually(t, 3*time.Second, func() error {
			s := edge.EventStats()
			return errorf(s.Published == n, "stats %+v", s)
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var got, sizes []int
		refused := false
		err := console.ConsumeEventBatches(ctx, "batches", max, func(evs []Event) error {
			sizes = append(sizes, len(evs))
			if !refused {
				refused = true
				return errors.New("database down")
			}
			for _, e := range evs {
				var i int
				if err := json.Unmarshal(e.Data, &i); err != nil {
					return err
				}
				got = append(got, i)
			}
			if len(got) == n {
				cancel()
			}
			return nil
		})
		must(t, err)
		if slices.Sort(got); len(got) != n || got[0] != 0 || got[n-1] != n-1 {
			t.Fatalf("events %v, want 0..%d once each", got, n-1)
		}
		if slices.Max(sizes) > max || sizes[0] < 2 {
			t.Errorf("batch sizes %v, want at most %d and a backlog in batches", sizes, max)
		}
		if err := console.ConsumeEventBatches(ctx, "x", 0, func([]Event) error { return nil }); err == nil {
			t.Error("batch size 0 accepted")
		}
	})
}

// TestPublishEventNeverBlocks fills the buffer while the bus is down: PublishEvent returns at once and counts drops.
func TestPublishEventNeverBlocks(t *testing.T) {
	srv := clustertest.NewServer(t)
	b := bus{url: srv.URL(), prefix: clustertest.Prefix(t)}
	edge := b.node(t, "eu", "edge", func(c *Config) { c.EventBuffer = 8 })
	srv.Shutdown()
	clustertest.Eventually(t, 2*time.Second, func() error { return errorf(!edge.Connected(), "still connected") })
	// A call that waited for the bus would never return (the bus stays down): the calls returning is the proof.
	// How long they took is a figure, not a pass mark.
	begin := time.Now()
	for i := range 1000 {
		must(t, edge.PublishEvent(context.Background(), "", "flood", i))
	}
	t.Logf("1000 PublishEvent calls with the bus down took %v", time.Since(begin).Round(time.Microsecond))
	s := edge.EventStats()
	if s.Dropped == 0 || s.Dropped+s.Failed+8+1 < 1000 { // 8 queued, 1 being sent
		t.Errorf("stats %+v: drops not counted", s)
	}
}

// TestBusDown stops the server: the local copies keep answering, writes fail fast; the server comes back on the
// same port (same store), a third node changes things before the others have reconnected, and they catch up.
func TestBusDown(t *testing.T) {
	buses(t, func(t *testing.T, b bus) {
		if b.srv == nil {
			t.Skip("the external server cannot be stopped by the test; TestBusCut covers it")
		}
		outage(t, b, b.url, b.srv.Shutdown, b.srv.Restart, false)
	})
}

// TestBusCut takes the bus away from two nodes (their connections go through a proxy that is cut) while a third,
// connected directly, changes things; when the proxy is restored, the two catch up.
func TestBusCut(t *testing.T) {
	buses(t, func(t *testing.T, b bus) {
		p := clustertest.NewProxy(t, b.url)
		outage(t, b, p.URL(), p.Cut, p.Restore, true)
	})
}

func outage(t *testing.T, b bus, url string, down, up func(), meanwhile bool) {
	ctx := ctxT(t)
	via := func(c *Config) { c.URLs = []string{url} }
	edge := b.node(t, "eu", "edge", via)
	admin := b.node(t, "eu", "admin", via)
	pub, _, _ := ed25519.GenerateKey(nil)
	blocked := netip.MustParseAddr("127.0.0.2")
	must(t, admin.PutProject(ctx, Project{AppID: appA, Certificates: []string{certA}, Enabled: true}))
	must(t, admin.PutProject(ctx, Project{AppID: appB, Certificates: []string{certA}, Enabled: true}))
	must(t, admin.PutDispatcherKey(ctx, DispatcherKey{ID: "d1", PublicKey: pub}))
	must(t, admin.Heartbeat(ctx, EdgeInfo{ID: "e1", URL: "x"}))
	must(t, admin.PutBlock(ctx, Block{IP: blocked, Until: time.Now().Add(time.Minute)}))
	v := token.NewVerifier()
	defer edge.SyncVerifier(v)()
	clustertest.Eventually(t, 2*time.Second, func() error {
		_, k := edge.DispatcherKey("d1")
		_, bl := edge.Blocked(blocked)
		return errorf(len(edge.Projects()) == 2 && k && bl && len(edge.Edges("eu")) == 1 && v.Apps() == 2,
			"state not replicated")
	})

	down()
	clustertest.Eventually(t, 3*time.Second, func() error { return errorf(!edge.Connected(), "still connected") })
	var third *Cluster
	change := func() {
		third = b.node(t, "eu", "third")
		must(t, third.PutProject(ctx, Project{AppID: appA, Certificates: []string{certB}, Enabled: true}))
		must(t, third.DeleteProject(ctx, appB, 0))
		must(t, third.DeleteDispatcherKey(ctx, "d1"))
		must(t, third.DeleteBlock(ctx, "", blocked))
	}
	if meanwhile {
		change()
	}
	// For longer than EdgeTTL the last known state stays, edges included.
	deadline := time.Now().Add(edge.cfg.EdgeTTL + 500*time.Millisecond)
	for time.Now().Before(deadline) {
		_, k := edge.DispatcherKey("d1")
		_, bl := edge.Blocked(blocked)
		if len(edge.Projects()) != 2 || !k || !bl || len(edge.Edges("eu")) != 1 ||
			!verifies(v, rtcToken(t, certA, appA, "c"), appA) {
			t.Fatal("local copy lost while the bus is down")
		}
		time.Sleep(100 * time.Millisecond) // sampling, not synchronisation
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	begin := time.Now()
	err := admin.PutProject(wctx, Project{AppID: appA, Certificates: []string{certA}, Enabled: true})
	cancel()
	// Failing fast means failing for the outage, not for running out of time.
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write with the bus down: %v after %v, want a fast failure", err, time.Since(begin))
	}
	t.Logf("write with the bus down failed after %v: %v", time.Since(begin).Round(time.Microsecond), err)

	up()
	if !meanwhile {
		change()
	}
	clustertest.Eventually(t, 5*time.Second, func() error {
		p, ok := edge.Project(appA)
		_, k := edge.DispatcherKey("d1")
		_, bl := edge.Blocked(blocked)
		return errorf(edge.Connected() && ok && slices.Equal(p.Certificates, []string{certB}) &&
			len(edge.Projects()) == 1 && !k && !bl && v.Apps() == 1 &&
			verifies(v, rtcToken(t, certB, appA, "c"), appA), "not caught up: %+v", edge.Projects())
	})
	// e1 has not beaten since before the outage: it expires now that the bus is back.
	clustertest.Eventually(t, edge.cfg.EdgeTTL+2*time.Second, func() error {
		return errorf(len(edge.Edges("eu")) == 0, "stale edge still listed")
	})
	// And the nodes write again.
	clustertest.Eventually(t, 5*time.Second, func() error {
		return admin.Heartbeat(ctx, EdgeInfo{ID: "e2", URL: "x"})
	})
	clustertest.Eventually(t, 2*time.Second, func() error {
		_, ok := third.Edge("eu", "e2")
		return errorf(ok, "heartbeat after the outage not seen")
	})
}

// TestStartWithoutBus: Start gives up when ctx ends and nothing answers, reporting why.
func TestStartWithoutBus(t *testing.T) {
	srv := clustertest.NewServer(t)
	url := srv.URL()
	srv.Shutdown()
	cfg := Default()
	cfg.URLs = []string{url}
	cfg.Region = "eu"
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	check := clustertest.Goroutines(t)
	c, err := Start(ctx, cfg)
	if err == nil {
		c.Close()
		t.Fatal("Start succeeded without a bus")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start: %v", err)
	}
	check()
}

func TestBlockedFast(t *testing.T) {
	srv := clustertest.NewServer(t)
	b := bus{url: srv.URL(), prefix: clustertest.Prefix(t)}
	c := b.node(t, "eu", "edge")
	ip := netip.MustParseAddr("127.0.0.2")
	must(t, c.PutBlock(ctxT(t), Block{IP: ip, Until: time.Now().Add(time.Minute)}))
	clustertest.Eventually(t, time.Second, func() error { _, ok := c.Blocked(ip); return errorf(ok, "not blocked") })
	other := netip.MustParseAddr("127.0.0.3")
	if n := testing.AllocsPerRun(1000, func() { c.Blocked(ip); c.Blocked(other) }); n != 0 {
		t.Errorf("Blocked allocates %v times", n)
	}
	res := testing.Benchmark(func(b *testing.B) {
		for b.Loop() {
			c.Blocked(ip)
		}
	})
	t.Logf("Blocked: %v", res.T/time.Duration(max(res.N, 1)))
}

func BenchmarkBlocked(b *testing.B) {
	srv := clustertest.NewServer(b)
	bb := bus{url: srv.URL(), prefix: clustertest.Prefix(b)}
	c := bb.node(b, "eu", "edge")
	ip := netip.MustParseAddr("127.0.0.2")
	must(b, c.PutBlock(context.Background(), Block{IP: ip, Until: time.Now().Add(time.Minute)}))
	clustertest.Eventually(b, time.Second, func() error { _, ok := c.Blocked(ip); return errorf(ok, "not blocked") })
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Blocked(ip)
		}
	})
}

// TestSignedProjects: a node with ProjectKeys takes only projects signed by one of them; a forged record, new or
// over a signed one, is ignored and the last good copy stays.
func TestSignedProjects(t *testing.T) {
	buses(t, func(t *testing.T, b bus) {
		pub, priv, _ := ed25519.GenerateKey(nil)
		console := b.node(t, "eu", "console", func(c *Config) { c.ProjectSigner = priv })
		edge := b.node(t, "eu", "edge", func(c *Config) { c.ProjectKeys = []ed25519.PublicKey{pub} })
		rogue := b.node(t, "eu", "rogue") // writes to the bus, without the console's key
		_, other, _ := ed25519.GenerateKey(nil)
		impostor := b.node(t, "eu", "impostor", func(c *Config) { c.ProjectSigner = other })

		good := Project{AppID: "app", Certificates: []string{"good-cert"}, Enabled: true}
		must(t, console.PutProject(context.Background(), good))
		// The rogue writes over the record it holds (the next version): it must hold the good one first, or both
		// would be version 1 and the rogue itself would keep the one it saw first.
		for _, n := range []*Cluster{edge, rogue} {
			clustertest.Eventually(t, 3*time.Second, func() error {
				p, ok := n.Project("app")
				return errorf(ok && p.Certificates[0] == "good-cert", "node holds %+v %v", p, ok)
			})
		}
		must(t, rogue.PutProject(context.Background(), Project{AppID: "app", Certificates: []string{"rogue-cert"}, Enabled: true}))
		must(t, impostor.PutProject(context.Background(), Project{AppID: "new", Certificates: []string{"impostor-cert"}, Enabled: true}))
		must(t, console.PutProject(context.Background(), Project{AppID: "marker", Certificates: []string{"m"}, Enabled: true}))
		// The marker, written after the forgeries, shows that the edge and the rogue have read past them.
		for _, n := range []*Cluster{edge, rogue} {
			clustertest.Eventually(t, 3*time.Second, func() error {
				_, ok := n.Project("marker")
				return errorf(ok, "no marker")
			})
		}
		if p, _ := edge.Project("app"); p.Certificates[0] != "good-cert" {
			t.Errorf("edge took a forged project: %+v", p)
		}
		if _, ok := edge.Project("new"); ok {
			t.Error("edge took a project signed by an unknown key")
		}
		if p, _ := rogue.Project("app"); p.Certificates[0] != "rogue-cert" {
			t.Errorf("a node without ProjectKeys takes any project: %+v", p)
		}
		// A signature covers every field: the same record with another certificate or state does not verify.
		p, _ := edge.Project("app")
		for _, q := range []Project{{AppID: "app", Certificates: []string{"good-cert", "x"}, Enabled: true, Updated: p.Updated},
			{AppID: "app", Certificates: []string{"good-cert"}, Enabled: false, Updated: p.Updated},
			{AppID: "app", Certificates: []string{"good-cert"}, Enabled: true, Updated: p.Updated.Add(time.Nanosecond)}} {
			q.Signature = p.Signature
			if q.signedBy([]ed25519.PublicKey{pub}) {
				t.Errorf("signature verifies over %+v", q)
			}
		}
		if !p.signedBy([]ed25519.PublicKey{pub}) {
			t.Error("the edge's copy does not verify")
		}
	})
}
