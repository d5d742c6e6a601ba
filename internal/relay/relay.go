// Package relay links edges that hold the same channel, so that one channel can span many edges and regions.
//
// A Transport listens on one UDP port and speaks QUIC (RFC 9000, TLS 1.3, ALPN "stoa-relay/2") with the relay
// transports of other edges; it dials from the same port, and sends media beside QUIC on that port, in packets of
// its own sealed with keys from the QUIC connection's TLS exporter. Both ends of a connection prove that
// they are edges of this network: each signs the connection's TLS exporter with the key of its bus credentials (a
// NATS user JWT issued by the network's bus authority, naming role edge, its region and id), so holding a
// certificate, or being able to write to the bus, is not enough. Payloads are SFrame ciphertext and pass unchanged:
// no key for them exists on any edge.
//
// # Connections
//
// One connection joins an edge pair, and every link between the two uses it. If both ends dial each other at once,
// both connections are kept: each link lives on the connection it was opened on, and Open uses whichever exists
// (the edge decides which end opens a channel's link, so this is rare). A connection this end dialled is closed
// after 30 s without links. The handshake (auth.go): fresh self-signed Ed25519 certificates whose contents nobody
// checks, then on the first stream a hello from each end that signs the TLS exporter, the sender's role and its
// claimed region and edge id, and carries the id the sender chose for the connection's media packets. The
// receiver checks it with Config.Trust and requires an edge identity allowing that
// region and id; the dialler also requires the peer it dialled. A refused peer's connection is closed with an
// application error and the reason, logged at warn and counted (stoa_relay_refused_total{reason}: untrusted,
// not_edge, wrong_peer, protocol); Open fails with ErrRefused (the peer refused this edge) or ErrUntrusted (this
// edge refused the peer). After a failed attempt to reach a peer, Open fails at once with ErrBackoff for 250 ms,
// doubling with each failure up to 10 s; a success resets it.
//
// The connection's first stream then carries health checks: a ping every HealthInterval, answered at once; a
// connection that answers none for HealthTimeout is closed with all its links. QUIC keep-alives run at
// HealthInterval and QUIC's idle timeout is twice HealthTimeout, so the health check is what fires.
//
// # Links
//
// A link is a bidirectional QUIC stream opened by the end that calls Open: it sends open (app id, channel), the
// peer's Config.Accept answers ok or refused (the error's text, which Open returns wrapped in ErrRefused). The
// stream id names the link in media packets. Control messages (join, leave, publish, unpublish, data, keyframe request,
// NACK, tail, close) are length-prefixed binary frames, bounded in size and checked field by field (wire.go
// documents them byte by byte); a peer that sends a malformed or unexpected frame loses the link, and is told why.
// Frames wait in a queue per link drained by one writer goroutine, NACKs and keyframe requests ahead of the rest,
// at most 64 KiB per write; a link whose queue passes 4 MiB (its peer does not read) is ended. Data messages (at
// most protocol.MaxDataMessage) travel on the stream, reliably and in order.
//
// # Media
//
// RTP does not travel in QUIC: quic-go applies its congestion control (Cubic, which takes random loss for
// congestion) to QUIC datagrams too, and on a lossy path between regions it held a connection's media to a few
// Mbit/s. Media packets go instead beside QUIC on the same UDP socket (quic.Transport.WriteTo, and
// ReadNonQUICPacket for the packets whose first byte has QUIC's two top bits clear), with no congestion window,
// as SFU cascades over SRTP do. A media packet (media.go documents it byte by byte) carries in clear a version
// byte, the receiver's id of the connection (a random 64-bit id each end chose and sent in its hello) and a
// 64-bit packet counter; then, sealed with AES-128-GCM under a key per connection and direction derived from the
// TLS exporter (label "EXPORTER-stoa-relay-media-v1"), the counter as nonce and the clear header authenticated:
// link id, track number, link sequence number (u16, per track, from 0), then the RTP packet as the publisher sent
// it. Packets go to the QUIC connection's current remote address (it follows the peer's NAT rebinding); the
// receiver takes a packet only from the remote address of the connection its id names, only if it
// authenticates, and only once (a window of the last 2048 counters: duplicates and older packets are refused).
// What it refuses is dropped and counted (stoa_relay_media_rejected_total{reason}: malformed, unknown_id,
// address, auth, replay, queue), never logged per packet.
//
// WriteRTP copies the packet into the track's retransmission buffer and queues its number for the connection's
// media sender; it never blocks. The sender seals packets and writes them to the socket, retransmissions first.
// Media that cannot be sent is dropped and counted (Stats.Dropped, stoa_relay_dropped_total{reason}): when the
// queue is full (512 first transmissions, 256 retransmissions per connection), when a packet waited more than
// 150 ms (the socket cannot keep up: this end sends faster than its uplink), when the socket refuses it, and when
// it is larger than 1400 bytes (WriteRTP refuses those outright). A media packet is then at most 1450 bytes,
// within the 1452 bytes a path of 1500-byte MTU carries (WebRTC stacks send RTP packets of at most about 1200
// bytes). Packets of unknown links or tracks (the publish frame may arrive after the first packets) are dropped;
// the receiver expects every track from sequence number 0, so it asks for those again.
//
// # Loss recovery
//
// Each outgoing track keeps its last RetransmitBuffer packets (at least 64) in a ring indexed by sequence number.
// The receiver extends sequence numbers to 64 bits, delivers each packet at most once (a 2048-packet window of what
// arrived), and notes gaps; so that the loss of the last packets before a pause is found too, a track that pauses
// for 50 ms reports its last sequence number in a tail frame. Every 10 ms the connection scans the gaps: one older
// than 20 ms (the reorder allowance) is asked for in a NACK; it is asked for again every retransmission timeout
// (QUIC's smoothed RTT plus four deviations, 25 ms to 1 s) and given up (Stats.Lost) after six requests. The sender
// answers from the ring, but does not resend a packet it dropped itself (its uplink could not keep up, and late
// media would add to it). A packet received after a request counts as Recovered; Loss is the share of packets
// missing past the reorder allowance over the last five seconds, before recovery. NoRecovery turns requests and
// answers off.
//
// # Concurrency
//
// Handler calls for control messages come from the link's reader goroutine in the peer's order; RTP comes from the
// connection's media goroutine, which serves all its links, so a slow RTP handler delays every link of the
// connection (256 received packets wait for it; more are dropped). One goroutine per transport reads the media
// packets from quic-go (which holds only 32 of them) and hands each to its connection's goroutine. A track's RTP calls come between its Published and
// Unpublished calls, and none follows Closed. Handlers may call the Link's methods, including Close, but not
// Transport.Close, which waits for every goroutine.
//
// # Limits
//
// Measured through the WAN test's proxy (80 ms RTT, ±10 ms jitter, 2% loss each way), a 0.7 Mbit/s channel and a
// 4.3 Mbit/s one (several publishers) both arrive whole with recovery, p99 one-way latency about 150-170 ms.
// Before media left QUIC, quic-go's congestion control held a connection near 1.7 Mbit/s at 2% loss (near
// 7 Mbit/s at 0.1%), and 44% of the 4.3 Mbit/s stream arrived. Without a congestion window, nothing slows media
// down on a path that is really congested: the relay sends what the publishers send (as an SFU does), and
// losses are recovered while they are few; senders adapt through their own congestion control (the subscribers'
// feedback at their edges). Media packets rely on a path MTU of 1500 bytes, as QUIC's largest packets do: on a
// path with a smaller one, the largest RTP packets would be lost and counted as Lost.
//
// # Metrics
//
// With Config.Metrics, labelled peer="region/edge": stoa_relay_links, stoa_relay_rtt_seconds,
// stoa_relay_packets_sent_total, stoa_relay_bytes_sent_total, stoa_relay_packets_received_total,
// stoa_relay_bytes_received_total, stoa_relay_retransmitted_total, stoa_relay_recovered_total,
// stoa_relay_lost_total, stoa_relay_dropped_total (also by reason: queue, size, send); and, without a peer label
// (a packet that fails the checks names no proven peer), stoa_relay_refused_total{reason} and
// stoa_relay_media_rejected_total{reason}.
package relay

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stoa-rtc/stoa/internal/busauth"
)

