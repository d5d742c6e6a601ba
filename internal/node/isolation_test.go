package node

import (
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/calltest"
	"github.com/stoa-rtc/stoa/sdk"
)

// startCall starts a call in channel through the dispatcher entry.
func (n *testNet) startCall(entry *runningNode, channel string) *calltest.Call {
	return calltest.Start(n.t, func(uid string) sdk.Config {
		return sdk.Config{URL: entry.url, AppID: testApp, Channel: channel, UID: uid, Token: n.token(channel, uid),
			ReconnectTimeout: 30 * time.Second}
	})
}

// When the call's edge stops, both clients move to the next edge of their ticket, with the same token and ticket
// and no dispatcher call, and the subscriber sees the stream continue.
func TestFailoverToBackupEdge(t *testing.T) {
	n := newTestNet(t)
	for _, id := range []string{"eu-a", "eu-b", "eu-c"} {
		n.addEdge("eu", id)
	}
	d := n.addDispatcher("eu", "d-eu")
	c := n.startCall(d, "failover")
	primary := c.Pub.Edge().ID // the subscriber's too: Start checks it
	d.Stop(t)                  // failover needs no dispatcher

	var victim *runningNode
	for _, e := range n.edgs["eu"] {
		if e.id == primary {
			victim = e
		}
	}
	// Frames numbered from the end of the stop on cannot have travelled through the stopped edge.
	killed := time.Now()
	victim.Stop(t)
	gap := c.ResumedAfter(killed, c.Mark(), 20*time.Second)
	t.Logf("media resumed %v after edge %s stopped", gap.Round(time.Millisecond), primary)
	if c.Pub.Edge().ID == primary || c.Sub.Edge().ID == primary {
		t.Errorf("clients still on %s", primary)
	}
	c.WaitFrames(25, 10*time.Second)
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
		from := c.Mark()
		during()
		c.WaitFrames(25, 10*time.Second) // half a second of audio after the event
		if lost := c.Lost(from, c.Mark()-5); lost != 0 {
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
	primary := c.Pub.Edge().ID
	for _, e := range n.edgs["eu"] {
		if e.id == primary {
			killed := time.Now()
			e.Stop(t)
			gap := c.ResumedAfter(killed, c.Mark(), 20*time.Second)
			t.Logf("with the bus down, media resumed %v after edge %s stopped", gap.Round(time.Millisecond), primary)
		}
	}
	window("bus back", func() { n.bus.Restart() })
}
