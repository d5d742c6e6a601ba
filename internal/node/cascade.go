package node

import (
	"cmp"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"

	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/dispatch"
	"github.com/stoa-rtc/stoa/internal/edge"
	"github.com/stoa-rtc/stoa/internal/relay"
)

// Routing of a channel between the edges that hold it (the placements every edge follows, in every region):
//   - within a region, every edge links to every other (a full mesh: one hop, no edge in the middle);
//   - across regions, only each region's hub links: the edge of the region with the highest rendezvous score for
//     the channel among those holding it. Every edge computes the same hubs from the same placements without
//     talking; when a hub stops, its placement expires and the next edge by score takes over.
//
// With internal/edge forwarding what a link brings only to links of the other class, a track crosses each pair of
// regions once.

// channelPeers returns the edges that edge self of region must link to for channel ch, with their relay
// addresses (an edge that announces none is left out).
func channelPeers(c *cluster.Cluster, region, self string, ch edge.Channel) []relay.Peer {
	holders := map[string][]string{}
	for _, p := range c.ChannelEdges("", ch.AppID, ch.Name) {
		holders[p.Region] = append(holders[p.Region], p.EdgeID)
	}
	var peers []relay.Peer
	for _, e := range route(ch, region, self, holders) {
		if info, ok := c.Edge(e.region, e.id); ok && info.Relay != "" {
			peers = append(peers, relay.Peer{Region: e.region, EdgeID: e.id, Addr: info.Relay})
		}
	}
	return peers
}

// edgeRef names an edge of a region.
type edgeRef struct{ region, id string }

// route returns the edges that edge self of region links to for ch, given the edges holding ch in each region:
// every other holder of its region, and if it is its region's hub, every other region's hub.
func route(ch edge.Channel, region, self string, holders map[string][]string) []edgeRef {
	own := holders[region]
	if !slices.Contains(own, self) {
		own = append(slices.Clip(own), self) // not announced yet, but here
	}
	var out []edgeRef
	for _, id := range own {
		if id != self {
			out = append(out, edgeRef{region, id})
		}
	}
	if hub(ch, own) == self {
		for r, ids := range holders {
			if r != region && len(ids) > 0 {
				out = append(out, edgeRef{r, hub(ch, ids)})
			}
		}
	}
	return out
}

// hub returns the edge of ids with the highest rendezvous score for ch (ties: the smallest id).
func hub(ch edge.Channel, ids []string) string {
	return slices.MaxFunc(ids, func(a, b string) int {
		return cmp.Or(cmp.Compare(dispatch.Rendezvous(ch.AppID, ch.Name, a), dispatch.Rendezvous(ch.AppID, ch.Name, b)),
			cmp.Compare(b, a))
	})
}

// startRelay opens the edge's relay transport when the node has an edge identity on the bus to prove itself with;
// without one (a bus without Stoa credentials) the edge serves its own participants only, and says so.
func startRelay(c *cluster.Cluster, cfg EdgeConfig, e *edge.Server, log *slog.Logger) (*relay.Transport, error) {
	creds, trust := c.BusIdentity()
	if creds == nil {
		log.Warn("no edge identity on the bus: relay links are off, so channels do not span edges")
		return nil, nil
	}
	addr := cfg.RelayAddr
	if addr == "" {
		host, _, err := net.SplitHostPort(cfg.RTCAddr)
		if err != nil {
			return nil, fmt.Errorf("edge: relay address from %q: %w", cfg.RTCAddr, err)
		}
		addr = net.JoinHostPort(host, "0")
	}
	t, err := relay.New(relay.Config{Region: cfg.Region, EdgeID: cfg.ID, Addr: addr, Credentials: creds, Trust: trust,
		Accept: e.AcceptLink, Metrics: e.Registry(), Logger: log})
	if err != nil {
		return nil, err
	}
	e.SetRelay(t)
	return t, nil
}

// relayAdvertised is the address other edges dial: the listening address, or with an unspecified host the first
// public IP.
func relayAdvertised(t *relay.Transport, publicIPs []string) string {
	ap, ok := t.Addr().(*net.UDPAddr)
	if !ok {
		return t.Addr().String()
	}
	if ap.IP.IsUnspecified() && len(publicIPs) > 0 {
		return net.JoinHostPort(publicIPs[0], fmt.Sprint(ap.Port))
	}
	return ap.String()
}

// linkStatus lists the transport's links for the heartbeat.
func linkStatus(t *relay.Transport) []cluster.LinkStatus {
	if t == nil {
		return nil
	}
	stats := t.Links()
	out := make([]cluster.LinkStatus, 0, min(len(stats), cluster.MaxLinkStatus))
	for _, s := range stats[:min(len(stats), cluster.MaxLinkStatus)] {
		out = append(out, cluster.LinkStatus{Peer: s.Peer.Region + "/" + s.Peer.EdgeID, AppID: s.AppID, Channel: s.Channel,
			RTTMs: float64(s.RTT.Microseconds()) / 1000, Loss: finite(s.Loss), KbpsIn: finite(s.BitrateIn / 1000),
			KbpsOut: finite(s.BitrateOut / 1000)})
	}
	return out
}

// finite keeps figures JSON can carry.
func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

// linkChannels brings the links of every channel the edge holds in line with the routing.
func linkChannels(c *cluster.Cluster, e *edge.Server, cfg EdgeConfig) {
	for _, ch := range e.Channels() {
		e.LinkChannel(ch, channelPeers(c, cfg.Region, cfg.ID, ch))
	}
}
