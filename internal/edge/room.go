package edge

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/internal/edge/forward"
	"github.com/stoa-rtc/stoa/internal/protocol"
)

// room is the set of participants of one channel of one app and the tracks they publish. Its lock guards only
// membership; every change is then told to the affected sessions by posting to their loops, never by touching
// their state.
type room struct {
	srv *Server
	key roomKey

	mu      sync.Mutex
	members map[string]*session     // uid → session
	tracks  map[string]*publication // track id → publication
}

func newRoom(srv *Server, key roomKey) *room {
	return &room{srv: srv, key: key, members: map[string]*session{}, tracks: map[string]*publication{}}
}

func (r *room) empty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.members) == 0
}

// join adds s and returns the other participants with their tracks, the tracks to subscribe to, and the session
// that s replaces (same uid), if any.
func (r *room) join(s *session) (others []protocol.Participant, tracks []*publication, replaced *session) {
	r.mu.Lock()
	replaced = r.members[s.uid]
	r.members[s.uid] = s
	byUID := map[string][]protocol.Track{}
	for _, p := range r.tracks {
		if p.owner == replaced {
			continue // leaving with its owner
		}
		byUID[p.owner.uid] = append(byUID[p.owner.uid], p.info())
		tracks = append(tracks, p)
	}
	for uid, m := range r.members {
		if m != s {
			others = append(others, protocol.Participant{UID: uid, Tracks: byUID[uid]})
		}
	}
	members := r.others(s)
	r.mu.Unlock()

	if replaced == nil {
		joined := &protocol.Participant{UID: s.uid}
		for _, m := range members {
			m.post(func() { m.send(&protocol.Message{Type: protocol.TypeParticipantJoined, ParticipantJoined: joined}) })
		}
	}
	return others, tracks, replaced
}

// leave removes s (if it is still the member for its uid) and its tracks.
func (r *room) leave(s *session, reason protocol.Code) {
	r.mu.Lock()
	if r.members[s.uid] != s {
		// Replaced: the new session keeps the uid; only the old tracks go.
		r.mu.Unlock()
		for _, p := range s.ownPublications() {
			r.unpublish(p)
		}
		return
	}
	delete(r.members, s.uid)
	members := r.others(s)
	r.mu.Unlock()
	for _, p := range s.ownPublications() {
		r.unpublish(p)
	}
	left := &protocol.ParticipantLeft{UID: s.uid, Reason: reason}
	for _, m := range members {
		m.post(func() { m.send(&protocol.Message{Type: protocol.TypeParticipantLeft, ParticipantLeft: left}) })
	}
	r.srv.dropRoomIfEmpty(r)
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

// publish makes p visible to the room: everyone else is told and, if it subscribes automatically, subscribed.
func (r *room) publish(p *publication) {
	r.mu.Lock()
	if r.members[p.owner.uid] != p.owner {
		r.mu.Unlock()
		return
	}
	r.tracks[p.id] = p
	members := r.others(p.owner)
	r.mu.Unlock()
	info := p.info()
	for _, m := range members {
		m.post(func() {
			m.send(&protocol.Message{Type: protocol.TypeTrackPublished, TrackPublished: &info})
			if m.autoSubscribe {
				m.subscribe(p)
			}
		})
	}
}

// unpublish removes p from the room and from every subscriber.
func (r *room) unpublish(p *publication) {
	if !p.closed.CompareAndSwap(false, true) {
		return
	}
	r.mu.Lock()
	if r.tracks[p.id] == p {
		delete(r.tracks, p.id)
	}
	members := r.others(nil)
	r.mu.Unlock()
	ref := &protocol.TrackRef{TrackID: p.id}
	for _, m := range members {
		m.post(func() {
			m.unsubscribe(p)
			m.send(&protocol.Message{Type: protocol.TypeTrackUnpublished, TrackUnpublished: ref})
		})
	}
	r.srv.emit(Event{Type: EventUnpublish, AppID: r.key.appID, Channel: r.key.channel, UID: p.owner.uid,
		Session: p.owner.id, TrackID: p.id, Kind: string(p.kind)})
}

func (r *room) track(id string) *publication {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tracks[id]
}

// publication is one published track: audio or video forwarded as RTP, or data forwarded as messages.
type publication struct {
	id     string
	kind   protocol.Kind
	owner  *session
	closed atomic.Bool

	// audio and video: the forwarding track that every subscriber connection binds, and the uplink's quality
	local *forward.Track
	up    *rtpStats

	// data: the subscribers' data channels, copied on write so that forwarding takes no lock
	dataSubs atomic.Pointer[[]*dataSub]
	dataMu   sync.Mutex
}

type dataSub struct {
	s  *session
	dc *webrtc.DataChannel
}

func (p *publication) info() protocol.Track {
	return protocol.Track{ID: p.id, UID: p.owner.uid, Kind: p.kind}
}

// forwardRTP copies the publisher's packets to every subscriber until the track ends. Payloads are SFrame
// ciphertext and pass unchanged.
//
// One packet in sampleEvery is timed from its arrival (decrypted by the publisher leg's SRTP) to its hand-over
// to the last subscriber's socket (encrypted by each subscriber leg's SRTP): the latency the edge adds.
func (p *publication) forwardRTP(track *webrtc.TrackRemote, m *metrics) {
	const sampleEvery = 16
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for i := 0; ; i++ {
		n, _, err := track.Read(buf)
		if err != nil {
			return
		}
		if p.closed.Load() {
			continue // stopped (e.g. its privilege expired): drain until the publisher stops sending
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		p.up.update(pkt.SSRC, pkt.SequenceNumber, pkt.Timestamp, n, nanotime())
		if i%sampleEvery == 0 {
			t0 := time.Now()
			p.local.Forward(&pkt.Header, pkt.Payload)
			m.forwardLatency.Observe(time.Since(t0).Seconds())
		} else {
			p.local.Forward(&pkt.Header, pkt.Payload)
		}
		m.forwarded.Inc()
	}
}

func (p *publication) addDataSub(d *dataSub) {
	p.dataMu.Lock()
	defer p.dataMu.Unlock()
	var subs []*dataSub
	if cur := p.dataSubs.Load(); cur != nil {
		subs = append(subs, *cur...)
	}
	subs = append(subs, d)
	p.dataSubs.Store(&subs)
}

func (p *publication) removeDataSub(s *session) {
	p.dataMu.Lock()
	defer p.dataMu.Unlock()
	cur := p.dataSubs.Load()
	if cur == nil {
		return
	}
	subs := make([]*dataSub, 0, len(*cur))
	for _, d := range *cur {
		if d.s != s {
			subs = append(subs, d)
		}
	}
	p.dataSubs.Store(&subs)
}

// forwardData sends one data message of the publisher to every subscriber.
func (p *publication) forwardData(msg []byte) {
	if p.closed.Load() || len(msg) > protocol.MaxDataMessage {
		return
	}
	subs := p.dataSubs.Load()
	if subs == nil || len(*subs) == 0 {
		return
	}
	frame := protocol.AppendDataFrame(make([]byte, 0, 1+len(p.id)+len(msg)), p.id, msg)
	for _, d := range *subs {
		d.dc.Send(frame) // a subscriber whose channel is not open yet misses the message, as a late joiner would
	}
}
