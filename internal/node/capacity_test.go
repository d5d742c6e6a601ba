package node

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stoa-rtc/stoa/internal/dispatch"
)

// dispatchC asks d for edges for uid in channel "c" (the channel joinEdge joins), from 127.0.0.1.
func (n *testNet) dispatchC(d *runningNode, uid string) dispatchResult {
	n.t.Helper()
	return dispatchFrom(n.t, d.url, "", dispatch.Request{AppID: testApp, Channel: "c", UID: uid, Token: n.token("c", uid)})
}

// joined returns the joined sessions of each edge of region, by id.
func (n *testNet) joined(region string) map[string]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]int{}
	for _, e := range n.edgs[region] {
		out[e.id] = e.edge.Joined()
	}
	return out
}

// sessionsSeen waits until d's view of the cluster shows edge id of region with the given sessions.
func sessionsSeen(t *testing.T, d *runningNode, region, id string, sessions int) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		if e, ok := d.cl.Edge(region, id); !ok || e.Sessions != sessions {
			return fmt.Errorf("dispatcher sees %s with %+v, want %d sessions", id, e, sessions)
		}
		return nil
	})
}

// Edges of capacity 4 (stoa edge --max-sessions 4) and one channel of 11 participants, ten of whom arrive in a
// burst before any heartbeat shows them: the channel's edge fills to 4, the rest spill over to the next edges,
// none ever holds more than 4, and a full edge is never offered, not even as a backup.
func TestFullEdgesSpillOver(t *testing.T) {
	n := newTestNet(t)
	n.edgeMod = func(c *EdgeConfig) { c.MaxSessions = 4 }
	for i := range 4 {
		n.addEdge("eu", fmt.Sprintf("eu-%d", i))
	}
	d := n.addDispatcher("eu", "d-eu")

	// The first participant, once its edge's heartbeat shows it, tells the dispatcher the edges' capacity.
	first := n.dispatchC(d, "0")
	if first.status != 200 {
		t.Fatalf("dispatch: %d %+v", first.status, first.err)
	}
	home := first.resp.Edges[0].ID
	joinEdge(t, first.resp.Edges[0].URL, n.token("c", "0"), "0", first.resp.Ticket)
	sessionsSeen(t, d, "eu", home, 1)

	// The burst: ten dispatches, then ten joins.
	sent := map[string]int{home: 1}
	var answers []dispatchResult
	for i := 1; i <= 10; i++ {
		r := n.dispatchC(d, fmt.Sprint(i))
		if r.status != 200 {
			t.Fatalf("dispatch %d: %d %+v", i, r.status, r.err)
		}
		for _, e := range r.resp.Edges {
			if sent[e.ID] >= 4 {
				t.Errorf("dispatch %d offers %s, which has %d of 4 clients: %s", i, e.ID, sent[e.ID], edgeIDs(r.resp.Edges))
			}
		}
		if i <= 3 && r.resp.Edges[0].ID != home {
			t.Errorf("dispatch %d: primary %s, want the channel's edge %s while it has room", i, r.resp.Edges[0].ID, home)
		}
		sent[r.resp.Edges[0].ID]++
		answers = append(answers, r)
	}
	for i, r := range answers {
		uid := fmt.Sprint(i + 1)
		joinEdge(t, r.resp.Edges[0].URL, n.token("c", uid), uid, r.resp.Ticket)
	}
	joined := n.joined("eu")
	var counts []int
	for _, c := range joined {
		counts = append(counts, c)
	}
	slices.Sort(counts)
	if !slices.Equal(counts, []int{0, 3, 4, 4}) {
		t.Errorf("sessions per edge %v, want 4, 4, 3 and 0", joined)
	}
	t.Logf("11 participants over the edges: %v", joined)
}

