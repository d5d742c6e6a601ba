package edge

// Cascading: a channel held by several edges is joined by relay links (internal/relay), one per pair of edges
// that must exchange its media. Which pairs is decided outside the edge (internal/node: edges of one region link
// directly, regions meet through one hub edge each) and given to LinkChannel; this file keeps each room's links,
// tells them about the room's participants and tracks, and turns what they announce into remote participants and
// tracks that local clients see as they see local ones.
//
// What a link brings is forwarded on to other links only across classes: from a link within the region to links
// to other regions, and from a link to another region to links within the region, never within one class. With
// links inside a region forming a full mesh and hubs forming a full mesh between regions, every edge receives each
// track exactly once and no packet can loop.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stoa-rtc/stoa/internal/edge/forward"
	"github.com/stoa-rtc/stoa/internal/protocol"
	"github.com/stoa-rtc/stoa/internal/relay"
	"github.com/stoa-rtc/stoa/internal/rtc"
)

// linkOpenTimeout bounds one attempt to open a link; the next reconciliation tries again (the relay backs off).
const linkOpenTimeout = 10 * time.Second

// errNotHere refuses a link for a channel this edge does not hold.
var errNotHere = errors.New("channel not held by this edge")

// roomLink is one relay link of a room, and the relay.Handler of what the peer sends on it.
type roomLink struct {
	r     *room
	peer  relay.Peer
	key   string // peerKey(peer)
	cross bool   // the peer is in another region
	// dialed: this edge opened the link, and closes it when the channel no longer needs it.
	dialed bool
	link   atomic.Pointer[relay.Link] // nil while opening

	// guarded by r.mu
	closed    bool
	uids      map[string]bool         // participants the peer announced
	tracks    map[string]*publication // tracks the peer announced
	announced map[string]bool         // participants announced to the peer
	sent      map[string]bool         // tracks published to the peer

	// rtp finds the peer's tracks for media without the room's lock: track id → *publication.
	rtp sync.Map
}

func peerKey(p relay.Peer) string { return p.Region + "/" + p.EdgeID }

func (r *room) newLink(p relay.Peer, dialed bool) *roomLink {
	return &roomLink{r: r, peer: p, key: peerKey(p), cross: p.Region != r.srv.cfg.Region, dialed: dialed,
		uids: map[string]bool{}, tracks: map[string]*publication{}, announced: map[string]bool{}, sent: map[string]bool{}}
}

// relays reports whether what arrives from src (nil: a local session) may be sent on dst.
func relays(src, dst *roomLink) bool { return src == nil || src != dst && src.cross != dst.cross }

// relayedUID reports whether a link other than l brings participant uid and may pass it on to l; r.mu is held.
func (r *room) relayedUID(uid string, l *roomLink) bool {
	for _, m := range r.links {
		if m.uids[uid] && relays(m, l) {
			return true
		}
	}
	return false
}

// announceUID tells the peer that participant uid is (want) or is no longer there, if that changes what it was
// told; r.mu is held.
func (l *roomLink) announceUID(uid string, want bool, reason string) {
	link := l.link.Load()
	if link == nil || l.closed || want == l.announced[uid] {
		return
	}
	if want {
		l.announced[uid] = true
		link.Join(uid)
		return
	}
	delete(l.announced, uid)
	link.Leave(uid, reason)
}

// offer publishes p to the peer if p may travel on l; r.mu is held.
func (l *roomLink) offer(p *publication) {
	link := l.link.Load()
	if link == nil || l.closed || !relays(p.via, l) || l.sent[p.id] || p.closed.Load() {
		return
	}
	out, err := link.Publish(relay.TrackInfo{ID: p.id, UID: p.uid, Kind: string(p.kind)})
	if err != nil {
		return // the link is ending
	}
	l.sent[p.id] = true
	p.addOut(l, out)
}

