package node

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/edge"
)

// An edge node publishes its sessions' quality reports on the cluster's event stream, where the console reads
// them.
func TestQualityEventsReachTheStream(t *testing.T) {
	n := newTestNet(t)
	n.quality = 200 * time.Millisecond
	n.addEdge("eu", "eu-a")
	d := n.addDispatcher("eu", "d-eu")
	n.startCall(d, "quality")

	c := n.cluster("admin", "console")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var found *edge.Event
	c.ConsumeEvents(ctx, "quality-test", func(ev cluster.Event) error {
		if ev.Type != string(edge.EventQuality) {
			return nil
		}
		var e edge.Event
		if err := json.Unmarshal(ev.Data, &e); err != nil {
			t.Errorf("quality event %s: %v", ev.Data, err)
			return nil
		}
		for _, q := range e.Tracks {
			if q.Direction == edge.DirectionUp && q.Packets > 0 && q.BitrateKbps > 0 && e.AppID == testApp {
				found = &e
				cancel()
			}
		}
		return nil
	})
	if found == nil {
		t.Fatal("no quality event with uplink packets on the stream")
	}
	if found.Edge != "eu-a" || found.Region != "eu" || found.Channel != "quality" {
		t.Errorf("quality event %+v", found)
	}
}
