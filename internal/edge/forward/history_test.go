package forward

import (
	"bytes"
	"slices"
	"testing"

	"github.com/pion/rtcp"
)

type nackedSeq struct {
	ssrc uint32
	seq  uint16
}

func collectNacks(b []byte) []nackedSeq {
	var got []nackedSeq
	nacks(b, func(ssrc uint32, seq uint16) { got = append(got, nackedSeq{ssrc, seq}) })
	return got
}

func TestNacks(t *testing.T) {
	rr := &rtcp.ReceiverReport{SSRC: 1}
	n1 := &rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: 7, Nacks: []rtcp.NackPair{{PacketID: 65534, LostPackets: 0b101}}}
	n2 := &rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: 8, Nacks: []rtcp.NackPair{{PacketID: 10}, {PacketID: 40, LostPackets: 1 << 15}}}
	pli := &rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 7}
	got := collectNacks(marshalRTCP(t, rr, n1, pli, n2))
	want := []nackedSeq{{7, 65534}, {7, 65535}, {7, 1}, {8, 10}, {8, 40}, {8, 56}} // across the wrap
	if !slices.Equal(got, want) {
		t.Errorf("nacks = %v, want %v", got, want)
	}
	b := marshalRTCP(t, n1, n2)
	for i := range b {
		collectNacks(b[:i]) // truncated: no panic
	}
	if n := testing.AllocsPerRun(100, func() { nacks(b, func(uint32, uint16) {}) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// FuzzNacks: whenever pion/rtcp parses the input, the walk finds exactly the sequence numbers of its generic
// NACKs, in order.
func FuzzNacks(f *testing.F) {
	f.Add(marshalRTCP(f, &rtcp.TransportLayerNack{MediaSSRC: 2, Nacks: []rtcp.NackPair{{PacketID: 5, LostPackets: 3}}}))
	f.Add(marshalRTCP(f, &rtcp.ReceiverReport{SSRC: 1}, &rtcp.TransportLayerNack{MediaSSRC: 2}))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := collectNacks(b)
		pkts, err := rtcp.Unmarshal(b)
		if err != nil {
			return
		}
		var want []nackedSeq
		for _, p := range pkts {
			if n, ok := p.(*rtcp.TransportLayerNack); ok {
				for _, pair := range n.Nacks {
					for _, seq := range pair.PacketList() {
						want = append(want, nackedSeq{n.MediaSSRC, seq})
					}
				}
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("nacks(% x) = %v, pion/rtcp says %v", b, got, want)
		}
	})
}

// TestRewriterUpstream maps downstream numbers back, at every wrap of both spaces.
func TestRewriterUpstream(t *testing.T) {
	for _, start := range []uint16{0, 1, 65534, 65535, 32768} {
		for _, out0 := range []uint16{0, 65535, 65000} {
			var r rewriter
			r.anchor(start, 0, 1, 0, 90000, 3000, out0, 0)
			for i := range uint16(600) {
				if _, _, ok := r.rewrite(start+i, uint32(i)*3000); !ok {
					t.Fatal("rewrite refused")
				}
			}
			for back := range uint16(historySize) {
				out := out0 + 599 - back
				up, ok := r.upstream(out)
				if want := start + 599 - back; back <= 599 && (!ok || up != want) {
					t.Fatalf("start %d out0 %d: upstream(%d) = %d, %v; want %d", start, out0, out, up, ok, want)
				}
			}
			for _, out := range []uint16{out0 + 600, out0 + 599 - historySize, out0 - 1} {
				if up, ok := r.upstream(out); ok {
					t.Errorf("start %d out0 %d: upstream(%d) = %d, want none", start, out0, out, up)
				}
			}
		}
	}
	var r rewriter
	if _, ok := r.upstream(0); ok {
		t.Error("an unanchored rewriter maps back")
	}
}

// TestResend: a NACKed packet goes out again with the header it had, from the history; packets the binding did
// not send, packets of an earlier source and unknown SSRCs give nothing.
func TestResend(t *testing.T) {
	tr, _ := testTrack(t, vp8Cap, 65530, 1000)
	w := bind(t, tr, "a", 5)
	h := upstream(9, 100, 50)
	h.Marker = true
	h.CSRC = []uint32{42}
	key := append(slices.Clone(keyframeStart), 1, 2, 3)
	tr.Forward(h, key)
	for i := range 20 {
		h.SequenceNumber++
		h.Timestamp += 3000
		h.Marker = false
		tr.Forward(h, append(slices.Clone(deltaStart), byte(i)))
	}
	sentPkts := w.packets()
	var r resend
	for _, i := range []int{0, 7, 20} {
		orig := sentPkts[i]
		if !tr.resend(5, orig.hdr.SequenceNumber, &r) {
			t.Fatalf("packet %d (seq %d) not resent", i, orig.hdr.SequenceNumber)
		}
		again := w.packets()[len(w.packets())-1]
		if !bytes.Equal(again.payload, orig.payload) || again.hdr.SequenceNumber != orig.hdr.SequenceNumber ||
			again.hdr.Timestamp != orig.hdr.Timestamp || again.hdr.Marker != orig.hdr.Marker || again.hdr.SSRC != 5 ||
			again.hdr.PayloadType != orig.hdr.PayloadType || !slices.Equal(again.hdr.CSRC, orig.hdr.CSRC) {
			t.Errorf("resent %+v %x, first sent %+v %x", again.hdr, again.payload, orig.hdr, orig.payload)
		}
	}
	before := len(w.packets())
	for _, seq := range []uint16{65529, 15} { // before the binding's start (65530); not sent yet (65530+21)
		if tr.resend(5, seq, &r) {
			t.Errorf("seq %d resent", seq)
		}
	}
	if tr.resend(6, sentPkts[3].hdr.SequenceNumber, &r) {
		t.Error("resent for an SSRC that is not bound")
	}
	// Once the binding has re-anchored on a new source, packets of the old one are gone.
	tr.SwitchSource()
	tr.Forward(upstream(10, 7, 7), keyframeStart)
	before++
	if tr.resend(5, sentPkts[3].hdr.SequenceNumber, &r) {
		t.Error("a packet of the old source resent")
	}
	if n := len(w.packets()); n != before {
		t.Errorf("%d packets written by refused resends", n-before)
	}
	if got := tr.Stats().Retransmits; got != 3 {
		t.Errorf("Retransmits = %d, want 3", got)
	}

	audio, _ := testTrack(t, opusCap, 0, 0)
	bind(t, audio, "a", 5)
	audio.Forward(upstream(9, 1, 1), opusFrame)
	if audio.resend(5, 0, &r) {
		t.Error("audio resent")
	}
}
