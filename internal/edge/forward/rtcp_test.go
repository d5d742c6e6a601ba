package forward

import (
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
)

func marshalRTCP(t testing.TB, pkts ...rtcp.Packet) []byte {
	t.Helper()
	b, err := rtcp.Marshal(pkts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHasKeyframeRequest(t *testing.T) {
	rr := &rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 2}}}
	pli := &rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 2}
	fir := &rtcp.FullIntraRequest{SenderSSRC: 1, MediaSSRC: 2, FIR: []rtcp.FIREntry{{SSRC: 2, SequenceNumber: 1}}}
	nack := &rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: 2, Nacks: []rtcp.NackPair{{PacketID: 5}}}
	remb := &rtcp.ReceiverEstimatedMaximumBitrate{SenderSSRC: 1, Bitrate: 1e6, SSRCs: []uint32{2}}
	sdes := &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 1,
		Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "x"}}}}}

	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"pli", marshalRTCP(t, pli), true},
		{"fir", marshalRTCP(t, fir), true},
		{"rr then pli", marshalRTCP(t, rr, sdes, pli), true},
		{"rr", marshalRTCP(t, rr, sdes), false},
		{"nack has format 1 too, but is RTPFB", marshalRTCP(t, nack), false},
		{"remb", marshalRTCP(t, remb), false},
		{"empty", nil, false},
		{"short", []byte{0x81, 206}, false},
		{"bad version", []byte{0x01, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2}, false},
		{"rr claiming to run past the end, then pli", append(marshalRTCP(t, rr)[:8:8], marshalRTCP(t, pli)...), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hasKeyframeRequest(tt.b); got != tt.want {
				t.Errorf("hasKeyframeRequest(% x) = %v, want %v", tt.b, got, tt.want)
			}
		})
	}
	pkt := marshalRTCP(t, rr, pli)
	if n := testing.AllocsPerRun(100, func() { hasKeyframeRequest(pkt) }); n != 0 {
		t.Errorf("%.1f allocations per scan", n)
	}
}

// fakeSender hands out queued reads, then blocks until closed, like an
// RTPSender whose subscriber is quiet.
type fakeSender struct {
	reads chan []byte
	err   chan error
}

func newFakeSender() *fakeSender {
	return &fakeSender{reads: make(chan []byte), err: make(chan error, 1)}
}

func (s *fakeSender) Read(b []byte) (int, interceptor.Attributes, error) {
	select {
	case p := <-s.reads:
		return copy(b, p), nil, nil
	case err := <-s.err:
		return 0, nil, err
	}
}

// TestReadRTCP runs the reader in a synctest bubble: synctest.Wait makes the
// checks deterministic, and the bubble fails the test if the reader's
// goroutine is still alive at the end.
func TestReadRTCP(t *testing.T) {
	pli := marshalRTCP(t, &rtcp.PictureLossIndication{MediaSSRC: 2})
	rr := marshalRTCP(t, &rtcp.ReceiverReport{SSRC: 1})
	tests := []struct {
		name    string
		stopErr error
		wantErr error // nil: a clean stop
	}{
		{"sender stopped", io.ErrClosedPipe, nil},
		{"stream closed", io.EOF, nil},
		{"other failure", io.ErrShortBuffer, io.ErrShortBuffer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var calls atomic.Int32
				s := newFakeSender()
				done := make(chan error)
				go func() { done <- readRTCP(s, rtcpHandler{keyframe: func() { calls.Add(1) }}) }()

				for _, p := range [][]byte{rr, pli, rr, pli, []byte("junk")} {
					s.reads <- p
				}
				synctest.Wait()
				if n := calls.Load(); n != 2 {
					t.Errorf("%d keyframe requests, want 2", n)
				}

				s.err <- tt.stopErr
				err := <-done
				switch {
				case tt.wantErr == nil && err != nil:
					t.Errorf("ReadRTCP = %v, want nil", err)
				case tt.wantErr != nil && (!errors.Is(err, tt.wantErr) || !strings.HasPrefix(err.Error(), "forward: ")):
					t.Errorf("ReadRTCP = %v, want forward: …%v", err, tt.wantErr)
				}
			})
		})
	}

	t.Run("nil callback", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newFakeSender()
			done := make(chan error)
			go func() { done <- readRTCP(s, rtcpHandler{}) }()
			s.reads <- pli
			s.err <- io.EOF
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	})
}

func TestReceptionReports(t *testing.T) {
	rr := &rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{
		{SSRC: 2, FractionLost: 64, TotalLost: 5, LastSequenceNumber: 70000, Jitter: 480},
		{SSRC: 3, FractionLost: 0, TotalLost: 0xFFFFFF, LastSequenceNumber: 9, Jitter: 1}, // -1 in 24 bits
	}}
	sr := &rtcp.SenderReport{SSRC: 1, NTPTime: 1 << 40, RTPTime: 5, PacketCount: 10, OctetCount: 1000,
		Reports: []rtcp.ReceptionReport{{SSRC: 4, FractionLost: 1, TotalLost: 2, LastSequenceNumber: 3, Jitter: 4}}}
	pli := &rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 2}
	b := marshalRTCP(t, pli, rr, sr)
	var got []ReceptionReport
	receptionReports(b, func(r ReceptionReport) { got = append(got, r) })
	want := []ReceptionReport{
		{SSRC: 2, FractionLost: 64, TotalLost: 5, LastSeq: 70000, Jitter: 480},
		{SSRC: 3, TotalLost: -1, LastSeq: 9, Jitter: 1},
		{SSRC: 4, FractionLost: 1, TotalLost: 2, LastSeq: 3, Jitter: 4},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("report %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	// Truncated or malformed input ends the walk without a panic.
	for i := range b {
		receptionReports(b[:i], func(ReceptionReport) {})
	}
	if n := testing.AllocsPerRun(100, func() { receptionReports(b, func(ReceptionReport) {}) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

func FuzzReceptionReports(f *testing.F) {
	f.Add(marshalRTCP(f, &rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 2, TotalLost: 3}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Every block found must lie within the input: re-encoding its count gives no more than the input holds.
		n := 0
		receptionReports(b, func(ReceptionReport) { n++ })
		if n*24 > len(b) {
			t.Errorf("%d blocks from %d bytes", n, len(b))
		}
	})
}
