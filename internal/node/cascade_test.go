package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/busauth"
	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/edge"
	"github.com/stoa-rtc/stoa/internal/relay"
	"github.com/stoa-rtc/stoa/sdk"
	"github.com/stoa-rtc/stoa/token"
)

// joinedSeen waits until the dispatcher d lists total joined sessions in its region: its next answer accounts
// for every participant so far.
func (n *testNet) joinedSeen(d *runningNode, total int) {
	n.t.Helper()
	eventually(n.t, 20*time.Second, func() error {
		sum := 0
		for _, e := range d.cl.Edges(d.region) {
			sum += e.Sessions
		}
		if sum != total {
			return fmt.Errorf("dispatcher %s sees %d sessions, want %d", d.id, sum, total)
		}
		return nil
	})
}

// placed waits until dispatcher d sees that edge holds channel.
func (n *testNet) placed(d *runningNode, channel, edge string) {
	n.t.Helper()
	eventually(n.t, 20*time.Second, func() error {
		for _, p := range d.cl.ChannelEdges(d.region, testApp, channel) {
			if p.EdgeID == edge {
				return nil
			}
		}
		return fmt.Errorf("dispatcher %s does not see %s on %s yet", d.id, channel, edge)
	})
}

// edge returns the running edge id.
func (n *testNet) edge(id string) *runningNode {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, es := range n.edgs {
		for _, e := range es {
			if e.id == id {
				return e
			}
		}
	}
	n.t.Fatalf("no edge %s", id)
	return nil
}

// A channel whose edge is full spills over to other edges of the region, and the edges link: with four sessions
// per edge, a publisher and ten subscribers use three edges, and every subscriber receives every frame.
func TestCascadeSpillover(t *testing.T) {
	n := newAuthNet(t)
	n.edgeMod = func(c *EdgeConfig) { c.MaxSessions = 4 }
	for _, id := range []string{"eu-a", "eu-b", "eu-c", "eu-d"} {
		n.addEdge("eu", id)
	}
	d := n.addDispatcher("eu", "d-eu")
	p := n.newParty("spill")
	p.join(d, "pub", "", true)
	n.joinedSeen(d, 1)
	for i := range 10 {
		p.join(d, fmt.Sprintf("sub%d", i), "", false)
		n.joinedSeen(d, i+2)
	}
	used := p.edgesUsed()
	t.Logf("edges used: %v", used)
	if len(used) < 3 {
		t.Errorf("%d edges used, want at least 3", len(used))
	}
	for id, k := range used {
		if k > 4 {
			t.Errorf("edge %s holds %d participants, more than its 4", id, k)
		}
	}
	p.flowing(50, 30*time.Second)
	from := p.mark("pub")
	p.flowing(50, 10*time.Second)
	to := p.mark("pub") - 10
	for i := range 10 {
		sub := fmt.Sprintf("sub%d", i)
		if lost := p.missing(sub, "pub", from, to); lost != 0 {
			t.Errorf("%s missed %d of %d frames", sub, lost, to-from)
		}
	}
}

// Two participants dispatched at different times get different backup lists (an edge joined the region in
// between); when their primary stops, they land on different edges, which link: they keep hearing each other.
func TestCascadeFailoverDifferentBackups(t *testing.T) {
	n := newAuthNet(t)
	n.addEdge("eu", "eu-a")
	n.addEdge("eu", "eu-b")
	d := n.addDispatcher("eu", "d-eu")
	p := n.newParty("split")
	first := p.join(d, "alice", "", true)
	n.placed(d, "split", first.Edge().ID)
	n.addEdge("eu", "eu-c")
	n.addEdge("eu", "eu-d")
	second := p.join(d, "bob", "", true)
	p.flowing(25, 20*time.Second)
	primary := first.Edge().ID
	if second.Edge().ID != primary {
		t.Fatalf("dispatcher split the call before any failure: %s and %s", primary, second.Edge().ID)
	}
	n.edge(primary).Stop(t)
	p.flowing(50, 30*time.Second)
	t.Logf("after %s stopped: alice on %s, bob on %s", primary, first.Edge().ID, second.Edge().ID)
}

