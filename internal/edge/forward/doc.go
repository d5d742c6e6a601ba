// Package forward implements the edge's pure RTP forwarding path: one
// published track in, many subscriber PeerConnections out. It knows nothing
// of rooms, participants or signaling.
//
// A [Track] is a [webrtc.TrackLocal]: the edge passes the same Track to
// AddTrack on every subscriber PeerConnection, and Pion calls Bind once per
// subscriber with that connection's negotiated SSRC, payload type and write
// stream. The edge feeds the Track the publisher's packets with
// [Track.WriteRTP] (or [Track.Forward]); the Track writes each one to every
// binding.
//
// # Payloads are opaque
//
// Payloads are SFrame ciphertext (RFC 9605). The edge holds no media key and
// never modifies a payload byte: the slice given to Forward is passed, not
// copied, to every subscriber's write stream. Only the RTP header is
// rewritten, in a per-binding copy.
//
// # Why each binding rewrites sequence numbers and timestamps
//
// A subscriber must see one continuous RTP stream (RFC 3550 §5.1) for the life
// of its subscription, while the upstream source may change under it: the
// publisher re-publishes or fails over to this edge from another one, and a
// new SSRC with a new sequence and timestamp space appears. Each binding
// therefore maps upstream numbers to its own downstream space, anchored on
// the first packet it forwards from a source: the downstream sequence starts
// at a random value (RFC 3550 §5.1 asks for random initial values) and, after
// a source change, continues at last+1; timestamps continue monotonically,
// advanced by the wall-clock time between the sources (at least one frame,
// at most 2^30 ticks). The clock is read only when a binding anchors: the
// old source's last packet is placed in wall-clock time by its media time
// since its anchor, so the steady state costs no clock reads.
// Within a source the mapping is a fixed offset modulo 2^16 and 2^32, so
// upstream loss stays a gap downstream (the subscriber's NACKs still name
// real packets), and reordered or retransmitted packets map to the same numbers
// they would have had in order. Packets older than a binding's anchor are
// dropped, since their numbers would collide with ones already sent. Bindings
// anchor at different moments (a subscriber joins late; a video binding
// waits for a keyframe), so the offsets are per binding, not per track.
//
// # Why video waits for a keyframe
//
// A VP8 decoder cannot start from a delta frame: it would show garbage or
// nothing until the next keyframe, and it would report the frames it could
// not decode as losses. A new video binding, and every video binding after a
// source change, therefore forwards nothing until a packet that starts a VP8
// keyframe (RFC 7741 §4.2 and §4.3: S=1, PID=0, and the P bit of the VP8
// payload header clear — Stoa's SFrame packetization keeps those first bytes
// in the clear). While it waits, the Track asks for a keyframe through the
// callback given with [WithKeyframeRequest], throttled, so the edge can send
// a PLI to the publisher. Audio bindings forward immediately: every Opus
// packet is independently decodable.
//
// A binding starts only from a packet its writer accepted. Pion binds a
// track when negotiation completes but drops packets, reporting 0 bytes
// and no error, until DTLS-SRTP is up, and the keyframe asked for at Bind
// often arrives in that window. A binding whose start packet was refused
// keeps waiting, and asks for keyframes with a backoff growing from the
// keyframe interval to 8 s, so that a subscriber that never connects costs
// the publisher few keyframes. The edge shortens the wait by calling
// [Track.RequestKeyframe] when a subscriber connection becomes connected.
//
// # Header extensions are dropped
//
// Header extension IDs are negotiated per PeerConnection (RFC 8285), so the
// publisher's IDs mean nothing on a subscriber connection, and some of them
// (audio level, RFC 6464) leak what the SFrame encryption hides. Forwarded
// headers carry no extensions; the subscriber connection's own interceptors
// add the ones that hop needs (for example transport-wide sequence numbers).
//
// # Concurrency
//
// Bind, Unbind, Forward, SwitchSource, RequestKeyframe and Stats are safe for
// concurrent use. The binding set is a copy-on-write slice behind an atomic
// pointer, so forwarding never waits for Bind or Unbind to change the set;
// each binding has its own mutex, uncontended except while that binding is
// being unbound, so that after Unbind returns no further packet is written to
// its stream (Pion's ReplaceTrack reuses the stream for another track).
// Packets of one source should still be forwarded by one goroutine, in
// arrival order: the rewriting preserves the order it is given.
//
// # Retransmissions
//
// A video Track keeps one copy of each of its latest packets (see history),
// shared by all bindings. [Track.ReadRTCP] answers a subscriber's generic
// NACK (RFC 4585 §6.2.1) by mapping the downstream sequence number back
// through the binding's offset and writing the packet again with the header
// it had. Per subscriber this costs no memory and no per-packet work, where
// Pion's NACK responder interceptor, which the edge does not install,
// copied every packet into a buffer of each subscriber connection.
package forward
