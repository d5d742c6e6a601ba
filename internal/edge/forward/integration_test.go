package forward

import (
	"bytes"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// loopbackAPI is a Pion API with the default codecs and interceptors (NACK
// responder, reports, TWCC) that gathers only loopback host candidates.
func loopbackAPI(t *testing.T) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// negotiate runs offer/answer between two connections with complete
// candidate gathering, as the edge's subscriber offers do.
func negotiate(t testing.TB, offerer, answerer *webrtc.PeerConnection) {
	t.Helper()
	offer, err := offerer.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(offerer)
	if err := offerer.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if err := answerer.SetRemoteDescription(*offerer.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := answerer.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered = webrtc.GatheringCompletePromise(answerer)
	if err := answerer.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if err := offerer.SetRemoteDescription(*answerer.LocalDescription()); err != nil {
		t.Fatal(err)
	}
}

// vp8Payload is what the fake publisher sends: a VP8 descriptor, a clear
// VP8 payload header byte, the packet's index, and bytes standing in for
// SFrame ciphertext.
func vp8Payload(idx uint16, keyframe bool) []byte {
	p := []byte{0x10, 0x31, 0, 0}
	if keyframe {
		p[1] = 0x10
	}
	binary.BigEndian.PutUint16(p[2:], idx)
	for i := range 200 {
		p = append(p, byte(int(idx)*7+i))
	}
	return p
}

// TestIntegrationLoopback forwards a fake publisher's VP8 stream through a
// Track added to a real Pion PeerConnection, to a subscriber connection on
// loopback. The subscriber must receive the packets with the binding's SSRC
// and payload type, payloads unchanged, starting at a keyframe the Track
// asked for; its PLI must reach the publisher side; closing the connections
// must end the RTCP reader.
func TestIntegrationLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two PeerConnections")
	}
	const timeout = 10 * time.Second
	api := loopbackAPI(t)
	edge, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close(); _ = edge.Close() })

	// Keyframe requests set keyframePending, which the fake publisher
	// honours on its next packet, and are signalled on requested.
	var keyframePending atomic.Bool
	requested := make(chan uint32, 64)
	track, err := NewTrack("cam", "alice", vp8Cap, WithKeyframeInterval(0), WithKeyframeRequest(func(ssrc uint32) {
		keyframePending.Store(true)
		select {
		case requested <- ssrc:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	sender, err := edge.AddTrack(track)
	if err != nil {
		t.Fatal(err)
	}
	rtcpDone := make(chan error, 1)
	go func() { rtcpDone <- track.ReadRTCP(sender, nil) }()

	received := make(chan *rtp.Packet, 1024)
	readerDone := make(chan struct{})
	sub.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		defer close(readerDone)
		for {
			p, _, err := remote.ReadRTP()
			if err != nil {
				return
			}
			select {
			case received <- p:
			default:
				t.Error("receive buffer full")
				return
			}
		}
	})
	// The fake publisher: a packet every 5 ms, deltas unless a keyframe
	// was asked for, upstream sequence numbers wrapping soon. It starts
	// before negotiation, so packets meet the binding before DTLS-SRTP is
	// up, when Pion swallows them, as a busy publisher's would.
	const upstreamSSRC = 0x5eed
	var (
		sentMu sync.Mutex
		sent   = map[uint16][]byte{}
	)
	stop := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		h := rtp.Header{Version: 2, PayloadType: 96, SSRC: upstreamSSRC, SequenceNumber: 65500, Timestamp: 1<<32 - 10000}
		for idx := uint16(0); ; idx++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			p := vp8Payload(idx, keyframePending.Swap(false))
			sentMu.Lock()
			sent[idx] = p
			sentMu.Unlock()
			// Upstream extensions must not leak downstream.
			hdr := h.Clone()
			if err := hdr.SetExtension(5, []byte{0xaa}); err != nil {
				t.Error(err)
				return
			}
			if err := track.WriteRTP(&rtp.Packet{Header: hdr, Payload: p}); err != nil {
				t.Error(err)
				return
			}
			h.SequenceNumber++
			h.Timestamp += 3000
		}
	}()
	defer func() { close(stop); <-pubDone }()
	negotiate(t, edge, sub)

	select {
	case ssrc := <-requested:
		if ssrc != upstreamSSRC {
			t.Errorf("keyframe requested for SSRC %#x, want %#x", ssrc, upstreamSSRC)
		}
	case <-time.After(timeout):
		t.Fatal("no keyframe request while the subscriber waited")
	}

	wantSSRC := uint32(sender.GetParameters().Encodings[0].SSRC)
	var last *rtp.Packet
	check := func(p *rtp.Packet) (keyframe bool) {
		t.Helper()
		if p.SSRC != wantSSRC || p.PayloadType != 96 {
			t.Fatalf("got SSRC %#x PT %d, want the binding's %#x, 96", p.SSRC, p.PayloadType, wantSSRC)
		}
		if len(p.Payload) < 4 {
			t.Fatalf("short payload % x", p.Payload)
		}
		idx := binary.BigEndian.Uint16(p.Payload[2:])
		sentMu.Lock()
		want := sent[idx]
		sentMu.Unlock()
		if !bytes.Equal(p.Payload, want) {
			t.Fatalf("packet %d payload changed:\n got % x\nwant % x", idx, p.Payload, want)
		}
		for _, id := range p.GetExtensionIDs() {
			if id == 5 {
				t.Fatal("upstream header extension forwarded")
			}
		}
		if last != nil && (int16(p.SequenceNumber-last.SequenceNumber) <= 0 || int32(p.Timestamp-last.Timestamp) <= 0) {
			t.Fatalf("not increasing: %d/%d after %d/%d", p.SequenceNumber, p.Timestamp, last.SequenceNumber, last.Timestamp)
		}
		last = p
		return isVP8Keyframe(p.Payload)
	}
	next := func() *rtp.Packet {
		t.Helper()
		select {
		case p := <-received:
			return p
		case <-time.After(timeout):
			t.Fatal("no packet forwarded")
			return nil
		}
	}

	if !check(next()) {
		t.Fatal("first packet forwarded to the subscriber is not a keyframe")
	}
	for range 20 {
		check(next())
	}

	// A subscriber's PLI reaches the publisher side through ReadRTCP,
	// and the keyframe it causes arrives.
	for len(requested) > 0 {
		<-requested
	}
	if err := sub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: wantSSRC}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-requested:
	case <-time.After(timeout):
		t.Fatal("subscriber PLI did not become a keyframe request")
	}
	for !check(next()) {
	}

	t.Logf("track stats: %+v", track.Stats())

	// Closing the connections unbinds the Track and ends the RTCP reader.
	if err := edge.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-rtcpDone:
		if err != nil {
			t.Errorf("ReadRTCP = %v, want nil after Close", err)
		}
	case <-time.After(timeout):
		t.Fatal("ReadRTCP still running after the PeerConnection closed")
	}
	if n := track.Stats().Bindings; n != 0 {
		t.Errorf("%d bindings after Close", n)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-readerDone:
	case <-time.After(timeout):
		t.Fatal("subscriber reader still running")
	}
}
