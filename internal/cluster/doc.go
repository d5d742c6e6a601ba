// Package cluster is Stoa's cluster state on NATS JetStream: the projects, edges, channel placements, IP blocks and
// dispatcher keys that dispatchers, edges and the console share, and the stream of events they publish.
//
// A node (an edge, a dispatcher, the console, or `stoa dev` holding all of them) calls Start with a Config. With
// no URLs it starts an embedded nats-server with JetStream (ClientURL tells other processes where to join);
// otherwise it connects to external servers, normally its own region's NATS cluster, part of a supercluster of
// one cluster per region (docs/deploy.md). It then keeps a local copy of every bucket it follows, current through
// KV watches, so that reads — Project, Edges, ChannelEdges, Blocked, DispatcherKey — cost a map look-up and no
// network round trip, and keep answering with the last known values while the bus is down.
//
// # Buckets and stream
//
// With the default prefix "stoa":
//
//	stoa_projects          global   App ID → Project                       written by the console
//	stoa_dispatchers       global   dispatcher id → DispatcherKey          expires DispatcherKeyTTL after its last put
//	stoa_edges_<region>    regional edge id → EdgeInfo                     expires EdgeTTL after its last heartbeat
//	stoa_channels_<region> regional app.channel.edge → Placement           expires ChannelTTL after its last announcement
//	stoa_blocks_<region>   regional IP → Block                             expires at the block's Until
//	stoa_control_<region>  regional "drain".edge id → drain request        until withdrawn
//	stoa_events            stream   subjects stoa.events.<region>.<type>   bounded: EventMaxBytes, EventMaxAge
//
// Global buckets go to Config.GlobalCluster; regional ones to the cluster of the node that creates them, which is
// its region's, so that a region keeps its edges, placements and blocks to itself and a region's outage leaves
// the others' state untouched.
//
// Names from outside (App IDs, channel names, edge and dispatcher ids, IP addresses) become key tokens in
// base64url without padding ("=" for the empty string): any byte string, '.', ' ', '*', '>' and ':' included, is
// a valid key and decodes back exactly. Region names, the prefix and event types are restricted to
// [A-Za-z0-9_-] instead, because they appear in bucket names and subjects.
//
// # Authentication and signed records
//
// With credentials (Config.CredentialsFile or Credentials, issued by package busauth) a node authenticates to NATS
// servers that trust only the network's operator, and may publish only its role's subjects. When the credentials
// name a Stoa identity, heartbeats, dispatcher keys and blocks are stored signed by their writer (see signed.go),
// and the node ignores those not signed by a node of its own account allowed to write them (RefusedRecords counts
// them). Edges and dispatchers only create missing buckets; the console (or a node without Stoa credentials)
// creates and updates them.
//
// # Projects
//
// A project record (Project) is written by the console, signed with its Ed25519 key (Config.ProjectSigner) when it
// has one, and read by nodes that trust only the keys in Config.ProjectKeys. Records carry a Version covered by
// the signature: a node keeps the highest version it has seen per App ID and refuses lower ones, or the same one
// with other content; deletion writes a signed tombstone (Deleted) with a higher version, and with ProjectKeys a
// node ignores deletes and purges of the bucket. App Certificates are sealed with HPKE (RFC 9180) to the X25519
// key Config.ProjectSealKey, bound to the App ID and the version; nodes holding Config.ProjectOpenKey open them in
// memory (seal.go). See docs/deploy.md for what is left to the bus's own authentication.
//
// # Expiry
//
// On nats-server 2.11 and later (JetStream API level 1), keys expire on the server: every heartbeat or
// announcement is written with a per-message TTL, and the buckets keep a removal marker (LimitMarkerTTL) that tells
// watchers. On older servers (such as 2.9) the node emulates this: the buckets get a max-age equal to the TTL and
// the local copies hide an entry once the TTL has passed since it was last seen (checked every second). Either
// way the local copy also expires entries itself while it is current, and freezes them while it is not: a node
// cut off from the bus keeps the last known edges rather than none. Blocks leave the local copy at their Until
// by a timer, bus or no bus.
//
// # Outages
//
// The client reconnects forever with backoff; writes fail at once while disconnected (no stale heartbeats are
// queued); events are dropped and counted. On every reconnection the watches start again from the buckets'
// current content and the local copies are reconciled with it, deletions included, so they catch up with what
// changed meanwhile. Watches of other followed regions fail alone: a region that is down is dropped from the
// view and looked for again.
//
// # Lifecycle
//
// Start returns once the local copies hold the buckets' current content. Close stops everything the Cluster
// started and returns when it has stopped; see Close.
package cluster
