package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stoa-rtc/stoa/internal/cluster"
)

// clusterFlags connect an operator command to a cluster.
type clusterFlags struct {
	nats    natsFlags
	regions string
}

func (f *clusterFlags) register(fs *flag.FlagSet) {
	f.nats.register(fs)
	fs.StringVar(&f.regions, "regions", "", "comma-separated regions to act on, the first by default (default: status shows every region, drain and unblock act on \"local\")")
}

func (f *clusterFlags) connect(ctx context.Context) (*cluster.Cluster, []string, error) {
	if f.nats.urls == "" {
		return nil, nil, usagef("--nats is required")
	}
	var regions []string
	cfg := f.nats.config("local", "stoa-cli-"+randomHex(3), nil)
	cfg.UseExisting = true // an operator's command changes no bucket or stream, and creates no region
	if f.regions == "" {
		cfg.Regions = []string{"*"} // follow every region there is
	} else {
		regions = strings.Split(f.regions, ",")
		cfg.Region, cfg.Regions = regions[0], regions[1:]
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := cluster.Start(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if regions == nil {
		// Start holds the own (placeholder) region; the others are followed as they are discovered.
		if regions, err = c.SyncRegions(ctx); err != nil {
			c.Close()
			return nil, nil, err
		}
	}
	return c, regions, nil
}

func clusterCommand() *command {
	var (
		cf      clusterFlags
		jsonOut bool
		undo    bool
	)
	return &command{
		name:    "cluster",
		summary: "operate a cluster: status, drain an edge, unblock an address",
		subcommands: []*command{
			{
				name:    "status",
				summary: "show regions, edges, their load and state, channels with their edges and relay links, and blocked addresses",
				usage:   "stoa cluster status --nats URL [--regions eu,us] [--json]",
				flags: func(fs *flag.FlagSet) {
					cf.register(fs)
					fs.BoolVar(&jsonOut, "json", false, "print JSON")
				},
				run: func(ctx context.Context, args []string, env *cmdEnv) error {
					if err := env.parseNoArgs(args); err != nil {
						return err
					}
					c, regions, err := cf.connect(ctx)
					if err != nil {
						return err
					}
					defer c.Close()
					type regionStatus struct {
						Region   string              `json:"region"`
						Edges    []cluster.EdgeInfo  `json:"edges"`
						Channels []cluster.Placement `json:"channels"`
					}
					var st []regionStatus
					for _, r := range regions {
						edges := c.Edges(r)
						if len(edges) == 0 && cf.regions == "" && r == "local" {
							continue // the placeholder region of this command's own connection
						}
						st = append(st, regionStatus{Region: r, Edges: edges, Channels: c.Placements(r)})
					}
					if jsonOut {
						enc := json.NewEncoder(env.stdout)
						enc.SetIndent("", "  ")
						return enc.Encode(struct {
							Regions []regionStatus  `json:"regions"`
							Blocks  []cluster.Block `json:"blocks"`
						}{st, c.Blocks()})
					}
					w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(w, "REGION\tEDGE\tSESSIONS\tLOAD\tSTATE\tURL")
					for _, r := range st {
						if len(r.Edges) == 0 {
							fmt.Fprintf(w, "%s\t-\t\t\tno live edge\t\n", r.Region)
						}
						for _, e := range r.Edges {
							state := "serving"
							if e.Draining {
								state = "draining"
							}
							fmt.Fprintf(w, "%s\t%s\t%d\t%.0f%%\t%s\t%s\n", r.Region, e.ID, e.Sessions, 100*e.Load, state, e.URL)
						}
					}
					w.Flush()
					for _, r := range st {
						printChannels(env.stdout, r.Channels, r.Edges)
					}
					if bs := c.Blocks(); len(bs) > 0 {
						fmt.Fprintf(env.stdout, "\nblocked in %s:\n", regions[0])
						for _, b := range bs {
							fmt.Fprintf(env.stdout, "  %s until %s (%s, by %s)\n", b.IP, b.Until.UTC().Format(time.RFC3339), b.Reason, b.By)
						}
					}
					return nil
				},
			},
			{
				name:    "drain",
				summary: "stop new joins on an edge and move its clients to their backup edges",
				usage:   "stoa cluster drain EDGE --nats URL [--regions REGION] [--undo]",
				flags: func(fs *flag.FlagSet) {
					cf.register(fs)
					fs.BoolVar(&undo, "undo", false, "end the drain")
				},
				run: func(ctx context.Context, args []string, env *cmdEnv) error {
					rest, err := env.parse(args)
					if err != nil {
						return err
					}
					if len(rest) != 1 {
						return usagef("expected one EDGE id")
					}
					c, regions, err := cf.connect(ctx)
					if err != nil {
						return err
					}
					defer c.Close()
					if err := c.SetDraining(ctx, regions[0], rest[0], !undo); err != nil {
						return err
					}
					verb := "draining"
					if undo {
						verb = "no longer draining"
					}
					fmt.Fprintf(env.stdout, "%s is %s\n", rest[0], verb)
					return nil
				},
			},
			{
				name:    "unblock",
				summary: "lift the block of an address in a region",
				usage:   "stoa cluster unblock IP --nats URL [--regions REGION]",
				flags:   func(fs *flag.FlagSet) { cf.register(fs) },
				run: func(ctx context.Context, args []string, env *cmdEnv) error {
					rest, err := env.parse(args)
					if err != nil {
						return err
					}
					if len(rest) != 1 {
						return usagef("expected one IP address")
					}
					ip, err := netip.ParseAddr(rest[0])
					if err != nil {
						return usagef("%q is not an IP address", rest[0])
					}
					if ip = ip.Unmap(); ip.Is6() {
						// The guard blocks IPv6 clients by /64 (one host's addresses), keyed by the network address.
						ip = netip.PrefixFrom(ip, 64).Masked().Addr()
					}
					c, regions, err := cf.connect(ctx)
					if err != nil {
						return err
					}
					defer c.Close()
					if err := c.DeleteBlock(ctx, regions[0], ip); err != nil {
						return err
					}
					fmt.Fprintf(env.stdout, "%s unblocked in %s\n", ip, regions[0])
					return nil
				},
			},
		},
	}
}

// printChannels lists a region's channels with the edges holding each and, per edge, its relay links for the
// channel with their round trip, loss and bitrate.
func printChannels(out io.Writer, placements []cluster.Placement, edges []cluster.EdgeInfo) {
	type chKey struct{ app, channel string }
	var order []chKey
	holders := map[chKey][]string{}
	for _, p := range placements {
		k := chKey{p.AppID, p.Channel}
		if holders[k] == nil {
			order = append(order, k)
		}
		holders[k] = append(holders[k], p.EdgeID)
	}
	for _, k := range order {
		fmt.Fprintf(out, "\nchannel %s/%s in %s: edges %s\n", k.app, k.channel, placements[0].Region, strings.Join(holders[k], ", "))
		for _, e := range edges {
			for _, l := range e.Links {
				if l.AppID == k.app && l.Channel == k.channel {
					fmt.Fprintf(out, "  link %s ↔ %s: rtt %.1f ms, loss %.2f%%, in %.0f kbps, out %.0f kbps\n",
						e.ID, l.Peer, l.RTTMs, 100*l.Loss, l.KbpsIn, l.KbpsOut)
				}
			}
		}
	}
}
