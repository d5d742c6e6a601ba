package edge

import (
	"sync"

	"github.com/stoa-rtc/stoa/internal/protocol"
)

// room is the set of participants of one channel of one app and the tracks they publish: its local sessions, and
// the participants and tracks that relay links bring from other edges (cascade.go). Its lock guards membership and
// the links' bookkeeping; every change is then told to the affected sessions by posting to their loops, never by
// touching their state, and to the links by their (non-blocking) relay calls.
type room struct {
	srv *Server
	key roomKey

	mu      sync.Mutex
	members map[string]*session     // uid → local session
	tracks  map[string]*publication // track id → publication, local or remote
	// shown are the participants local sessions have been told about: local members and those of the links.
	shown map[string]bool
	links map[string]*roomLink // peer ("region/edge") → link, open or opening
	// dropped is set once the room has left the server's map: no link may be added any more.
	dropped bool
}

func newRoom(srv *Server, key roomKey) *room {
	return &room{srv: srv, key: key, members: map[string]*session{}, tracks: map[string]*publication{},
		shown: map[string]bool{}, links: map[string]*roomLink{}}
}

// empty reports whether no local session is in the room: participants of other edges alone do not keep a room.
func (r *room) empty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.members) == 0
}

// notices collects what a change must tell local sessions, to be delivered once the room's lock is released.
type notices []func()

func (n notices) deliver() {
	for _, f := range n {
		f()
	}
}

// join adds s and returns the other participants with their tracks, the tracks to subscribe to, and the session
// that s replaces (same uid), if any.
func (r *room) join(s *session) (others []protocol.Participant, tracks []*publication, replaced *session) {
	r.mu.Lock()
	replaced = r.members[s.uid]
	r.members[s.uid] = s
	byUID := map[string][]protocol.Track{}
	for _, p := range r.tracks {
		if p.uid == s.uid {
			continue // its own (a replaced session's leave with it; a copy from another edge is stale)
		}
		byUID[p.uid] = append(byUID[p.uid], p.info())
		tracks = append(tracks, p)
	}
	for uid, shown := range r.shown {
		if shown && uid != s.uid {
			others = append(others, protocol.Participant{UID: uid, Tracks: byUID[uid]})
		}
	}
	n := r.uidChanged(s.uid, "")
	r.mu.Unlock()
	n.deliver()
	return others, tracks, replaced
}

// leave removes s (if it is still the member for its uid) and its tracks.
func (r *room) leave(s *session, reason protocol.Code) {
	r.mu.Lock()
	var n notices
	if r.members[s.uid] == s {
		delete(r.members, s.uid)
		n = r.uidChanged(s.uid, reason)
	}
	// else replaced: the new session keeps the uid; only the old tracks go.
	r.mu.Unlock()
	for _, p := range s.ownPublications() {
		r.unpublish(p)
	}
	n.deliver()
	r.srv.dropRoomIfEmpty(r)
}

// uidChanged brings what local sessions and links were told about participant uid in line with where it now is.
// A hidden member counts as absent: it is announced neither to local sessions nor to links. r.mu is held; the
// notices for local sessions are returned.
func (r *room) uidChanged(uid string, reason protocol.Code) notices {
	self := r.members[uid]
	here := self != nil && !self.hidden
	visible := here
	for _, l := range r.links {
		visible = visible || l.uids[uid]
	}
	for _, l := range r.links {
		l.announceUID(uid, here || r.relayedUID(uid, l), string(reason))
	}
	if visible == r.shown[uid] {
		return nil
	}
	var msg *protocol.Message
	if visible {
		r.shown[uid] = true
		msg = &protocol.Message{Type: protocol.TypeParticipantJoined, ParticipantJoined: &protocol.Participant{UID: uid}}
	} else {
		delete(r.shown, uid)
		if reason == "" {
			reason = protocol.CodeLeft
		}
		msg = &protocol.Message{Type: protocol.TypeParticipantLeft, ParticipantLeft: &protocol.ParticipantLeft{UID: uid, Reason: reason}}
	}
	var n notices
	for _, m := range r.others(self) {
		n = append(n, func() { m.post(func() { m.send(msg) }) })
	}
	return n
}

func (r *room) others(s *session) []*session {
	out := make([]*session, 0, len(r.members))
	for _, m := range r.members {
		if m != s {
			out = append(out, m)
		}
	}
	return out
}

// publish makes p visible to the room: everyone else is told and, if it subscribes automatically, subscribed; the
// links that p may travel on (see relays) carry it on. A remote track that the room already has from another link
// (while the links change, a track can arrive by two paths for a moment) is kept in standby, forwarded nowhere,
// and takes over if the first copy ends.
func (r *room) publish(p *publication) {
	r.mu.Lock()
	if p.owner != nil && r.members[p.uid] != p.owner || p.via != nil && p.via.closed {
		r.mu.Unlock()
		return
	}
	if p.via != nil && p.via.tracks[p.id] != p {
		p.via.tracks[p.id] = p
		p.via.rtp.Store(p.id, p)
	}
	if r.tracks[p.id] != nil {
		r.mu.Unlock()
		return
	}
	r.tracks[p.id] = p
	for _, l := range r.links {
		l.offer(p)
	}
	members := r.others(p.owner)
	r.mu.Unlock()
	info := p.info()
	for _, m := range members {
		m.post(func() {
			m.send(&protocol.Message{Type: protocol.TypeTrackPublished, TrackPublished: &info})
			if m.autoSubscribe && m.uid != p.uid {
				m.subscribe(p)
			}
		})
	}
}

// unpublish removes p from the room, from every subscriber and from every link; a standby copy takes over.
func (r *room) unpublish(p *publication) {
	if !p.closed.CompareAndSwap(false, true) {
		return
	}
	r.mu.Lock()
	if p.via != nil && p.via.tracks[p.id] == p {
		delete(p.via.tracks, p.id)
		p.via.rtp.Delete(p.id)
	}
	active := r.tracks[p.id] == p
	var standby *publication
	if active {
		delete(r.tracks, p.id)
		standby = r.standby(p.id)
	}
	p.unpublishOuts()
	members := r.others(nil)
	r.mu.Unlock()
	if !active {
		return
	}
	ref := &protocol.TrackRef{TrackID: p.id}
	for _, m := range members {
		m.post(func() {
			m.unsubscribe(p)
			m.send(&protocol.Message{Type: protocol.TypeTrackUnpublished, TrackUnpublished: ref})
		})
	}
	if p.owner != nil { // a remote track's events are its own edge's
		r.srv.emit(Event{Type: EventUnpublish, AppID: r.key.appID, Channel: r.key.channel, UID: p.uid,
			Session: p.owner.id, TrackID: p.id, Kind: string(p.kind)})
	}
	if standby != nil {
		r.publish(standby)
	}
}

// standby returns a live copy of track id that a link brings, if any; r.mu is held.
func (r *room) standby(id string) *publication {
	for _, l := range r.links {
		if p := l.tracks[id]; p != nil && !l.closed && !p.closed.Load() {
			return p
		}
	}
	return nil
}

func (r *room) track(id string) *publication {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tracks[id]
}