// A channel with participants in two regions: every participant receives every publisher, media crosses between
// the regions' hubs.
func TestCascadeAcrossRegions(t *testing.T) {
	n := newAuthNet(t)
	n.edgeMod = func(c *EdgeConfig) { c.MaxSessions = 2 } // two per edge: both edges of each region are used
	for _, id := range []string{"eu-a", "eu-b", "us-a", "us-b"} {
		n.addEdge(id[:2], id)
	}
	deu, dus := n.addDispatcher("eu", "d-eu"), n.addDispatcher("us", "d-us")
	p := n.newParty("world")
	p.join(deu, "eu-pub", "", true)
	p.join(dus, "us-pub", "", true)
	n.joinedSeen(deu, 1)
	n.joinedSeen(dus, 1)
	p.join(deu, "eu-sub1", "", false)
	p.join(dus, "us-sub1", "", false)
	n.joinedSeen(deu, 2)
	n.joinedSeen(dus, 2)
	p.join(deu, "eu-sub2", "", false)
	p.join(dus, "us-sub2", "", false)
	p.flowing(50, 30*time.Second)
	t.Logf("edges used: %v", p.edgesUsed())
	for _, e := range p.clients {
		if !strings.HasPrefix(e.Edge().ID, e.Region()) {
			t.Errorf("a client of region %s is on edge %s", e.Region(), e.Edge().ID)
		}
	}
	// Cross-region copies: exactly one link per region pair carries the channel.
	eventually(t, 10*time.Second, func() error {
		cross := 0
		for _, e := range n.edgs["eu"] {
			info, _ := e.cl.Edge("eu", e.id)
			for _, l := range info.Links {
				if strings.HasPrefix(l.Peer, "us/") {
					cross++
				}
			}
		}
		if cross != 1 {
			return fmt.Errorf("%d eu→us links for the channel, want 1", cross)
		}
		return nil
	})
}

// Killing the us hub of a channel mid-call: another us edge takes over and us participants hear eu again, while
// eu participants of eu publishers lose nothing; then killing the whole us region leaves the eu call untouched.
func TestCascadeHubAndRegionLoss(t *testing.T) {
	n := newAuthNet(t)
	n.edgeMod = func(c *EdgeConfig) { c.MaxSessions = 2 }
	for _, id := range []string{"eu-a", "eu-b", "us-a", "us-b", "us-c"} {
		n.addEdge(id[:2], id)
	}
	deu, dus := n.addDispatcher("eu", "d-eu"), n.addDispatcher("us", "d-us")
	p := n.newParty("hub")
	p.join(deu, "eu-pub", "", true)
	n.joinedSeen(deu, 1)
	p.join(deu, "eu-sub", "", false)
	p.join(dus, "us-sub1", "", false)
	n.joinedSeen(dus, 1)
	p.join(dus, "us-sub2", "", false)
	n.joinedSeen(dus, 2)
	p.join(dus, "us-sub3", "", false)
	p.flowing(50, 30*time.Second)

	ch := edge.Channel{AppID: testApp, Name: "hub"}
	var usEdges []string
	for _, c := range p.clients {
		if id := c.Edge().ID; strings.HasPrefix(id, "us") && !slices.Contains(usEdges, id) {
			usEdges = append(usEdges, id)
		}
	}
	usHub := hub(ch, usEdges)
	t.Logf("us edges of the channel %v, hub %s", usEdges, usHub)

	from := p.mark("eu-pub")
	killed := time.Now()
	n.edge(usHub).Stop(t)
	p.flowing(50, 30*time.Second)
	t.Logf("us participants hear eu again %v after the hub stopped", time.Since(killed).Round(time.Millisecond))
	if lost := p.missing("eu-sub", "eu-pub", from, p.mark("eu-pub")-10); lost != 0 {
		t.Errorf("eu-sub lost %d frames of eu-pub while the us hub changed", lost)
	}

	from = p.mark("eu-pub")
	for _, e := range n.edgs["us"] {
		if !e.stopped.Load() {
			e.Stop(t)
		}
	}
	for _, uid := range []string{"us-sub1", "us-sub2", "us-sub3"} {
		p.drop(uid) // gone with their region
	}
	p.flowing(50, 10*time.Second)
	if lost := p.missing("eu-sub", "eu-pub", from, p.mark("eu-pub")-10); lost != 0 {
		t.Errorf("eu-sub lost %d frames of eu-pub while the us region stopped", lost)
	}
}

// A process that holds no edge identity of this network cannot open a relay link to a running edge: edge
// credentials of another bus authority are refused. (relay.TestRefusals covers dispatcher and console
// credentials, which relay.New itself refuses to use.)
func TestRelayRefusesNonEdge(t *testing.T) {
	n := newAuthNet(t)
	e := n.addEdge("eu", "eu-a")
	d := n.addDispatcher("eu", "d-eu")
	p := n.newParty("guarded")
	p.join(d, "alice", "", true)
	info, ok := e.cl.Edge("eu", "eu-a")
	if !ok || info.Relay == "" {
		t.Fatal("edge announces no relay address")
	}
	other, err := busauth.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		auth *busauth.Authority
		id   busauth.Identity
	}{
		{"another authority's edge", other, busauth.Identity{Role: busauth.RoleEdge, Regions: []string{"eu"}, ID: "eu-x"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw, err := c.auth.Issue(c.id, cluster.Default().Prefix)
			if err != nil {
				t.Fatal(err)
			}
			creds, err := busauth.ParseCredentials(raw)
			if err != nil {
				t.Fatal(err)
			}
			rt, err := relay.New(relay.Config{Region: "eu", EdgeID: "eu-x", Addr: "127.0.0.1:0", Credentials: creds,
				Trust:  busauth.NewVerifier(n.auth.Account()),
				Accept: func(*relay.Link, string, string) (relay.Handler, error) { return nil, errors.New("no") }})
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			l, err := rt.Open(ctx, relay.Peer{Region: "eu", EdgeID: "eu-a", Addr: info.Relay}, testApp, "guarded", nopHandler{})
			if err == nil {
				l.Close()
				t.Fatal("link opened")
			}
			t.Logf("refused: %v", err)
		})
	}
}