// A full edge is never offered; when every edge of the region is full, a dispatcher without a fallback region
// answers no_edges and one with a fallback region sends the client there; once a client leaves, its edge is
// offered again.
func TestFullRegion(t *testing.T) {
	n := newTestNet(t)
	n.edgeMod = func(c *EdgeConfig) { c.MaxSessions = 1 }
	n.addEdge("eu", "eu-0")
	n.addEdge("eu", "eu-1")
	n.addEdge("us", "us-0")
	iso := n.addDispatcher("eu", "d-eu")
	fb := n.addDispatcherWithFallback("eu", "d-eu-fb", "us")

	r := n.dispatchC(iso, "1")
	if r.status != 200 || len(r.resp.Edges) != 2 {
		t.Fatalf("dispatch: %d %+v %s", r.status, r.err, edgeIDs(r.resp.Edges))
	}
	full := r.resp.Edges[0]
	leaver := joinEdge(t, full.URL, n.token("c", "1"), "1", r.resp.Ticket)
	for _, d := range []*runningNode{iso, fb} {
		sessionsSeen(t, d, "eu", full.ID, 1)
	}
	// Neither primary nor backup.
	r = n.dispatchC(iso, "2")
	if r.status != 200 || edgeIDs(r.resp.Edges) == full.ID || slices.ContainsFunc(r.resp.Edges, func(e dispatch.Edge) bool { return e.ID == full.ID }) {
		t.Fatalf("with %s full: %d %+v %s", full.ID, r.status, r.err, edgeIDs(r.resp.Edges))
	}
	other := r.resp.Edges[0]
	joinEdge(t, other.URL, n.token("c", "2"), "2", r.resp.Ticket)
	for _, d := range []*runningNode{iso, fb} {
		sessionsSeen(t, d, "eu", other.ID, 1)
	}

	if r := n.dispatchC(iso, "3"); r.status != 503 || r.err.Error.Code != "no_edges" {
		t.Errorf("full region, no fallback: %d %+v %s", r.status, r.err, edgeIDs(r.resp.Edges))
	}
	if r := n.dispatchC(fb, "3"); r.status != 200 || r.resp.Region != "us" || edgeIDs(r.resp.Edges) != "us-0" {
		t.Errorf("full region, fallback us: %d %+v %s %s", r.status, r.err, r.resp.Region, edgeIDs(r.resp.Edges))
	}

	leaver.conn.Close(websocket.StatusNormalClosure, "")
	eventually(t, 15*time.Second, func() error {
		if r := n.dispatchC(iso, "3"); r.status != 200 || edgeIDs(r.resp.Edges) != full.ID {
			return fmt.Errorf("after a leave: %d %+v %s", r.status, r.err, edgeIDs(r.resp.Edges))
		}
		return nil
	})
}

// With a region map, a client that names no region goes to the region of its address, one that names a region
// keeps it, and an address the map does not hold stays in the dispatcher's region.
func TestRegionMap(t *testing.T) {
	n := newTestNet(t)
	m, err := dispatch.ParseRegionMap([]byte("127.0.0.2/32 us\n127.0.0.3/32 ap\n"))
	if err != nil {
		t.Fatal(err)
	}
	n.dspMod = func(c *DispatcherConfig) { c.RegionMap = m }
	n.addEdge("eu", "eu-0")
	n.addEdge("us", "us-0")
	d := n.addDispatcher("eu", "d-eu")
	eventually(t, 10*time.Second, func() error {
		if _, ok := d.cl.Edge("us", "us-0"); !ok {
			return fmt.Errorf("the dispatcher does not follow us")
		}
		return nil
	})
	req := func(region string) dispatch.Request {
		return dispatch.Request{AppID: testApp, Channel: "c", UID: "1", Token: n.token("c", "1"), Region: region}
	}
	for _, c := range []struct {
		source, region string
		status         int
		edges          string
	}{
		{"127.0.0.2", "", 200, "us-0"},
		{"127.0.0.2", "eu", 200, "eu-0"},
		{"127.0.0.1", "", 200, "eu-0"},
		{"127.0.0.1", "us", 200, "us-0"}, // a region of the map is served
		{"127.0.0.3", "", 503, ""},       // ap has no edge, and there is no fallback
		{"127.0.0.1", "mars", 400, ""},
	} {
		r := dispatchFrom(t, d.url, c.source, req(c.region))
		if r.status != c.status || edgeIDs(r.resp.Edges) != c.edges {
			t.Errorf("from %s naming %q: %d %s %+v, want %d %s", c.source, c.region, r.status, edgeIDs(r.resp.Edges), r.err, c.status, c.edges)
		}
	}
	if got := (DispatcherConfig{Region: "eu", Regions: []string{"eu", "us"}, Fallback: "us", RegionMap: m}).Followed(); !slices.Equal(got, []string{"ap", "us"}) {
		t.Errorf("Followed = %q", got)
	}
}
