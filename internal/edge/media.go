package edge

import (
	"errors"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/internal/edge/forward"
	"github.com/stoa-rtc/stoa/internal/protocol"
	"github.com/stoa-rtc/stoa/internal/rtc"
)

// The two peer connections of a session: the subscriber connection, which the edge offers and renegotiates as
// subscriptions change, and the publisher connection, which the client offers.

func (s *session) newSubscriberPC() error {
	pc, err := s.srv.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	dc, err := pc.CreateDataChannel(protocol.DataChannelLabel, nil)
	if err != nil {
		pc.Close()
		return err
	}
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			// Video subscribers start at a keyframe: ask for one as soon as media can flow.
			s.post(func() {
				s.connected()
				for id := range s.subscribed {
					if p := s.room.track(id); p != nil && p.local != nil {
						p.local.RequestKeyframe()
					}
				}
			})
		case webrtc.PeerConnectionStateFailed:
			s.post(func() { s.sendError(0, protocol.CodeNegotiation, "subscriber connection failed") })
		}
	})
	s.subPC, s.subData = pc, dc
	return nil
}

// negotiateSubscriber sends a new subscriber offer, or notes that one is due once the current one is answered.
func (s *session) negotiateSubscriber() {
	if s.subBusy {
		s.subAgain = true
		return
	}
	sdp, err := localDescription(s.subPC, true)
	if err != nil {
		s.log.Error("subscriber offer", "err", err)
		s.sendError(0, protocol.CodeNegotiation, "could not create the subscriber offer")
		return
	}
	s.subBusy = true
	s.send(&protocol.Message{Type: protocol.TypeOffer, Offer: &protocol.SDP{SDP: sdp}})
}

func (s *session) handleSubscriberAnswer(m *protocol.Message) {
	if !s.subBusy {
		s.sendError(m.ID, protocol.CodeNegotiation, "no subscriber offer is waiting for an answer")
		return
	}
	err := s.subPC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.Answer.SDP})
	s.subBusy = false
	if err != nil {
		s.sendError(m.ID, protocol.CodeNegotiation, "the answer could not be applied")
		return
	}
	if s.subAgain {
		s.subAgain = false
		s.negotiateSubscriber()
	}
}

// localDescription creates an offer or answer, applies it and waits for ICE gathering, so that the SDP carries
// its candidates.
func localDescription(pc *webrtc.PeerConnection, offer bool) (string, error) {
	var desc webrtc.SessionDescription
	var err error
	if offer {
		desc, err = pc.CreateOffer(nil)
	} else {
		desc, err = pc.CreateAnswer(nil)
	}
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(desc); err != nil {
		return "", err
	}
	select {
	case <-gathered:
	case <-time.After(gatherTimeout):
		return "", errors.New("ICE gathering timed out")
	}
	return pc.LocalDescription().SDP, nil
}

func (s *session) handlePublisherOffer(m *protocol.Message) {
	if s.pubPC == nil {
		pc, err := s.srv.api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			s.sendError(m.ID, protocol.CodeInternal, "could not create the publisher connection")
			return
		}
		pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { s.post(func() { s.onTrack(t) }) })
		s.wg.Add(1)
		go s.sendKeyframeRequests()
		pc.OnDataChannel(func(dc *webrtc.DataChannel) { s.post(func() { s.onDataChannel(dc) }) })
		s.pubMu.Lock()
		s.pubPC = pc
		s.pubMu.Unlock()
	}
	if err := s.pubPC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.Offer.SDP}); err != nil {
		s.sendError(m.ID, protocol.CodeNegotiation, "the offer could not be applied")
		return
	}
	sdp, err := localDescription(s.pubPC, false)
	if err != nil {
		s.sendError(m.ID, protocol.CodeNegotiation, "could not create the answer")
		return
	}
	s.send(&protocol.Message{Type: protocol.TypeAnswer, ID: m.ID, Answer: &protocol.SDP{SDP: sdp}})
}

