package busauth

import "github.com/nats-io/jwt/v2"

// Permissions returns what a node with identity id, whose user public key is pub, may publish and subscribe to on a
// bus whose buckets and subjects start with prefix (cluster.Config.Prefix).
//
// The console may do anything in the Stoa account. Edges and dispatchers may:
//
//   - read every bucket through the JetStream API (stream info and names, ordered consumers for watches, direct
//     gets), but not the event stream, which holds clients' addresses and belongs to the console's consumer;
//   - create the buckets and the event stream when they do not exist yet (never update, purge or delete one);
//   - write their own records: an edge its heartbeat ($KV.<prefix>_edges_<region>.<id>) and its channel placements
//     ($KV.<prefix>_channels_<region>.*.*.<id>), a dispatcher its ticket key ($KV.<prefix>_dispatchers.<id>), both
//     their regions' blocks and events;
//   - subscribe only to their own reply subjects (InboxPrefix(pub)), so that no node reads another's replies.
//
// With AnyID the id is a wildcard, except for the reserved ids, whose records stay out of reach, and blocks are
// not shared: a block is region-wide, so only a node that answers for it under its own id may publish one.
func Permissions(id Identity, prefix, pub string, reserved ...string) jwt.Permissions {
	var p jwt.Permissions
	if id.Role == RoleConsole {
		return p // no restriction
	}
	kv := "$KV." + prefix + "_"
	api := "$JS.API."
	events := prefix + "_events"
	p.Pub.Allow.Add(api+"INFO", api+"STREAM.INFO.*", api+"STREAM.NAMES",
		api+"CONSUMER.CREATE.*", api+"CONSUMER.CREATE.*.>", api+"CONSUMER.DELETE.*.*", api+"CONSUMER.INFO.*.*",
		api+"DIRECT.GET.*", api+"DIRECT.GET.*.>", api+"STREAM.MSG.GET.*",
		"$JS.FC.>", // flow control of the watches' consumers
		api+"STREAM.CREATE.KV_"+prefix+"_projects", api+"STREAM.CREATE.KV_"+prefix+"_dispatchers",
		api+"STREAM.CREATE."+events)
	p.Pub.Deny.Add(api+"CONSUMER.CREATE."+events, api+"CONSUMER.CREATE."+events+".>",
		api+"CONSUMER.DELETE."+events+".*", api+"DIRECT.GET."+events, api+"DIRECT.GET."+events+".>",
		api+"STREAM.MSG.GET."+events)
	p.Sub.Allow.Add(InboxPrefix(pub) + ".>")

	own := "*"
	if !id.AnyID {
		own = token(id.ID)
	}
	if id.Role == RoleDispatch {
		p.Pub.Allow.Add(kv + "dispatchers." + own)
		for _, r := range reserved {
			p.Pub.Deny.Add(kv + "dispatchers." + token(r))
		}
	}
	for _, region := range id.Regions {
		for _, b := range []string{"edges_", "channels_", "control_", "blocks_"} {
			p.Pub.Allow.Add(api + "STREAM.CREATE.KV_" + prefix + "_" + b + region)
		}
		p.Pub.Allow.Add(prefix + ".events." + region + ".*")
		if !id.AnyID {
			p.Pub.Allow.Add(kv + "blocks_" + region + ".*")
		}
		if id.Role == RoleEdge {
			p.Pub.Allow.Add(kv+"edges_"+region+"."+own, kv+"channels_"+region+".*.*."+own)
			for _, r := range reserved {
				p.Pub.Deny.Add(kv+"edges_"+region+"."+token(r), kv+"channels_"+region+".*.*."+token(r))
			}
		}
	}
	return p
}
