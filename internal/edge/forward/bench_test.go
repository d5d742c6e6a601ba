package forward

import (
	"fmt"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

var benchCases = []struct {
	name  string
	codec webrtc.RTPCodecCapability
	size  int
}{
	{"vp8-1100B", vp8Cap, 1100},
	{"opus-120B", opusCap, 120},
}

// BenchmarkForward: one publisher packet to N subscribers with writers that
// discard. One op is one upstream packet; ns/pkt/sub is the cost of one
// forwarded copy, and pkts/s the forwarded copies per second on one core.
func BenchmarkForward(b *testing.B) {
	for _, bc := range benchCases {
		for _, subs := range []int{1, 10, 50} {
			b.Run(fmt.Sprintf("%s/subs=%d", bc.name, subs), func(b *testing.B) {
				tr, err := NewTrack("t", "s", bc.codec, WithKeyframeRequest(func(uint32) {}))
				if err != nil {
					b.Fatal(err)
				}
				for i := range subs {
					ctx := &fakeContext{id: fmt.Sprint(i), ssrc: webrtc.SSRC(i + 1), codecs: subscriberCodecs, writer: &discardWriter{}}
					if _, err := tr.Bind(ctx); err != nil {
						b.Fatal(err)
					}
				}
				payload := make([]byte, bc.size)
				copy(payload, keyframeStart)
				h := upstream(1, 0, 0)
				tr.Forward(h, payload) // every binding starts here
				copy(payload, deltaStart)

				b.SetBytes(int64(bc.size * subs))
				b.ReportAllocs()
				for b.Loop() {
					h.SequenceNumber++
					h.Timestamp += 3000
					tr.Forward(h, payload)
				}
				copies := float64(b.N * subs)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/copies, "ns/pkt/sub")
				b.ReportMetric(copies/b.Elapsed().Seconds(), "pkts/s")
				if got := tr.Stats().PacketsOut; got != uint64((b.N+1)*subs) {
					b.Fatalf("forwarded %d, want %d", got, (b.N+1)*subs)
				}
			})
		}
	}
}

// BenchmarkPionStaticRTP is the baseline: Pion's TrackLocalStaticRTP, which
// rewrites only SSRC and payload type, under the same load.
func BenchmarkPionStaticRTP(b *testing.B) {
	for _, subs := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("vp8-1100B/subs=%d", subs), func(b *testing.B) {
			tr, err := webrtc.NewTrackLocalStaticRTP(vp8Cap, "t", "s")
			if err != nil {
				b.Fatal(err)
			}
			for i := range subs {
				ctx := &fakeContext{id: fmt.Sprint(i), ssrc: webrtc.SSRC(i + 1), codecs: subscriberCodecs, writer: &discardWriter{}}
				if _, err := tr.Bind(ctx); err != nil {
					b.Fatal(err)
				}
			}
			p := &rtp.Packet{Header: *upstream(1, 0, 0), Payload: make([]byte, 1100)}
			b.SetBytes(int64(1100 * subs))
			b.ReportAllocs()
			for b.Loop() {
				p.SequenceNumber++
				p.Timestamp += 3000
				if err := tr.WriteRTP(p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/pkt/sub")
		})
	}
}

// BenchmarkVP8Keyframe: the per-packet keyframe check of video tracks.
func BenchmarkVP8Keyframe(b *testing.B) {
	p := buildVP8(true, 0, 300, 1, 0, -1, []byte{0x10, 1, 2, 3})
	for b.Loop() {
		if !isVP8Keyframe(p) {
			b.Fatal("not a keyframe")
		}
	}
}