// claim turns a pending publication into a live one if id was announced with kind.
func (s *session) claim(id string, kind protocol.Kind) *publication {
	if k, ok := s.pending[id]; !ok || k != kind || s.published[id] != nil {
		return nil
	}
	delete(s.pending, id)
	p := &publication{id: id, kind: kind, uid: s.uid, owner: s}
	s.published[id] = p
	return p
}

func (s *session) onTrack(t *webrtc.TrackRemote) {
	kind := protocol.KindAudio
	if t.Kind() == webrtc.RTPCodecTypeVideo {
		kind = protocol.KindVideo
	}
	p := s.claim(t.ID(), kind)
	if p == nil {
		// Media nobody announced (or that the token does not allow): read and drop it, so the connection's
		// RTCP keeps flowing, but forward nothing.
		s.log.Warn("unannounced track dropped", "kind", kind)
		s.goDrain(t)
		return
	}
	// The edge negotiates one codec per kind, so the codec is known before the first packet arrives.
	codec := rtc.Codec(kind == protocol.KindVideo).RTPCodecCapability
	local, err := forward.NewTrack(p.id, s.uid, codec, forward.WithKeyframeRequest(s.requestKeyframe))
	if err != nil {
		s.sendError(0, protocol.CodeInternal, "could not forward the track")
		return
	}
	p.local = local
	p.up = newRTPStats(codec.ClockRate, nanotime())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		p.forwardRTP(t, s.srv.metrics)
	}()
	s.announce(p)
}

func (s *session) goDrain(t *webrtc.TrackRemote) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := t.Read(buf); err != nil {
				return
			}
		}
	}()
}

func (s *session) onDataChannel(dc *webrtc.DataChannel) {
	p := s.claim(dc.Label(), protocol.KindData)
	if p == nil {
		dc.Close()
		return
	}
	dc.OnMessage(func(msg webrtc.DataChannelMessage) { p.forwardData(msg.Data) })
	s.announce(p)
}

func (s *session) announce(p *publication) {
	s.room.publish(p)
	s.srv.emit(Event{Type: EventPublish, AppID: s.room.key.appID, Channel: s.room.key.channel, UID: s.uid,
		Session: s.id, TrackID: p.id, Kind: string(p.kind)})
}

// subscribe adds p to the subscriber connection and renegotiates.
func (s *session) subscribe(p *publication) {
	if s.addSubscription(p) {
		s.negotiateSubscriber()
	}
}

// addSubscription adds p without renegotiating; it reports whether anything changed.
func (s *session) addSubscription(p *publication) bool {
	if _, ok := s.subscribed[p.id]; ok || p.owner == s || p.closed.Load() {
		return false
	}
	if p.kind == protocol.KindData {
		p.addDataSub(&dataSub{s: s, dc: s.subData})
		s.subscribed[p.id] = nil
		return false // the data channel exists already: nothing to negotiate
	}
	sender, err := s.subPC.AddTrack(p.local)
	if err != nil {
		s.log.Error("subscribe", "err", err)
		return false
	}
	s.subscribed[p.id] = sender
	var onReport func(forward.ReceptionReport)
	if enc := sender.GetParameters().Encodings; len(enc) > 0 {
		d := &downStat{kind: p.kind, stats: &rrStats{clockRate: float64(p.local.Codec().ClockRate), ssrc: uint32(enc[0].SSRC)}}
		s.downStats[p.id] = d
		onReport = d.stats.report
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		// Reading the subscriber's RTCP answers its NACKs from the track's history; its picture loss reports become
		// keyframe requests to the publisher, its receiver reports the downlink's quality. Returns when the
		// sender stops.
		p.local.ReadRTCP(sender, onReport)
	}()
	p.local.RequestKeyframe()
	return true
}

func (s *session) unsubscribe(p *publication) {
	sender, ok := s.subscribed[p.id]
	if !ok {
		return
	}
	delete(s.subscribed, p.id)
	delete(s.downStats, p.id)
	if sender == nil {
		p.removeDataSub(s)
		return
	}
	if err := s.subPC.RemoveTrack(sender); err == nil {
		s.negotiateSubscriber()
	}
}
