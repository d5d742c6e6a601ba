package relay

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stoa-rtc/stoa/internal/clustertest"
)

// testMaterial is key material for tests of the packet layer alone.
var testMaterial = bytes.Repeat([]byte{7, 1, 9}, 2*(mediaKeyLen+mediaIVLen)/3+1)[:2*(mediaKeyLen+mediaIVLen)]

// pair returns the sealer of one end and the opener of the other; peerID is the receiver's id.
func pair(t testing.TB, dialler bool, peerID uint64) (*mediaSealer, *mediaOpener) {
	t.Helper()
	s, _, err := newMediaCiphers(testMaterial, dialler, peerID)
	if err != nil {
		t.Fatal(err)
	}
	_, o, err := newMediaCiphers(testMaterial, !dialler, 1)
	if err != nil {
		t.Fatal(err)
	}
	return s, o
}

// sealed returns a media packet of s carrying payload.
func sealed(t testing.TB, s *mediaSealer, payload []byte) []byte {
	t.Helper()
	var nonce [mediaIVLen]byte
	b := make([]byte, mediaHeaderLen, maxMediaPacket)
	pkt, err := s.seal(append(b, payload...), &nonce)
	if err != nil {
		t.Fatal(err)
	}
	return pkt
}

func testPayload(seq uint16) []byte {
	return append(appendDatagramHeader(nil, 4, 1, seq), rtpPacket(seq, 100)...)
}

// TestMediaSealOpen: a packet opens at the other end once, and not at all when any byte changed, when sent back
// to its sender, or under the other direction's key.
func TestMediaSealOpen(t *testing.T) {
	for _, dialler := range []bool{true, false} {
		s, o := pair(t, dialler, 42)
		pkt := sealed(t, s, testPayload(1))
		if h, _, err := parseMediaPacket(pkt); err != nil || h != (mediaHeader{connID: 42, counter: 0}) {
			t.Fatalf("header %+v, %v", h, err)
		}
		for i := range pkt {
			bad := bytes.Clone(pkt)
			bad[i] ^= 0x10
			if _, reason := o.open(bad); reason != rejectAuth && !(i == 0 && reason == rejectMalformed) {
				t.Errorf("byte %d changed: %q", i, reason)
			}
		}
		got, reason := o.open(bytes.Clone(pkt))
		if reason != "" || !bytes.Equal(got, testPayload(1)) {
			t.Fatalf("open: %q %x", reason, got)
		}
		if _, reason := o.open(bytes.Clone(pkt)); reason != rejectReplay {
			t.Errorf("a replayed packet: %q", reason)
		}
		// The sender's own opener (the other direction's key) refuses it: a reflected packet is no packet.
		_, own, _ := newMediaCiphers(testMaterial, dialler, 1)
		if _, reason := own.open(bytes.Clone(pkt)); reason != rejectAuth {
			t.Errorf("reflected packet: %q", reason)
		}
	}
}

// TestMediaCounterLimit: a sealer refuses to go past maxCounter, and stays refusing.
func TestMediaCounterLimit(t *testing.T) {
	s, o := pair(t, true, 1)
	s.next.Store(maxCounter - 1)
	pkt := sealed(t, s, testPayload(0))
	if _, reason := o.open(pkt); reason != "" {
		t.Fatalf("the last counter: %q", reason)
	}
	var nonce [mediaIVLen]byte
	for range 2 {
		b := append(make([]byte, mediaHeaderLen, maxMediaPacket), testPayload(1)...)
		if _, err := s.seal(b, &nonce); !errors.Is(err, errCounterExhausted) {
			t.Fatalf("past maxCounter: %v", err)
		}
	}
}

// TestReplayWindow: every counter is accepted once, in any order within the window, and never once older.
func TestReplayWindow(t *testing.T) {
	for _, start := range []uint64{0, 63, 64, replayBits - 1, 1 << 40, maxCounter - 3*replayBits} {
		var w replayWindow
		take := func(c uint64) bool {
			if !w.fresh(c) {
				return false
			}
			w.accept(c)
			return true
		}
		// Out of order: odd counters first, then the even ones.
		for c := start + 1; c < start+replayBits; c += 2 {
			if !take(c) {
				t.Fatalf("start %d: %d refused", start, c)
			}
		}
		for c := start; c < start+replayBits; c += 2 {
			if !take(c) {
				t.Fatalf("start %d: %d refused", start, c)
			}
		}
		for c := start; c < start+replayBits; c++ {
			if take(c) {
				t.Fatalf("start %d: %d accepted twice", start, c)
			}
		}
		// A jump: what is now older than the window is refused, what is in it and new is accepted.
		top := start + 3*replayBits
		if !take(top) || take(top-replayBits) || !take(top-replayBits+1) || !take(top-1) || take(top-1) {
			t.Fatalf("start %d: window after a jump", start)
		}
	}
}

func TestParseMediaPacket(t *testing.T) {
	s, _ := pair(t, true, 9)
	pkt := sealed(t, s, testPayload(3))
	for _, b := range [][]byte{
		nil,
		pkt[:minMediaPacket-1],
		append(bytes.Clone(pkt), make([]byte, maxMediaPacket)...)[:maxMediaPacket+1],
		append([]byte{0x02}, pkt[1:]...),
		append([]byte{0x41}, pkt[1:]...), // a QUIC short header: never handed over, refused anyway
	} {
		if _, _, err := parseMediaPacket(b); !errors.Is(err, errMediaPacket) {
			t.Errorf("%d bytes, first %x: %v", len(b), b[:min(len(b), 1)], err)
		}
	}
	if mediaVersion&0xc0 != 0 {
		t.Error("the version byte looks like QUIC")
	}
}

