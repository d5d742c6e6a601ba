package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// EdgeInfo is what an edge announces in its heartbeat.
type EdgeInfo struct {
	// ID names the edge, unique in its region.
	ID string `json:"id"`
	// Region is the edge's region.
	Region string `json:"region"`
	// URL is where clients reach the edge's signaling endpoint.
	URL string `json:"url"`
	// Load is the edge's load from 0 (idle) to 1 (full).
	Load float64 `json:"load"`
	// Sessions is the number of connected clients.
	Sessions int `json:"sessions"`
	// Capacity is the number of sessions at which the edge is full (its MaxSessions); 0 when not announced.
	Capacity int `json:"capacity,omitempty"`
	// Draining means the edge takes no new joins. In answers from the local copy it is also set when an operator
	// asked the edge to drain (SetDraining).
	Draining bool `json:"draining"`
	// Updated is when the edge sent the heartbeat.
	Updated time.Time `json:"updated"`
	// Relay is the host:port (UDP) where other edges open relay links to this edge; empty when it takes none.
	Relay string `json:"relay,omitempty"`
	// Links are the edge's open relay links, at most MaxLinkStatus of them.
	Links []LinkStatus `json:"links,omitempty"`
}

// LinkStatus describes one relay link in a heartbeat.
type LinkStatus struct {
	// Peer is the edge at the other end, as "region/edge".
	Peer    string `json:"peer"`
	AppID   string `json:"app_id"`
	Channel string `json:"channel"`
	// RTTMs is the link's round trip in milliseconds.
	RTTMs float64 `json:"rtt_ms"`
	// Loss is the fraction of media packets lost on first arrival, before recovery.
	Loss float64 `json:"loss"`
	// KbpsIn and KbpsOut are the media bitrates received and sent.
	KbpsIn  float64 `json:"kbps_in"`
	KbpsOut float64 `json:"kbps_out"`
}

// MaxLinkStatus bounds the links one heartbeat lists.
const MaxLinkStatus = 256

func (e EdgeInfo) validate() error {
	var errs []error
	// JSON carries only valid UTF-8: another id or URL would reach readers altered (and its signature broken).
	if e.ID == "" || len(e.ID) > 256 || !utf8.ValidString(e.ID) {
		errs = append(errs, errors.New("cluster: edge: id must have 1-256 bytes of UTF-8"))
	}
	if !utf8.ValidString(e.URL) {
		errs = append(errs, fmt.Errorf("cluster: edge %q: url is not UTF-8", e.ID))
	}
	if !validName(e.Region, 32) {
		errs = append(errs, fmt.Errorf("cluster: edge %q: bad region %q", e.ID, e.Region))
	}
	if math.IsNaN(e.Load) || e.Load < 0 || e.Load > 1 {
		errs = append(errs, fmt.Errorf("cluster: edge %q: load %v not in [0, 1]", e.ID, e.Load))
	}
	if e.Sessions < 0 || e.Capacity < 0 {
		errs = append(errs, fmt.Errorf("cluster: edge %q: negative sessions or capacity", e.ID))
	}
	if len(e.Relay) > 256 || !utf8.ValidString(e.Relay) {
		errs = append(errs, fmt.Errorf("cluster: edge %q: relay address must have at most 256 bytes of UTF-8", e.ID))
	}
	if len(e.Links) > MaxLinkStatus {
		errs = append(errs, fmt.Errorf("cluster: edge %q: %d links listed, at most %d", e.ID, len(e.Links), MaxLinkStatus))
	}
	for _, l := range e.Links {
		if !utf8.ValidString(l.Peer) || !utf8.ValidString(l.AppID) || !utf8.ValidString(l.Channel) {
			errs = append(errs, fmt.Errorf("cluster: edge %q: link names must be UTF-8", e.ID))
			break
		}
	}
	return errors.Join(errs...)
}

func decodeEdge(id string, data []byte) (EdgeInfo, error) {
	var e EdgeInfo
	if err := json.Unmarshal(data, &e); err != nil {
		return e, err
	}
	if e.ID != id {
		return e, fmt.Errorf("id %q stored under %q", e.ID, id)
	}
	return e, e.validate() // a load of NaN or 7, say, would mislead the dispatchers
}

// drainCmd is an operator's request that an edge drain (key "drain.<edge>" in the region's control bucket).
type drainCmd struct {
	Edge    string    `json:"edge"`
	By      string    `json:"by"`
	Updated time.Time `json:"updated"`
}

const drainPrefix = "drain."

func parseDrainKey(key string) (string, bool) {
	t, ok := strings.CutPrefix(key, drainPrefix)
	if !ok {
		return "", false
	}
	return parseTokenKey(t)
}

func decodeDrain(id string, data []byte) (drainCmd, error) {
	var d drainCmd
	err := json.Unmarshal(data, &d)
	return d, err
}

