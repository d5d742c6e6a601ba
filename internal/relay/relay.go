// Package relay links edges that hold the same channel, so that one channel can span many edges and regions.
//
// A Transport listens on one UDP port and speaks QUIC (TLS 1.3) with the relay transports of other edges. Both
// ends of a connection prove that they are edges of this network: each signs the connection's TLS exporter with
// the key of its bus credentials (a NATS user JWT issued by the network's bus authority, naming role edge, its
// region and id), so holding a certificate, or being able to write to the bus, is not enough.
//
// One connection joins an edge pair; each channel the pair shares is a Link on it: a QUIC stream carries the
// link's control messages (participants, tracks, data messages, keyframe requests, NACKs, health checks) in
// order, and media travels as QUIC datagrams. Each RTP packet is sent once per link; the receiver detects gaps
// and asks for retransmissions from a bounded buffer. Payloads are SFrame ciphertext and pass unchanged: no key
// for them exists on any edge.
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
	// check for HealthTimeout (default 5 s) is closed with its links.
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
	// Dropped counts media packets and data messages not sent: the send queue was full, or a packet was larger
	// than a datagram can carry on the path, or a message larger than protocol.MaxDataMessage.
	Dropped uint64
}

// Errors. Closed carries one of them or a connection error; Open's errors wrap ErrRefused, ErrUntrusted or
// ErrBackoff when one applies.
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