type nopHandler struct{}

func (nopHandler) Joined(string)             {}
func (nopHandler) Left(string, string)       {}
func (nopHandler) Published(relay.TrackInfo) {}
func (nopHandler) Unpublished(string)        {}
func (nopHandler) RTP(string, []byte)        {}
func (nopHandler) Data(string, []byte)       {}
func (nopHandler) KeyframeRequest(string)    {}
func (nopHandler) Closed(error)              {}

// Participants of other edges appear as local ones do: bob, on another edge than alice, is told she joined and
// published, receives her data messages, and is told when she leaves.
func TestCascadeEventsAndData(t *testing.T) {
	n := newAuthNet(t)
	n.edgeMod = func(c *EdgeConfig) { c.MaxSessions = 1 } // one participant per edge
	n.addEdge("eu", "eu-a")
	n.addEdge("eu", "eu-b")
	d := n.addDispatcher("eu", "d-eu")
	p := n.newParty("events")
	alice := p.join(d, "alice", "", false)
	n.joinedSeen(d, 1)
	bob := p.join(d, "bob", "", false)
	if alice.Edge().ID == bob.Edge().ID {
		t.Fatalf("both on %s", bob.Edge().ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitEvent := func(what string, match func(sdkEvent any) bool) {
		t.Helper()
		for {
			select {
			case ev := <-bob.Events():
				if match(ev) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("bob never saw %s", what)
			}
		}
	}
	waitEvent("alice join", func(ev any) bool {
		j, ok := ev.(sdk.ParticipantJoined)
		return ok && j.Participant.UID == "alice"
	})
	dt, err := alice.PublishData(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitEvent("alice's data track", func(ev any) bool {
		j, ok := ev.(sdk.TrackPublished)
		return ok && j.Track.UID == "alice" && j.Track.Kind == sdk.KindData
	})
	// Data messages are not retransmitted to subscribers that were not ready: send until one arrives.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for got := false; !got; {
		if err := dt.Send([]byte("hello over the link")); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-bob.Data():
			if string(m.Data) != "hello over the link" || m.UID != "alice" {
				t.Fatalf("bob got %q from %q", m.Data, m.UID)
			}
			got = true
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("no data message reached bob")
		}
	}
	p.drop("alice")
	waitEvent("alice leave", func(ev any) bool {
		l, ok := ev.(sdk.ParticipantLeft)
		return ok && l.UID == "alice"
	})
}

// A hidden participant (a recorder) on another edge than the publisher receives the channel's media over the relay
// link, and is never announced across it: alice, on the first edge, is told of dave, who joined the recorder's edge
// after the recorder, and of no one before him.
func TestCascadeHiddenParticipant(t *testing.T) {
	n := newAuthNet(t)
	n.edgeMod = func(c *EdgeConfig) { c.MaxSessions = 2 }
	n.addEdge("eu", "eu-a")
	n.addEdge("eu", "eu-b")
	d := n.addDispatcher("eu", "d-eu")
	p := n.newParty("hidden")
	alice := p.join(d, "alice", "", true)
	n.joinedSeen(d, 1)
	p.join(d, "carol", "", false)
	n.joinedSeen(d, 2)
	rec := p.join(d, "rec", "", false, func(c *sdk.Config) {
		c.Hidden = true
		tok, err := token.BuildRTC(testCert, token.RTCOptions{AppID: testApp, Channel: "hidden", UID: "rec",
			Role: token.RoleRecorder, Expire: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		c.Token = tok
	})
	if rec.Edge().ID == alice.Edge().ID {
		t.Fatalf("the recorder is on alice's edge %s; the test needs it on the other", rec.Edge().ID)
	}
	p.flowing(10, 20*time.Second) // the recorder receives alice over the link
	n.joinedSeen(d, 3)
	dave := p.join(d, "dave", "", false)
	if dave.Edge().ID != rec.Edge().ID {
		t.Fatalf("dave is on %s, the recorder on %s", dave.Edge().ID, rec.Edge().ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for seen := false; !seen; {
		select {
		case ev := <-alice.Events():
			switch ev := ev.(type) {
			case sdk.ParticipantJoined:
				seen = ev.Participant.UID == "dave"
				if ev.Participant.UID == "rec" {
					t.Fatal("alice was told the hidden recorder joined")
				}
			case sdk.ParticipantLeft:
				t.Fatalf("alice was told %s left", ev.UID)
			}
		case <-ctx.Done():
			t.Fatal("alice never heard of dave")
		}
	}
	for _, c := range []*sdk.Client{alice, dave} {
		for _, part := range c.Participants() {
			if part.UID == "rec" {
				t.Errorf("the hidden recorder is among %v", c.Participants())
			}
		}
	}
}