// Heartbeat announces an edge: it is listed in Edges until EdgeTTL after its last heartbeat. An empty Region is
// the node's. Updated is set to now. Edges call it every HeartbeatInterval; RunHeartbeat does that.
func (c *Cluster) Heartbeat(ctx context.Context, e EdgeInfo) error {
	if e.Region == "" {
		e.Region = c.cfg.Region
	}
	if err := e.validate(); err != nil {
		return err
	}
	e.Updated = time.Now().UTC()
	v, err := c.sealed(kindEdge, e)
	if err != nil {
		return err
	}
	if err := c.ensureRegion(ctx, e.Region); err != nil {
		return err
	}
	return c.put(ctx, c.regionBuckets(e.Region).edges, encodeToken(e.ID), v, c.cfg.EdgeTTL)
}

// LeaveEdge removes an edge from the listing at once (a graceful stop; a crashed edge expires instead).
func (c *Cluster) LeaveEdge(ctx context.Context, region, id string) error {
	if !validName(region, 32) {
		return fmt.Errorf("cluster: bad region %q", region)
	}
	return c.remove(ctx, c.regionBuckets(region).edges, encodeToken(id), true)
}

// RunHeartbeat announces the edge described by info() every HeartbeatInterval until ctx is done or the Cluster
// closes, then removes it (LeaveEdge). Failed heartbeats (the bus is down) are logged and retried at the next
// interval. It returns nil when stopped, or the first error if info() returns an invalid EdgeInfo.
func (c *Cluster) RunHeartbeat(ctx context.Context, info func() EdgeInfo) error {
	return c.goTracked(func(cctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(cctx, cancel)
		defer stop()

		t := time.NewTicker(c.cfg.HeartbeatInterval)
		defer t.Stop()
		var last EdgeInfo
		failing := false
		for {
			e := info()
			if e.Region == "" {
				e.Region = c.cfg.Region
			}
			if err := e.validate(); err != nil {
				return err
			}
			last = e
			hctx, hcancel := context.WithTimeout(ctx, c.cfg.HeartbeatInterval)
			err := c.Heartbeat(hctx, e)
			hcancel()
			switch {
			case err != nil && ctx.Err() == nil && !failing:
				failing = true
				c.log.Warn("edge heartbeat failed", "edge", e.ID, "err", err)
			case err == nil && failing:
				failing = false
				c.log.Info("edge heartbeat restored", "edge", e.ID)
			}
			select {
			case <-ctx.Done():
				lctx, lcancel := context.WithTimeout(context.Background(), time.Second)
				defer lcancel()
				if err := c.LeaveEdge(lctx, last.Region, last.ID); err != nil && !errors.Is(err, ErrClosed) {
					c.log.Debug("edge leave", "edge", last.ID, "err", err)
				}
				return nil
			case <-t.C:
			}
		}
	})
}

// Edges returns the live edges of a followed region (the node's own, or one of Config.Regions), ordered by id,
// from the local copy. While the bus is down it returns the edges last known to be live.
func (c *Cluster) Edges(region string) []EdgeInfo {
	c.rmu.RLock()
	r := c.regions[region]
	c.rmu.RUnlock()
	if r == nil {
		return nil
	}
	var out []EdgeInfo
	r.edges.each(func(_ string, e EdgeInfo) bool { out = append(out, e); return true })
	for i := range out {
		if _, ok := r.drains.get(out[i].ID); ok {
			out[i].Draining = true
		}
	}
	slices.SortFunc(out, func(a, b EdgeInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Edge returns one live edge of a followed region.
func (c *Cluster) Edge(region, id string) (EdgeInfo, bool) {
	c.rmu.RLock()
	r := c.regions[region]
	c.rmu.RUnlock()
	if r == nil {
		return EdgeInfo{}, false
	}
	e, ok := r.edges.get(id)
	if ok {
		if _, d := r.drains.get(id); d {
			e.Draining = true
		}
	}
	return e, ok
}

// Regions returns the followed regions, ordered.
func (c *Cluster) Regions() []string {
	c.rmu.RLock()
	defer c.rmu.RUnlock()
	out := make([]string, 0, len(c.regions))
	for name := range c.regions {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// SetDraining asks an edge of region to drain (take no new joins, move its clients away) or to stop draining. The
// request stays until withdrawn, across restarts of the edge. Dispatchers see the edge as draining at once; the
// edge learns it from DrainRequested.
func (c *Cluster) SetDraining(ctx context.Context, region, edgeID string, draining bool) error {
	if !validName(region, 32) {
		return fmt.Errorf("cluster: bad region %q", region)
	}
	if err := c.ensureRegion(ctx, region); err != nil {
		return err
	}
	bucket, key := c.regionBuckets(region).control, drainPrefix+encodeToken(edgeID)
	if !draining {
		return c.remove(ctx, bucket, key, false)
	}
	return c.put(ctx, bucket, key, drainCmd{Edge: edgeID, By: c.cfg.Node, Updated: time.Now().UTC()}, 0)
}

// DrainRequested reports whether an operator asked edge edgeID of a followed region to drain.
func (c *Cluster) DrainRequested(region, edgeID string) bool {
	c.rmu.RLock()
	r := c.regions[region]
	c.rmu.RUnlock()
	if r == nil {
		return false
	}
	_, ok := r.drains.get(edgeID)
	return ok
}
