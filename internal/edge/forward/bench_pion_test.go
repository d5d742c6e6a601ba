package forward

import (
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/internal/rtc"
)

// edgeAPI is a Pion API as the edge builds it (internal/rtc's codecs and interceptors) that gathers only
// loopback host candidates.
func edgeAPI(tb testing.TB) *webrtc.API {
	tb.Helper()
	m, ir, err := rtc.EdgeMediaEngine()
	if err != nil {
		tb.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// BenchmarkForwardPion: one upstream packet to N subscribers over real Pion connections on loopback, with the
// edge's interceptors: the rewrite, the interceptor chain, SRTP and one sendto per subscriber, everything the
// edge does per packet per subscriber on the forwarding goroutine. Subscribers receive and decrypt on other
// goroutines of this process (not counted in ns/op, but they share the machine). ns/pkt/sub is the wall time of
// one forwarded copy; cpu-ns/pkt/sub its CPU time (user + system) on the forwarding thread, which other work on a
// busy machine does not inflate.
func BenchmarkForwardPion(b *testing.B) {
	for _, subs := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("vp8-1100B/subs=%d", subs), func(b *testing.B) {
			tr, h, sent := pionFanout(b, subs)
			payload := make([]byte, 1100)
			copy(payload, deltaStart)
			b.SetBytes(int64(len(payload) * subs))
			b.ReportAllocs()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0 := threadCPU()
			for b.Loop() {
				h.SequenceNumber++
				h.Timestamp += 3000
				tr.Forward(h, payload)
			}
			b.ReportMetric(float64((threadCPU()-cpu0).Nanoseconds())/float64(b.N*subs), "cpu-ns/pkt/sub")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/pkt/sub")
			if st := tr.Stats(); st.WriteErrors > 0 || st.PacketsOut < sent+uint64(b.N*subs) {
				b.Fatalf("stats %+v after %d packets to %d subscribers", st, b.N, subs)
			}
		})
	}
}

// pionFanout binds a VP8 Track to subs edge-side connections, each negotiated with a subscriber connection that
// reads what it receives, and forwards keyframes until every subscriber has received one. It returns the Track,
// the header of the last packet forwarded and the number of packets written so far.
func pionFanout(b *testing.B, subs int) (*Track, *rtp.Header, uint64) {
	b.Helper()
	api := edgeAPI(b)
	tr, err := NewTrack("cam", "alice", rtc.VP8.RTPCodecCapability, WithKeyframeInterval(0), WithKeyframeRequest(func(uint32) {}))
	if err != nil {
		b.Fatal(err)
	}
	var started atomic.Int64
	for range subs {
		edge, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			b.Fatal(err)
		}
		sub, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = sub.Close(); _ = edge.Close() })
		sender, err := edge.AddTrack(tr)
		if err != nil {
			b.Fatal(err)
		}
		go tr.ReadRTCP(sender, nil)
		sub.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			started.Add(1)
			buf := make([]byte, 1500)
			for {
				if _, _, err := remote.Read(buf); err != nil {
					return
				}
			}
		})
		negotiate(b, edge, sub)
	}
	key := make([]byte, 1100)
	copy(key, keyframeStart)
	h := upstream(1, 0, 0)
	deadline := time.Now().Add(30 * time.Second)
	for started.Load() < int64(subs) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d subscribers received a packet", started.Load(), subs)
		}
		tr.Forward(h, key)
		h.SequenceNumber++
		h.Timestamp += 3000
		time.Sleep(5 * time.Millisecond) // the pace of a publisher while connections come up
	}
	return tr, h, tr.Stats().PacketsOut
}

// threadCPU returns the CPU time (user + system) of the calling OS thread (Linux's RUSAGE_THREAD).
func threadCPU() time.Duration {
	const rusageThread = 1
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
