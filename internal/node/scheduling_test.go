package node

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/dispatch"
)

// Three distinct edges of the client's own region, the same primary for a channel's participants, and draining
// or dead edges out of the answers (in about 3 s: the times are logged, not asserted, for a loaded machine stretches
// them).
func TestSchedulingAcrossRegions(t *testing.T) {
	n := newTestNet(t)
	for i := range 4 {
		n.addEdge("eu", fmt.Sprintf("eu-%d", i))
	}
	n.addEdge("us", "us-0")
	eu := n.addDispatcher("eu", "d-eu")
	us := n.addDispatcher("us", "d-us")

	ask := func(d *runningNode, uid string) dispatchResult {
		return dispatchFrom(t, d.url, "", dispatch.Request{AppID: testApp, Channel: "room", UID: uid, Token: n.token("room", uid)})
	}
	var first dispatchResult
	eventually(t, 5*time.Second, func() error {
		if first = ask(eu, "1"); len(first.resp.Edges) != 3 {
			return fmt.Errorf("dispatch: %d %+v %+v", first.status, first.resp, first.err)
		}
		return nil
	})
	seen := map[string]bool{}
	for _, e := range first.resp.Edges {
		if e.Region != "eu" || seen[e.ID] || e.URL == "" {
			t.Fatalf("edges %+v: want three distinct eu edges", first.resp.Edges)
		}
		seen[e.ID] = true
	}
	if first.resp.Region != "eu" || first.resp.Ticket == "" {
		t.Errorf("region %q ticket %q", first.resp.Region, first.resp.Ticket)
	}
	if again := ask(eu, "2"); again.resp.Edges[0].ID != first.resp.Edges[0].ID {
		t.Errorf("affinity: primary %s then %s", first.resp.Edges[0].ID, again.resp.Edges[0].ID)
	}
	// Regional isolation: the us dispatcher answers with the one us edge only, and never with an eu edge.
	if r := ask(us, "3"); r.status != 200 || edgeIDs(r.resp.Edges) != "us-0" {
		t.Errorf("us dispatch: %d %s", r.status, edgeIDs(r.resp.Edges))
	}
	if r := dispatchFrom(t, eu.url, "", dispatch.Request{AppID: testApp, Channel: "room", UID: "4", Token: n.token("room", "4"), Region: "us"}); r.status != 400 || r.err.Error.Code != "wrong_region" {
		t.Errorf("eu dispatcher asked for us: %d %+v", r.status, r.err)
	}

	// A draining edge disappears from answers.
	primary := first.resp.Edges[0].ID
	admin := n.cluster("eu", "admin-eu")
	start := time.Now()
	if err := admin.SetDraining(context.Background(), "eu", primary, true); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, func() error {
		if r := ask(eu, "1"); slices.ContainsFunc(r.resp.Edges, func(e dispatch.Edge) bool { return e.ID == primary }) {
			return fmt.Errorf("draining %s still offered: %s", primary, edgeIDs(r.resp.Edges))
		}
		return nil
	})
	t.Logf("draining edge gone from answers after %v", time.Since(start).Round(time.Millisecond))

	// A dead edge (its heartbeats stop: the path to the bus is cut) disappears once its heartbeat expires.
	var victim *runningNode
	for _, e := range n.edgs["eu"] {
		if e.id != primary {
			victim = e
			break
		}
	}
	start = time.Now()
	victim.proxy.Cut()
	eventually(t, 15*time.Second, func() error {
		if r := ask(eu, "1"); slices.ContainsFunc(r.resp.Edges, func(e dispatch.Edge) bool { return e.ID == victim.id }) {
			return fmt.Errorf("dead %s still offered: %s", victim.id, edgeIDs(r.resp.Edges))
		}
		return nil
	})
	t.Logf("dead edge gone from answers after %v", time.Since(start).Round(time.Millisecond))
	if r := ask(eu, "1"); len(r.resp.Edges) != 2 {
		t.Errorf("with one draining and one dead of four: %s", edgeIDs(r.resp.Edges))
	}
	victim.proxy.Restore()
}

// A region without edges gets none from another region, unless the operator named a fallback region.
func TestFallbackRegionIsOptIn(t *testing.T) {
	n := newTestNet(t)
	n.addEdge("us", "us-0")
	isolated := n.addDispatcher("ap", "d-ap")
	withFallback := n.addDispatcherWithFallback("ap", "d-ap-fb", "us")
	req := dispatch.Request{AppID: testApp, Channel: "c", UID: "1", Token: n.token("c", "1")}
	eventually(t, 5*time.Second, func() error {
		if r := dispatchFrom(t, withFallback.url, "", req); r.status != 200 || r.resp.Region != "us" || edgeIDs(r.resp.Edges) != "us-0" {
			return fmt.Errorf("with fallback: %d %+v %s", r.status, r.err, edgeIDs(r.resp.Edges))
		}
		return nil
	})
	// Asked only now that the us edge is known to be on the bus (the other ap dispatcher schedules onto it): the
	// refusal is for isolation, not because nothing had arrived yet.
	if r := dispatchFrom(t, isolated.url, "", req); r.status != 503 || r.err.Error.Code != "no_edges" {
		t.Errorf("without fallback: %d %+v %s", r.status, r.err, edgeIDs(r.resp.Edges))
	}
}
