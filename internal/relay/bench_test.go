package relay

import (
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkWriteRTP is the sender's cost per relayed packet without the network: WriteRTP (copy into the
// retransmission buffer, queue) and the media sender's work up to the socket (building and sealing the media
// packet), one after the other.
func BenchmarkWriteRTP(b *testing.B) {
	m, _ := newMetrics(nil)
	seal, _ := pair(b, true, 1)
	c := &conn{media: make(chan dgramJob, mediaQueue), pm: m.peer("bench/x"), keys: mediaKeys{seal: seal}}
	l := &Link{c: c, id: 4}
	o := &OutTrack{l: l, num: 1, media: true, ring: newSendRing(defaultRetransmitBuffer, 0)}
	buf := make([]byte, 0, maxMediaPacket)
	var nonce [mediaIVLen]byte
	pkt := rtpPacket(1, 1200)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		o.WriteRTP(pkt)
		j := <-c.media
		buf, _ = j.out.datagram(buf[:mediaHeaderLen], j.seq)
		if _, err := c.keys.seal.seal(buf, &nonce); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRelayPacket is the end-to-end cost of relaying one 1200-byte packet between two transports on
// loopback (both ends, sockets and encryption included), with at most 64 packets in flight.
func BenchmarkRelayPacket(b *testing.B) {
	n := newNetwork(b)
	a, z := n.transport(b, "eu", "e1"), n.transport(b, "eu", "e2")
	la := open(b, a, z.peer(), newRecorder())
	acc := z.next(b)
	rec := acc.rec
	var got atomic.Int64
	wake := make(chan struct{}, 1)
	rec.mu.Lock()
	rec.onRTP = func(string, []byte) {
		got.Add(1)
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	rec.mu.Unlock()
	out, err := la.Publish(TrackInfo{ID: "v", UID: "u", Kind: "video"})
	if err != nil {
		b.Fatal(err)
	}
	rec.waitEvents(b, "published v u video")
	// window stays under the 256 packets a connection's receive queue holds (and near quic-go's queue of 32
	// packets that are not QUIC: the bursts a busy machine lets pile up there are recovered).
	const window = 64
	pkt := rtpPacket(0, 1200)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	b.ResetTimer()
	sent := int64(0)
	// settled: what arrived, and what the receiver gave up on (it should be nothing on loopback).
	settled := func() int64 { return got.Load() + int64(acc.link.ctr.lost.Load()) }
	wait := func(until func() bool) {
		for deadline := time.Now().Add(10 * time.Second); !until(); {
			if time.Now().After(deadline) {
				b.Fatalf("stalled: %d sent, %d settled", sent, settled())
			}
			select {
			case <-wake:
			case <-time.After(5 * time.Millisecond): // losses settle without a delivery
			}
		}
	}
	for i := 0; i < b.N; i++ {
		wait(func() bool { return sent-settled() < window })
		pkt[2], pkt[3] = byte(i>>8), byte(i)
		out.WriteRTP(pkt)
		sent++
	}
	wait(func() bool { return settled() >= sent })
	b.StopTimer()
	s := la.Stats()
	b.ReportMetric(float64(s.Dropped)/float64(b.N), "drops/op")
	b.ReportMetric(float64(s.Retransmitted)/float64(b.N), "resent/op")
}
