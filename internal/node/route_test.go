package node

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stoa-rtc/stoa/internal/edge"
)

// The routing of a channel, over random layouts of edges in up to four regions: every edge computes its links
// alone, and together they agree (a link one end wants, the other wants too), link every pair of holders within a
// region directly, and join each pair of regions by exactly one link, between the two regions' hubs.
func TestRoute(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		ch := edge.Channel{AppID: "app", Name: fmt.Sprintf("ch%d", round)}
		holders := map[string][]string{}
		for r := range 1 + rng.IntN(4) {
			name := fmt.Sprintf("r%d", r)
			for e := range 1 + rng.IntN(5) {
				holders[name] = append(holders[name], fmt.Sprintf("%s-e%d", name, e))
			}
		}
		links := map[[2]edgeRef]bool{}
		for region, ids := range holders {
			for _, id := range ids {
				self := edgeRef{region, id}
				for _, peer := range route(ch, region, id, holders) {
					if peer == self || !slices.Contains(holders[peer.region], peer.id) {
						t.Fatalf("%v links to %v", self, peer)
					}
					links[[2]edgeRef{self, peer}] = true
				}
			}
		}
		cross := map[[2]string]int{}
		for l := range links {
			if !links[[2]edgeRef{l[1], l[0]}] {
				t.Fatalf("%v wants a link to %v, which does not want it back", l[0], l[1])
			}
			if l[0].region != l[1].region {
				cross[[2]string{l[0].region, l[1].region}]++
			}
		}
		for region, ids := range holders {
			for _, a := range ids {
				for _, b := range ids {
					if a != b && !links[[2]edgeRef{{region, a}, {region, b}}] {
						t.Fatalf("%s and %s of %s are not linked", a, b, region)
					}
				}
			}
			for other := range holders {
				if other != region && cross[[2]string{region, other}] != 1 {
					t.Fatalf("%d links from %s to %s, want 1", cross[[2]string{region, other}], region, other)
				}
			}
		}
	}
}

// An edge that holds the channel but whose placement is not announced yet counts itself among its region's holders.
func TestRouteUnannounced(t *testing.T) {
	ch := edge.Channel{AppID: "app", Name: "x"}
	got := route(ch, "eu", "eu-new", map[string][]string{"eu": {"eu-a"}})
	if !slices.Equal(got, []edgeRef{{"eu", "eu-a"}}) {
		t.Fatalf("route = %v", got)
	}
}