// FuzzParseMediaPacket: a packet that parses re-encodes to the same bytes; one that opens is the seal of what
// it carries, and opens once. Seeds: sealed packets of the fuzz key, and broken ones.
func FuzzParseMediaPacket(f *testing.F) {
	s, base := pair(f, true, 5)
	for i, size := range []int{minRTP, 40} { // small inputs: the fuzzer mutates (and minimizes) them faster
		payload := append(appendDatagramHeader(nil, uint64(4*i), 1, uint16(i)), rtpPacket(uint16(i), size)...)
		pkt := sealed(f, s, payload)
		f.Add(pkt)
		bad := bytes.Clone(pkt)
		bad[len(bad)-1] ^= 1
		f.Add(bad)
	}
	f.Add([]byte{mediaVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, rest, err := parseMediaPacket(b)
		if err != nil {
			if !errors.Is(err, errMediaPacket) {
				t.Fatalf("error without errMediaPacket: %v", err)
			}
			return
		}
		if re := append(appendMediaHeader(nil, h), rest...); !bytes.Equal(re, b) {
			t.Fatalf("%x re-encoded as %x", b, re)
		}
		o := *base // a fresh replay window
		payload, reason := o.open(bytes.Clone(b))
		if reason != "" {
			if reason != rejectAuth {
				t.Fatalf("a fresh opener refused a packet for %q", reason)
			}
			return
		}
		again, _ := pair(t, true, h.connID)
		again.next.Store(h.counter)
		if re := sealed(t, again, payload); !bytes.Equal(re, b) {
			t.Fatalf("opened %x, which seals as %x", b, re)
		}
		if _, reason := o.open(bytes.Clone(b)); reason != rejectReplay {
			t.Fatalf("opened twice: %q", reason)
		}
	})
}

// TestMediaRejected: on a real link, a genuine packet injected on the sender's socket is delivered, and copies
// of it replayed, tampered with, naming an unknown id, sent from another address or malformed are dropped and
// counted by reason.
func TestMediaRejected(t *testing.T) {
	t.Cleanup(clustertest.Goroutines(t))
	n := newNetwork(t)
	a, b := n.transport(t, "eu", "e1"), n.transport(t, "eu", "e2")
	la := open(t, a, b.peer(), newRecorder())
	rec := b.next(t).rec
	out, err := la.Publish(TrackInfo{ID: "v", UID: "u", Kind: "video"})
	if err != nil {
		t.Fatal(err)
	}
	rec.waitEvents(t, "published v u video")
	c := la.c
	bAddr := b.Addr().(*net.UDPAddr)
	payload := func(seq uint16) []byte {
		return append(appendDatagramHeader(nil, la.id, out.num, seq), rtpPacket(seq, 200)...)
	}
	fromA := func(pkt []byte) {
		if _, err := a.qt.WriteTo(pkt, bAddr); err != nil {
			t.Fatal(err)
		}
	}
	rejected := func(reason string) float64 { return testutil.ToFloat64(b.m.rejected.WithLabelValues(reason)) }
	expect := func(reason string, want float64) {
		t.Helper()
		eventually(t, 10*time.Second, func() error {
			if got := rejected(reason); got != want {
				return fmt.Errorf("rejected{reason=%q} = %v, want %v", reason, got, want)
			}
			return nil
		})
	}

	genuine := sealed(t, c.keys.seal, payload(0))
	fromA(genuine)
	eventually(t, 10*time.Second, func() error {
		if n := rec.rtpCount(); n != 1 {
			return fmt.Errorf("%d packets delivered", n)
		}
		return nil
	})

	fromA(genuine)
	expect(rejectReplay, 1)

	tampered := sealed(t, c.keys.seal, payload(1))
	tampered[len(tampered)-20] ^= 1
	fromA(tampered)
	expect(rejectAuth, 1)

	unknown := sealed(t, c.keys.seal, payload(2))
	unknown[1] ^= 0xff // another id: no connection has it
	fromA(unknown)
	expect(rejectUnknown, 1)

	other, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.WriteToUDP(sealed(t, c.keys.seal, payload(3)), bAddr); err != nil {
		t.Fatal(err)
	}
	expect(rejectAddress, 1)

	fromA([]byte{mediaVersion, 1, 2, 3})
	expect(rejectMalformed, 1)

	// The link still works (its sender's link sequence numbers start at 0 too: the first is taken for a
	// duplicate of the genuine packet), and none of the rejected packets reached the handler.
	for seq := uint16(10); seq < 15; seq++ {
		out.WriteRTP(rtpPacket(seq, 200))
	}
	eventually(t, 10*time.Second, func() error {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if got := rec.rtp["v"]; len(got) != 5 || got[0] != 1 || got[14] != 1 || got[1]+got[2]+got[3] != 0 {
			return fmt.Errorf("delivered %v", got)
		}
		return nil
	})
}