// Peer names the edge at the other end of a link.
type Peer struct {
	Region string
	EdgeID string
	// Addr is the host:port of the peer's relay listener (UDP). On an accepted link it is the address the
	// connection came from.
	Addr string
}

// TrackInfo describes a track published over a link.
type TrackInfo struct {
	// ID is the track's id, unique in the channel (edges give tracks random ids).
	ID string
	// UID is the publishing participant.
	UID string
	// Kind is "audio", "video" or "data".
	Kind string
}

// Handler receives what the other end of one Link sends. Control calls (all but RTP) come from one goroutine,
// in the order the peer sent them; RTP may be called from another goroutine, concurrently with them. No call
// may block for long.
type Handler interface {
	// Joined and Left report a participant of the channel that the peer serves (or relays).
	Joined(uid string)
	Left(uid, reason string)
	// Published and Unpublished report a track that the peer sends on this link.
	Published(t TrackInfo)
	Unpublished(trackID string)
	// RTP delivers one RTP packet (header and payload, as the publisher sent them) of a published audio or video
	// track, at most once, in arrival order (a recovered packet arrives late). pkt is valid only during the call.
	RTP(trackID string, pkt []byte)
	// Data delivers one data message of a published data track. msg is valid only during the call.
	Data(trackID string, msg []byte)
	// KeyframeRequest asks for a keyframe of a track that this end publishes on the link.
	KeyframeRequest(trackID string)
	// Closed is called once when the link ends, closed by either end or lost; no call follows it.
	Closed(err error)
}

