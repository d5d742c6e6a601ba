package sdk

import (
	"maps"
	"slices"

	"github.com/stoa-rtc/stoa/internal/protocol"
	"github.com/stoa-rtc/stoa/sframe/media"
)

// The client's view of the channel (participants, tracks, privileges) changes only from the live session's
// readLoop, one message at a time, so the events it emits are in the edge's order.

// applyJoined takes the channel as a joined message describes it. On a rejoin it emits the differences with what
// the client knew before (who left and which tracks went while it was away, and what is new); on the first join
// everything is new.
func (c *Client) applyJoined(j *protocol.Joined) {
	var (
		evs   []Event
		ended []string
	)
	c.mu.Lock()
	c.sessionID = j.Session
	c.privileges = privilegesFrom(j.Privileges)
	uids := map[string]bool{}
	tracks := map[string]TrackInfo{}
	for _, p := range j.Participants {
		if p.UID == c.cfg.UID {
			continue // our own previous session, on its way out
		}
		uids[p.UID] = true
		for _, t := range p.Tracks {
			if t.UID == "" {
				t.UID = p.UID
			}
			tracks[t.ID] = trackFrom(t)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(c.known)) {
		if _, ok := tracks[id]; !ok {
			evs = append(evs, TrackUnpublished{Track: c.known[id]})
			ended = append(ended, id)
			delete(c.remoteStats, id)
		}
	}
	for _, uid := range slices.Sorted(maps.Keys(c.participants)) {
		if !uids[uid] {
			evs = append(evs, ParticipantLeft{UID: uid})
		}
	}
	for _, uid := range slices.Sorted(maps.Keys(uids)) {
		if !c.participants[uid] {
			p := Participant{UID: uid}
			for _, id := range slices.Sorted(maps.Keys(tracks)) {
				if tracks[id].UID == uid {
					p.Tracks = append(p.Tracks, tracks[id])
				}
			}
			evs = append(evs, ParticipantJoined{Participant: p})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(tracks)) {
		if _, ok := c.known[id]; !ok {
			evs = append(evs, TrackPublished{Track: tracks[id]})
		}
	}
	c.participants, c.known = uids, tracks
	c.mu.Unlock()
	for _, id := range ended {
		c.endRemote(id)
	}
	for _, e := range evs {
		c.emit(e)
	}
}

// handleEvent applies an event from the edge and delivers it. Events about the client's own uid (its previous
// session after a reconnection) are ignored.
func (c *Client) handleEvent(m *protocol.Message) {
	self := c.cfg.UID
	switch m.Type {
	case protocol.TypeParticipantJoined:
		p := m.ParticipantJoined
		if p.UID == self {
			return
		}
		out := Participant{UID: p.UID}
		c.mu.Lock()
		c.participants[p.UID] = true
		for _, t := range p.Tracks {
			if t.UID == "" {
				t.UID = p.UID
			}
			info := trackFrom(t)
			c.known[info.ID] = info
			out.Tracks = append(out.Tracks, info)
		}
		c.mu.Unlock()
		c.emit(ParticipantJoined{Participant: out})
		for _, t := range out.Tracks {
			c.emit(TrackPublished{Track: t})
		}
	case protocol.TypeParticipantLeft:
		l := m.ParticipantLeft
		if l.UID == self {
			return
		}
		var gone []TrackInfo
		c.mu.Lock()
		delete(c.participants, l.UID)
		for id, t := range c.known {
			if t.UID == l.UID {
				gone = append(gone, t)
				delete(c.known, id)
				delete(c.remoteStats, id)
			}
		}
		c.mu.Unlock()
		slices.SortFunc(gone, func(a, b TrackInfo) int { return cmpString(a.ID, b.ID) })
		for _, t := range gone {
			c.endRemote(t.ID)
			c.emit(TrackUnpublished{Track: t})
		}
		c.emit(ParticipantLeft{UID: l.UID, Reason: Code(l.Reason)})
	case protocol.TypeTrackPublished:
		info := trackFrom(*m.TrackPublished)
		if info.UID == self {
			return
		}
		c.mu.Lock()
		c.known[info.ID] = info
		c.participants[info.UID] = true
		c.mu.Unlock()
		c.emit(TrackPublished{Track: info})
	case protocol.TypeTrackUnpublished:
		id := m.TrackUnpublished.TrackID
		c.mu.Lock()
		info, ok := c.known[id]
		delete(c.known, id)
		delete(c.remoteStats, id)
		delete(c.subscribed, id)
		c.mu.Unlock()
		if !ok {
			return // one of ours, or never known
		}
		c.endRemote(id)
		c.emit(TrackUnpublished{Track: info})
	case protocol.TypePrivilegeWillExpire:
		c.emit(PrivilegeWillExpire{Privilege: privilegeFrom(*m.PrivilegeWillExpire)})
	case protocol.TypePrivilegeExpired:
		p := privilegeFrom(*m.PrivilegeExpired)
		// The edge has stopped the publications that needed the privilege; they are not published again.
		kind := map[uint16]Kind{PrivilegePublishAudio: KindAudio, PrivilegePublishVideo: KindVideo,
			PrivilegePublishData: KindData}[p.ID]
		c.mu.Lock()
		var stopped []publication
		for _, l := range c.local {
			if kind != "" && l.kind() == kind {
				stopped = append(stopped, l)
			}
		}
		c.mu.Unlock()
		for _, l := range stopped {
			c.removeLocal(l)
			l.close()
		}
		c.emit(PrivilegeExpired{Privilege: p})
	default:
		c.log.Debug("unexpected message from the edge; ignored", "type", m.Type)
	}
}

// addRemoteTrack registers a media track that started arriving on the subscriber connection.
func (c *Client) addRemoteTrack(info TrackInfo) *RemoteTrack {
	c.mu.Lock()
	tc := c.remoteStats[info.ID]
	if tc == nil {
		tc = &trackCounters{total: &c.total}
		c.remoteStats[info.ID] = tc
	}
	old := c.remote[info.ID]
	rt := newRemoteTrack(info, tc)
	c.remote[info.ID] = rt
	c.mu.Unlock()
	if old != nil {
		old.end()
	}
	return rt
}

// endRemote ends the remote track of id, if one is being received.
func (c *Client) endRemote(id string) {
	c.mu.Lock()
	rt := c.remote[id]
	delete(c.remote, id)
	c.mu.Unlock()
	if rt != nil {
		rt.end()
	}
}

// openFrame decrypts a received frame and queues it on its track. Failures are counted, never fatal.
func (c *Client) openFrame(rt *RemoteTrack, wire []byte, ts uint32) {
	rt.counters.received()
	codec := rt.info.Kind.codec()
	out, err := c.recv.Open(nil, codec, wire)
	if err != nil {
		rt.counters.decryptFail()
		return
	}
	rt.counters.decryptOK()
	key := rt.info.Kind == KindAudio || (len(out) > 0 && out[0]&0x01 == 0)
	rt.push(Frame{Data: out, TrackID: rt.info.ID, UID: rt.info.UID, Kind: rt.info.Kind, Keyframe: key, Timestamp: ts})
}

// onData decrypts a message from the subscriber connection's data channel and delivers it.
func (c *Client) onData(b []byte) {
	id, payload, err := protocol.ParseDataFrame(b)
	if err != nil {
		c.total.received.Add(1)
		c.total.failed.Add(1)
		return
	}
	c.mu.Lock()
	info := c.known[id]
	tc := c.remoteStats[id]
	if tc == nil {
		tc = &trackCounters{total: &c.total}
		c.remoteStats[id] = tc
	}
	c.mu.Unlock()
	tc.received()
	out, err := c.recv.Open(nil, media.Data, payload)
	if err != nil {
		tc.decryptFail()
		return
	}
	tc.decryptOK()
	c.deliverData(DataMessage{TrackID: id, UID: info.UID, Data: out})
}