// attach makes link the open link l and tells the peer what the room holds; false if the room or l has ended
// meanwhile (the caller closes link).
func (r *room) attach(l *roomLink, link *relay.Link) bool {
	r.mu.Lock()
	if r.dropped || l.closed {
		r.mu.Unlock()
		return false
	}
	old := r.links[l.key]
	r.links[l.key] = l
	l.link.Store(link)
	for uid, s := range r.members {
		if !s.hidden {
			l.announceUID(uid, true, "")
		}
	}
	for _, m := range r.links {
		for uid := range m.uids {
			l.announceUID(uid, r.relayedUID(uid, l), "")
		}
	}
	for _, p := range r.tracks {
		l.offer(p)
	}
	r.mu.Unlock()
	if old != nil && old != l {
		// A peer that reconnects opens a new link before the old one is found dead: the new one wins.
		if ol := old.link.Load(); ol != nil {
			ol.Close()
		} else {
			r.dropLink(old, nil)
		}
	}
	return true
}

// dropLink forgets l and everything it brought.
func (r *room) dropLink(l *roomLink, _ error) {
	r.mu.Lock()
	if l.closed {
		r.mu.Unlock()
		return
	}
	l.closed = true
	if r.links[l.key] == l {
		delete(r.links, l.key)
	}
	for id := range l.sent {
		if p := r.tracks[id]; p != nil {
			p.removeOut(l)
		}
	}
	clear(l.sent)
	clear(l.announced)
	var n notices
	for uid := range l.uids {
		delete(l.uids, uid)
		n = append(n, r.uidChanged(uid, protocol.CodeLeft)...)
	}
	tracks := make([]*publication, 0, len(l.tracks))
	for _, p := range l.tracks {
		tracks = append(tracks, p)
	}
	r.mu.Unlock()
	for _, p := range tracks {
		r.unpublish(p)
	}
	n.deliver()
}

// validRemoteName checks a uid or track id a peer sent, as the signaling protocol checks a client's.
func validRemoteName(s string, maxLen int) bool {
	return s != "" && len(s) <= maxLen && utf8.ValidString(s)
}

// Joined implements relay.Handler.
func (l *roomLink) Joined(uid string) {
	if !validRemoteName(uid, protocol.MaxUIDLen) {
		return
	}
	r := l.r
	r.mu.Lock()
	if l.closed {
		r.mu.Unlock()
		return
	}
	l.uids[uid] = true
	n := r.uidChanged(uid, "")
	r.mu.Unlock()
	n.deliver()
}

// Left implements relay.Handler.
func (l *roomLink) Left(uid, reason string) {
	r := l.r
	r.mu.Lock()
	if l.closed || !l.uids[uid] {
		r.mu.Unlock()
		return
	}
	delete(l.uids, uid)
	n := r.uidChanged(uid, leaveCode(reason))
	r.mu.Unlock()
	n.deliver()
}

// leaveCode passes on the reasons a participant leaves for; anything else a peer says becomes "left".
func leaveCode(reason string) protocol.Code {
	switch c := protocol.Code(reason); c {
	case protocol.CodeTimeout, protocol.CodeReplaced, protocol.CodePrivilegeExpired, protocol.CodeShuttingDown:
		return c
	}
	return protocol.CodeLeft
}

// Published implements relay.Handler.
func (l *roomLink) Published(t relay.TrackInfo) {
	if !validRemoteName(t.ID, protocol.MaxTrackIDLen) || !validRemoteName(t.UID, protocol.MaxUIDLen) {
		return
	}
	p := &publication{id: t.ID, kind: protocol.Kind(t.Kind), uid: t.UID, via: l}
	switch p.kind {
	case protocol.KindAudio, protocol.KindVideo:
		codec := rtc.Codec(p.kind == protocol.KindVideo).RTPCodecCapability
		local, err := forward.NewTrack(p.id, p.uid, codec, forward.WithKeyframeRequest(func(uint32) {
			if link := l.link.Load(); link != nil {
				link.RequestKeyframe(t.ID)
			}
		}))
		if err != nil {
			return
		}
		p.local = local
	case protocol.KindData:
	default:
		return
	}
	l.r.publish(p)
}

// Unpublished implements relay.Handler.
func (l *roomLink) Unpublished(trackID string) {
	r := l.r
	r.mu.Lock()
	p := l.tracks[trackID]
	r.mu.Unlock()
	if p != nil {
		r.unpublish(p)
	}
}

// RTP implements relay.Handler.
func (l *roomLink) RTP(trackID string, pkt []byte) {
	v, ok := l.rtp.Load(trackID)
	if !ok {
		return
	}
	p := v.(*publication)
	if p.local == nil || p.closed.Load() {
		return
	}
	var parsed rtp.Packet
	if err := parsed.Unmarshal(pkt); err != nil {
		return
	}
	p.forward(&parsed, pkt)
	l.r.srv.metrics.relayed.Inc()
}

