package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// Placement says that an edge holds (has participants of) a channel. Edges announce the channels they hold;
// dispatchers use placements for channel affinity, and edges of other regions for cascading.
type Placement struct {
	// Region is the edge's region.
	Region string `json:"region"`
	// AppID and Channel name the channel.
	AppID string `json:"app_id"`
	// Channel is the channel name.
	Channel string `json:"channel"`
	// EdgeID is the edge that holds the channel.
	EdgeID string `json:"edge"`
	// Announced is when the edge last announced the placement.
	Announced time.Time `json:"announced"`
}

type placementKey struct{ app, channel, edge string }

func parsePlacementKey(key string) (placementKey, bool) {
	p, ok := splitKey(key, 3)
	if !ok {
		return placementKey{}, false
	}
	return placementKey{p[0], p[1], p[2]}, true
}

func decodePlacement(region string) func(placementKey, []byte) (Placement, error) {
	return func(k placementKey, data []byte) (Placement, error) {
		var p Placement
		if err := json.Unmarshal(data, &p); err != nil {
			return p, err
		}
		if p.AppID != k.app || p.Channel != k.channel || p.EdgeID != k.edge || p.Region != region {
			return p, errors.New("placement does not match its key")
		}
		return p, nil
	}
}

func (p Placement) key() string { return joinKey(p.AppID, p.Channel, p.EdgeID) }

func (p *Placement) check(c *Cluster) error {
	if p.Region == "" {
		p.Region = c.cfg.Region
	}
	if !validName(p.Region, 32) {
		return fmt.Errorf("cluster: placement: bad region %q", p.Region)
	}
	if p.AppID == "" || p.EdgeID == "" || len(p.AppID) > 256 || len(p.Channel) > 1024 || len(p.EdgeID) > 256 {
		return errors.New("cluster: placement: app id and edge id must have 1-256 bytes, channel at most 1024")
	}
	// JSON carries only valid UTF-8: other names would reach readers altered, no longer matching their key.
	if !utf8.ValidString(p.AppID) || !utf8.ValidString(p.Channel) || !utf8.ValidString(p.EdgeID) {
		return errors.New("cluster: placement: app id, channel and edge id must be UTF-8")
	}
	return nil
}

// AnnounceChannel says that p.EdgeID holds channel (p.AppID, p.Channel); an empty Region is the node's. The
// placement expires ChannelTTL after the last announcement, so an edge re-announces its channels at least three
// times per ChannelTTL, and withdraws a channel when its last participant leaves.
func (c *Cluster) AnnounceChannel(ctx context.Context, p Placement) error {
	if err := p.check(c); err != nil {
		return err
	}
	if err := c.ensureRegion(ctx, p.Region); err != nil {
		return err
	}
	p.Announced = time.Now().UTC()
	return c.put(ctx, c.regionBuckets(p.Region).channels, p.key(), p, c.cfg.ChannelTTL)
}

// WithdrawChannel removes a placement at once.
func (c *Cluster) WithdrawChannel(ctx context.Context, p Placement) error {
	if err := p.check(c); err != nil {
		return err
	}
	return c.remove(ctx, c.regionBuckets(p.Region).channels, p.key(), true)
}

// index keeps r.byChan in step with r.channels (a listener of the store).
func (r *region) index(k placementKey, _ Placement, ok bool) {
	ck := [2]string{k.app, k.channel}
	r.imu.Lock()
	defer r.imu.Unlock()
	edges := r.byChan[ck]
	if ok {
		if edges == nil {
			edges = map[string]struct{}{}
			r.byChan[ck] = edges
		}
		edges[k.edge] = struct{}{}
		return
	}
	delete(edges, k.edge)
	if len(edges) == 0 {
		delete(r.byChan, ck)
	}
}

// ChannelEdges returns the placements of channel (appID, channel) on live edges of regionName, ordered by region and
// edge id (a stable order, for affinity), from the local copy; an empty regionName means every followed
// region.
func (c *Cluster) ChannelEdges(regionName, appID, channel string) []Placement {
	c.rmu.RLock()
	var rs []*region
	if regionName == "" {
		for _, r := range c.regions {
			rs = append(rs, r)
		}
	} else if r := c.regions[regionName]; r != nil {
		rs = append(rs, r)
	}
	c.rmu.RUnlock()
	var out []Placement
	ck := [2]string{appID, channel}
	for _, r := range rs {
		r.imu.RLock()
		edges := make([]string, 0, len(r.byChan[ck]))
		for e := range r.byChan[ck] {
			edges = append(edges, e)
		}
		r.imu.RUnlock()
		for _, e := range edges {
			p, ok := r.channels.get(placementKey{appID, channel, e})
			if !ok {
				continue
			}
			if _, live := r.edges.get(e); !live {
				continue
			}
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Placement) int {
		return cmp.Or(cmp.Compare(a.Region, b.Region), cmp.Compare(a.EdgeID, b.EdgeID))
	})
	return out
}

// Placements returns every placement of regionName on a live edge, ordered by app, channel and edge, from the
// local copy (for status pages).
func (c *Cluster) Placements(regionName string) []Placement {
	c.rmu.RLock()
	r := c.regions[regionName]
	c.rmu.RUnlock()
	if r == nil {
		return nil
	}
	var out []Placement
	r.channels.each(func(_ placementKey, p Placement) bool {
		if _, live := r.edges.get(p.EdgeID); live {
			out = append(out, p)
		}
		return true
	})
	slices.SortFunc(out, func(a, b Placement) int {
		return cmp.Or(cmp.Compare(a.AppID, b.AppID), cmp.Compare(a.Channel, b.Channel), cmp.Compare(a.EdgeID, b.EdgeID))
	})
	return out
}
