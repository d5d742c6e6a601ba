package node

import (
	"testing"
	"time"
)

// When the call's edge stops, both clients move to the next edge of their ticket, with the same token and ticket
// and no dispatcher call, and the subscriber sees the stream continue.
func TestFailoverToBackupEdge(t *testing.T) {
	n := newTestNet(t)
	for _, id := range []string{"eu-a", "eu-b", "eu-c"} {
		n.addEdge("eu", id)
	}
	d := n.addDispatcher("eu", "d-eu")
	c := n.startCall(d, "failover")
	primary := c.pub.Edge().ID
	if c.sub.Edge().ID != primary {
		t.Fatalf("publisher on %s, subscriber on %s: affinity broken", primary, c.sub.Edge().ID)
	}
	d.Stop(t) // failover needs no dispatcher

	var victim *runningNode
	for _, e := range n.edgs["eu"] {
		if e.id == primary {
			victim = e
		}
	}
	from, killed := c.mark(), time.Now()
	victim.Stop(t)
	gap := c.resumedAfter(killed, from, 20*time.Second)
	t.Logf("media resumed %v after edge %s stopped", gap.Round(time.Millisecond), primary)
	if c.pub.Edge().ID == primary || c.sub.Edge().ID == primary {
		t.Errorf("clients still on %s", primary)
	}
	c.waitFrames(25, 10*time.Second)
}

// Ongoing calls are untouched when every dispatcher stops, when the bus stops, and when another region stops;
// with the bus down, a failover join is still verified with the projects and keys the edges hold.
func TestFunctionIsolation(t *testing.T) {
	n := newTestNet(t)
	n.addEdge("eu", "eu-a")
	n.addEdge("eu", "eu-b")
	us := n.addEdge("us", "us-a")
	deu := n.addDispatcher("eu", "d-eu")
	dus := n.addDispatcher("us", "d-us")
	c := n.startCall(deu, "isolated")

	window := func(name string, during func()) {
		t.Helper()
		from := c.mark()
		during()
		c.waitFrames(25, 10*time.Second) // half a second of audio after the event
		if lost := c.lost(from, c.mark()-5); lost != 0 {
			t.Errorf("%s: %d frames lost", name, lost)
		}
	}
	window("dispatchers stopped", func() {
		deu.Stop(t)
		dus.Stop(t)
	})
	window("other region stopped", func() { us.Stop(t) })
	window("bus stopped", func() { n.bus.Shutdown() })

	// Bus still down: the call's edge goes; the clients fail over to the other eu edge, which admits them with
	// the project and dispatcher key it already holds.
	primary := c.pub.Edge().ID
	for _, e := range n.edgs["eu"] {
		if e.id == primary {
			from, killed := c.mark(), time.Now()
			e.Stop(t)
			gap := c.resumedAfter(killed, from, 20*time.Second)
			t.Logf("with the bus down, media resumed %v after edge %s stopped", gap.Round(time.Millisecond), primary)
		}
	}
	window("bus back", func() { n.bus.Restart() })
}