// Data implements relay.Handler.
func (l *roomLink) Data(trackID string, msg []byte) {
	if v, ok := l.rtp.Load(trackID); ok {
		v.(*publication).forwardData(msg)
	}
}

// KeyframeRequest implements relay.Handler: the peer's subscribers need a keyframe of a track this edge sends.
func (l *roomLink) KeyframeRequest(trackID string) {
	if p := l.r.track(trackID); p != nil && p.local != nil && l.sentTrack(trackID) {
		p.local.RequestKeyframe()
	}
}

func (l *roomLink) sentTrack(id string) bool {
	l.r.mu.Lock()
	defer l.r.mu.Unlock()
	return l.sent[id]
}

// Closed implements relay.Handler.
func (l *roomLink) Closed(err error) { l.r.dropLink(l, err) }

// Registry is the edge's metrics registry, for the relay transport's metrics.
func (s *Server) Registry() prometheus.Registerer { return s.metrics.registry }

// SetRelay gives the edge its relay transport; call it before the edge serves.
func (s *Server) SetRelay(t *relay.Transport) { s.relay = t }

// AcceptLink accepts a link a peer opened for a channel (the relay transport's Accept): refused unless the edge
// holds the channel.
func (s *Server) AcceptLink(link *relay.Link, appID, channel string) (relay.Handler, error) {
	s.mu.Lock()
	r := s.rooms[roomKey{appID: appID, channel: channel}]
	s.mu.Unlock()
	if r == nil {
		return nil, errNotHere
	}
	l := r.newLink(link.Peer(), false)
	if !r.attach(l, link) {
		return nil, errNotHere
	}
	return l, nil
}

// LinkChannel makes the links of channel ch those to peers: it opens the missing ones that are this edge's to
// open (the edge whose "region/id" sorts first opens, so that a pair never opens two) and closes those it opened
// that are no longer wanted. Links the peers open are accepted as long as the edge holds the channel.
func (s *Server) LinkChannel(ch Channel, peers []relay.Peer) {
	if s.relay == nil {
		return
	}
	s.mu.Lock()
	r := s.rooms[roomKey{appID: ch.AppID, channel: ch.Name}]
	s.mu.Unlock()
	if r == nil {
		return
	}
	want := make(map[string]bool, len(peers))
	var opening []*roomLink
	var closing []*relay.Link
	self := s.cfg.Region + "/" + s.cfg.ID
	r.mu.Lock()
	if r.dropped {
		r.mu.Unlock()
		return
	}
	for _, p := range peers {
		k := peerKey(p)
		want[k] = true
		if r.links[k] != nil || k == self || self > k {
			continue
		}
		l := r.newLink(p, true)
		r.links[k] = l
		opening = append(opening, l)
	}
	for k, l := range r.links {
		if l.dialed && !want[k] {
			if link := l.link.Load(); link != nil {
				closing = append(closing, link)
			}
		}
	}
	r.mu.Unlock()
	for _, link := range closing {
		link.Close()
	}
	for _, l := range opening {
		s.linkWG.Add(1)
		go func() {
			defer s.linkWG.Done()
			s.openLink(r, l)
		}()
	}
}

func (s *Server) openLink(r *room, l *roomLink) {
	ctx, cancel := context.WithTimeout(s.stopCtx, linkOpenTimeout)
	defer cancel()
	link, err := s.relay.Open(ctx, l.peer, r.key.appID, r.key.channel, l)
	if err != nil {
		s.cfg.Logger.Debug("relay link not opened", "peer", l.key, "err", err)
		r.dropLink(l, err)
		return
	}
	if !r.attach(l, link) {
		link.Close()
	}
}

// closeLinks ends every link of a room that has left the server.
func (r *room) closeLinks() {
	r.mu.Lock()
	r.dropped = true
	links := make([]*roomLink, 0, len(r.links))
	for _, l := range r.links {
		links = append(links, l)
	}
	r.mu.Unlock()
	for _, l := range links {
		if link := l.link.Load(); link != nil {
			link.Close()
		}
	}
}

var _ relay.Handler = (*roomLink)(nil)
