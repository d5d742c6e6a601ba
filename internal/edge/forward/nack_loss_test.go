package forward

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/internal/rtc"
)

// lossyConn drops every nth RTP packet it reads (RFC 7983: first byte 128..191; RFC 5761: RTCP has a second byte
// of 192..223), leaving STUN, DTLS and RTCP alone: the subscriber's side of a lossy downlink.
type lossyConn struct {
	net.PacketConn
	n            int
	rtp, dropped atomic.Int64
}

func (c *lossyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || n < 2 || b[0] < 128 || b[0] > 191 || (b[1] >= 192 && b[1] <= 223) {
			return n, addr, err
		}
		if c.rtp.Add(1)%int64(c.n) == 0 {
			c.dropped.Add(1)
			continue
		}
		return n, addr, err
	}
}

// TestNACKRecoversSubscriberLoss: a subscriber leg that loses 2% of its RTP packets gets at least 99.5% of them
// in the end, through its NACKs and the edge's retransmissions (edge side: internal/rtc's edge interceptors;
// subscriber side: the client's).
func TestNACKRecoversSubscriberLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two PeerConnections")
	}
	const (
		timeout = 20 * time.Second
		packets = 1000
	)
	edge, err := edgeAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lossy := &lossyConn{PacketConn: udp, n: 50}
	m, ir, err := rtc.MediaEngine()
	if err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetICEUDPMux(webrtc.NewICEUDPMux(rtc.Logs{Log: slog.New(slog.DiscardHandler)}.NewLogger("udpmux"), lossy))
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	sub, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)).
		NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close(); _ = edge.Close(); _ = udp.Close() })

	track, err := NewTrack("cam", "alice", rtc.VP8.RTPCodecCapability, WithKeyframeInterval(0), WithKeyframeRequest(func(uint32) {}))
	if err != nil {
		t.Fatal(err)
	}
	sender, err := edge.AddTrack(track)
	if err != nil {
		t.Fatal(err)
	}
	go track.ReadRTCP(sender, nil)

	// seen holds the packets received, by distance from the first, the binding's start.
	var (
		mu    sync.Mutex
		seen  = map[uint16]bool{}
		first = make(chan struct{})
	)
	sub.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		var start uint16
		for i := 0; ; i++ {
			p, _, err := remote.ReadRTP()
			if err != nil {
				return
			}
			if i == 0 {
				start = p.SequenceNumber
				close(first)
			}
			mu.Lock()
			seen[p.SequenceNumber-start] = true
			mu.Unlock()
		}
	})
	negotiate(t, edge, sub)

	// Keyframes until the binding starts, then a stream at 200 packets/s, a busy video stream: a retransmission
	// must arrive within 64 packets of the newest, the SRTP replay window of Pion's receivers.
	key := make([]byte, 1000)
	copy(key, keyframeStart)
	delta := make([]byte, 1000)
	copy(delta, deltaStart)
	h := upstream(0x5eed, 65000, 0)
	send := func(payload []byte) {
		track.Forward(h, payload)
		h.SequenceNumber++
		h.Timestamp += 3000
	}
	deadline := time.Now().Add(timeout)
	for started := false; !started; {
		select {
		case <-first:
			started = true
		case <-time.After(2 * time.Millisecond): // a publisher's pace
			if time.Now().After(deadline) {
				t.Fatal("the subscriber received nothing")
			}
			send(key)
		}
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for range packets {
		<-tick.C
		send(delta)
	}
	// Count the packets sent so far; the stream goes on meanwhile, so that a loss among the last ones shows too.
	want := int(track.Stats().PacketsOut)
	got := 0
	for time.Now().Before(deadline) {
		<-tick.C
		send(delta)
		got = 0
		mu.Lock()
		for i := range want {
			if seen[uint16(i)] {
				got++
			}
		}
		mu.Unlock()
		if got == want {
			break
		}
	}
	t.Logf("sent %d, dropped %d of %d RTP packets read, received %d distinct", want, lossy.dropped.Load(), lossy.rtp.Load(), got)
	if lossy.dropped.Load() < packets/60 {
		t.Fatalf("only %d packets dropped: the test lost nothing", lossy.dropped.Load())
	}
	if float64(got) < 0.995*float64(want) {
		t.Errorf("received %d of %d packets (%.2f%%), want ≥ 99.5%%", got, want, 100*float64(got)/float64(want))
	}
}