// Config configures a Transport.
type Config struct {
	// Region and EdgeID name this edge; Credentials must allow them (busauth.Identity.Allows with RoleEdge).
	Region string
	EdgeID string
	// Addr is the UDP address to listen on, e.g. "0.0.0.0:7883"; port 0 picks a free port.
	Addr string
	// Credentials are this edge's bus credentials: their key signs the link handshake.
	Credentials *busauth.Credentials
	// Trust checks the peers' credentials: issued by a trusted account, role edge.
	Trust *busauth.Verifier
	// Accept is called for each link a peer opens (l.Peer() is the proven peer); it returns the link's Handler,
	// or an error to refuse the link (the peer's Open fails with the error's text). What Accept sends on l is
	// delivered after the peer learns the link is accepted. Accept must not block for long.
	Accept func(l *Link, appID, channel string) (Handler, error)
	// RetransmitBuffer is how many packets of each outgoing track are kept for retransmission (default 1024).
	RetransmitBuffer int
	// NoRecovery turns loss recovery off (NACKs are neither sent nor answered): for tests that prove it works.
	NoRecovery bool
	// HealthInterval is how often each connection is checked (default 1 s); a connection that answers no
	// check for HealthTimeout (default 5 s, longer than HealthInterval) is closed with its links.
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	// Metrics, if set, registers the per-peer metrics (label "peer": "region/edge").
	Metrics prometheus.Registerer
	Logger  *slog.Logger
}

// Stats are one link's figures.
type Stats struct {
	Peer    Peer
	AppID   string
	Channel string
	// RTT is the connection's last measured round trip.
	RTT time.Duration
	// PacketsSent and BytesSent count media packets sent (retransmissions included); the Received pair counts
	// media packets received (duplicates excluded).
	PacketsSent, BytesSent         uint64
	PacketsReceived, BytesReceived uint64
	// Retransmitted counts packets sent again on the peer's request; Recovered counts packets received late
	// thanks to a request; Lost counts packets given up on.
	Retransmitted, Recovered, Lost uint64
	// Loss is the fraction of media packets missing on first arrival over the last few seconds (before recovery).
	Loss float64
	// BitrateIn and BitrateOut are bits per second over the last few seconds.
	BitrateIn, BitrateOut float64
	// Dropped counts media packets and data messages not sent: the send queue was full, a packet waited too long
	// for the socket, the socket refused it or it was larger than 1400 bytes, a message was larger than
	// protocol.MaxDataMessage.
	Dropped uint64
}

// Errors that callers act on. Open's errors wrap ErrRefused, ErrUntrusted or ErrBackoff when one applies.
var (
	// ErrClosed is returned by operations on a closed Transport or Link, and wrapped by the error Handler.Closed
	// gets when either end closed the link (or shut down) in order; any other error means the link was lost.
	ErrClosed = errors.New("relay: closed")
	// ErrRefused: the peer refused the link (Config.Accept returned an error) or refused this edge's proof.
	ErrRefused = errors.New("relay: refused")
	// ErrUntrusted: the peer did not prove to be the edge dialled.
	ErrUntrusted = errors.New("relay: untrusted peer")
	// ErrBackoff: the last attempt to reach the peer failed, and the next one is not due yet.
	ErrBackoff = errors.New("relay: peer unreachable, backing off")
)
