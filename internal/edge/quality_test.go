package edge

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/stoa-rtc/stoa/internal/edge/forward"
	"github.com/stoa-rtc/stoa/internal/protocol"
)

// feed gives s packets with the given sequence numbers, 20 ms and 960 timestamp units (Opus) apart.
func feed(s *rtpStats, ssrc uint32, seqs ...uint16) {
	for _, seq := range seqs {
		s.update(ssrc, seq, uint32(seq)*960, 100, int64(seq)*int64(20*time.Millisecond))
	}
}

func TestRTPStatsLoss(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		seqs                 []uint16
		received, lost, dups uint64
		wantLoss             float64
		restarts             bool
	}{
		{name: "in order", seqs: []uint16{1, 2, 3, 4, 5}, received: 5},
		{name: "gap", seqs: []uint16{1, 2, 5, 6}, received: 4, lost: 2, wantLoss: 2.0 / 6},
		{name: "reordered", seqs: []uint16{1, 2, 4, 3, 5}, received: 5},
		{name: "duplicates", seqs: []uint16{1, 2, 2, 3, 3, 3, 1}, received: 3, dups: 4},
		{name: "wrap", seqs: []uint16{65533, 65534, 65535, 0, 1, 2}, received: 6},
		{name: "wrap with loss", seqs: []uint16{65534, 65535, 1, 2}, received: 4, lost: 1, wantLoss: 1.0 / 5},
		{name: "reordered across the wrap", seqs: []uint16{65534, 0, 65535, 1}, received: 4},
		{name: "duplicate across the wrap", seqs: []uint16{65535, 0, 65535, 0}, received: 2, dups: 2},
		{name: "before the first", seqs: []uint16{10, 9, 11}, received: 3},
		{name: "before the first, at zero", seqs: []uint16{0, 65535, 1}, received: 3},
		{name: "late filler counts once", seqs: []uint16{1, 3, 2, 2}, received: 3, dups: 1},
		{name: "straggler beyond the window", seqs: []uint16{1000, 1001, 1002, 500, 1003}, received: 4},
		// A jump beyond maxDropout confirmed by the next packet restarts the count: nothing is lost across it.
		{name: "restart", seqs: []uint16{100, 101, 102, 40000, 40001, 40002}, received: 5, restarts: true},
		{name: "unconfirmed jump ignored", seqs: []uint16{100, 101, 40000, 102, 103}, received: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newRTPStats(48000, 0)
			feed(s, 1, tc.seqs...)
			q := s.snapshot(int64(time.Second))
			if s.received != tc.received || q.Packets != tc.received || q.Lost != tc.lost || s.duplicates != tc.dups {
				t.Errorf("received %d (interval %d) lost %d duplicates %d, want %d lost %d duplicates %d",
					s.received, q.Packets, q.Lost, s.duplicates, tc.received, tc.lost, tc.dups)
			}
			if math.Abs(q.Loss-tc.wantLoss) > 1e-12 {
				t.Errorf("loss %v, want %v", q.Loss, tc.wantLoss)
			}
			if tc.restarts != (s.expectedBefore > 0) {
				t.Errorf("expectedBefore %d", s.expectedBefore)
			}
		})
	}
}

// Every start value, as pion/interceptor's nack tests do: 40 packets with every 8th lost, across the wrap.
func TestRTPStatsEveryStart(t *testing.T) {
	for start := 0; start < 1<<16; start++ {
		s := newRTPStats(48000, 0)
		for i := range 40 {
			if i%8 != 7 {
				feed(s, 9, uint16(start+i))
			}
		}
		if q := s.snapshot(1); q.Packets != 35 || q.Lost != 4 { // the last loss (i=39) is not yet seen
			t.Fatalf("start %d: %+v", start, q)
		}
	}
}

func TestRTPStatsIntervals(t *testing.T) {
	s := newRTPStats(48000, 0)
	feed(s, 1, 1, 2, 3, 4)
	q1 := s.snapshot(int64(time.Second))
	feed(s, 1, 6, 7, 5, 8) // 5 arrives late but within the second interval
	q2 := s.snapshot(int64(2 * time.Second))
	if q1.Packets != 4 || q1.Lost != 0 || q2.Packets != 4 || q2.Lost != 0 {
		t.Errorf("intervals %+v %+v", q1, q2)
	}
	// 4 packets of 100 bytes in one second: 3.2 kbps.
	if q1.BitrateKbps != 3.2 || q2.BitrateKbps != 3.2 {
		t.Errorf("bitrate %v %v", q1.BitrateKbps, q2.BitrateKbps)
	}
	// A loss seen in one interval, filled in the next: lost once, never negative.
	feed(s, 1, 10)
	q3 := s.snapshot(int64(3 * time.Second))
	feed(s, 1, 9, 11)
	q4 := s.snapshot(int64(4 * time.Second))
	if q3.Lost != 1 || q3.Loss != 0.5 || q4.Lost != 0 || q4.Packets != 2 {
		t.Errorf("late filler: %+v %+v", q3, q4)
	}
	// A new SSRC restarts the sequence without counting a loss.
	feed(s, 2, 500, 501)
	if q := s.snapshot(int64(5 * time.Second)); q.Lost != 0 || q.Packets != 2 {
		t.Errorf("new ssrc: %+v", q)
	}
	// Nothing received: no loss, no bitrate.
	if q := s.snapshot(int64(6 * time.Second)); q.Packets != 0 || q.Loss != 0 || q.BitrateKbps != 0 {
		t.Errorf("idle: %+v", q)
	}
}

func TestRTPStatsJitter(t *testing.T) {
	// Perfectly paced packets, with the 32-bit timestamp wrapping: no jitter.
	s := newRTPStats(48000, 0)
	ts := uint32(math.MaxUint32 - 5*960)
	for i := range 20 {
		s.update(1, uint16(i), ts+uint32(i)*960, 100, int64(i)*int64(20*time.Millisecond))
	}
	if q := s.snapshot(1); q.JitterMs != 0 {
		t.Errorf("paced: jitter %v ms", q.JitterMs)
	}
	// Opus every 20 ms (960 units) arriving alternately 30 ms and 10 ms apart: |D| = 480 units each time, so
	// after n differences J = 480 (1 - (15/16)^n) units, 10 (1 - (15/16)^n) ms.
	s = newRTPStats(48000, 0)
	arrival := int64(0)
	const n = 21
	for i := range n + 1 {
		if i > 0 {
			arrival += int64(10 * time.Millisecond)
			if i%2 == 1 {
				arrival += int64(20 * time.Millisecond)
			}
		}
		s.update(1, uint16(i), uint32(i)*960, 100, arrival)
	}
	want := 10 * (1 - math.Pow(15.0/16, n))
	if q := s.snapshot(1); math.Abs(q.JitterMs-want) > 1e-9 {
		t.Errorf("opus jitter %v ms, want %v", q.JitterMs, want)
	}
	// VP8 at 90 kHz: frames 10 ms (900 units) apart arriving 11 ms apart: D = 90 units = 1 ms every time.
	s = newRTPStats(90000, 0)
	for i := range n + 1 {
		s.update(1, uint16(i), uint32(i)*900, 1000, int64(i)*int64(11*time.Millisecond))
	}
	if q := s.snapshot(1); math.Abs(q.JitterMs-(1-math.Pow(15.0/16, n))) > 1e-9 {
		t.Errorf("vp8 jitter %v ms", q.JitterMs)
	}
	// Duplicates do not move the jitter.
	s = newRTPStats(48000, 0)
	s.update(1, 1, 960, 100, 0)
	s.update(1, 2, 1920, 100, int64(20*time.Millisecond))
	s.update(1, 2, 1920, 100, int64(500*time.Millisecond))
	if q := s.snapshot(1); q.JitterMs != 0 {
		t.Errorf("duplicate moved the jitter to %v ms", q.JitterMs)
	}
}

func TestRRStats(t *testing.T) {
	r := &rrStats{clockRate: 48000, ssrc: 7}
	if _, ok := r.snapshot(); ok {
		t.Error("a snapshot before any report")
	}
	r.report(forward.ReceptionReport{SSRC: 8, LastSeq: 1, TotalLost: 99}) // another sender's: ignored
	r.report(forward.ReceptionReport{SSRC: 7, FractionLost: 64, TotalLost: 5, LastSeq: 1000, Jitter: 480})
	q, ok := r.snapshot()
	if !ok || q.Loss != 0.25 || q.JitterMs != 10 || q.Packets != 0 {
		t.Errorf("first: %+v %v", q, ok)
	}
	r.report(forward.ReceptionReport{SSRC: 7, FractionLost: 10, TotalLost: 7, LastSeq: 1100, Jitter: 96})
	q, _ = r.snapshot()
	if q.Packets != 98 || q.Lost != 2 || q.Loss != 0.02 || q.JitterMs != 2 {
		t.Errorf("second: %+v", q)
	}
	// Duplicates can lower the cumulative count: no negative loss.
	r.report(forward.ReceptionReport{SSRC: 7, TotalLost: 6, LastSeq: 1200})
	if q, _ = r.snapshot(); q.Lost != 0 || q.Loss != 0 || q.Packets != 100 {
		t.Errorf("third: %+v", q)
	}
}

// BenchmarkRTPStatsUpdate measures the per-packet cost the forwarding loop pays for quality measurement.
func BenchmarkRTPStatsUpdate(b *testing.B) {
	s := newRTPStats(48000, 0)
	b.ReportAllocs()
	var now int64
	for i := 0; b.Loop(); i++ {
		seq := uint16(i)
		if i%50 == 0 {
			seq-- // a duplicate now and then
		}
		now += int64(20 * time.Millisecond)
		s.update(1, seq, uint32(i)*960, 200, now)
	}
}

func TestRTPStatsUpdateAllocs(t *testing.T) {
	s := newRTPStats(90000, 0)
	i := 0
	if n := testing.AllocsPerRun(1000, func() { i++; s.update(1, uint16(i), uint32(i)*3000, 1200, int64(i)) }); n != 0 {
		t.Errorf("%v allocations per packet", n)
	}
}

// BenchmarkRTPStatsUpdateClock is BenchmarkRTPStatsUpdate with the clock reading the forwarding loop makes.
func BenchmarkRTPStatsUpdateClock(b *testing.B) {
	s := newRTPStats(48000, 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.update(1, uint16(i), uint32(i)*960, 200, nanotime())
	}
}

// A real call on loopback: the publisher's session reports its uplink (packets, bitrate, no loss) and its join
// time, the subscriber's reports what its receiver reports say, and a final report follows each leave.
func TestQualityEvents(t *testing.T) {
	e := startEdge(t, func(c *Config) { c.QualityInterval = 100 * time.Millisecond })
	a, b := e.dial(t), e.dial(t)
	if r := a.join(e.token(t, "room", "alice", nil), "room", "alice"); r.Type != protocol.TypeJoined {
		t.Fatal(errCode(r))
	}
	if r := b.join(e.token(t, "room", "bob", nil), "room", "bob"); r.Type != protocol.TypeJoined {
		t.Fatal(errCode(r))
	}
	_, audio, _ := a.publish(protocol.KindAudio)
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(0); ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq,
				Timestamp: uint32(seq) * 240}, Payload: make([]byte, 100)})
		}
	}()
	defer func() { close(stop); <-sent }()
	// Bob reads what he receives, so that his receiver reports count it.
	go func() {
		select {
		case tr := <-b.tracks:
			for {
				if _, _, err := tr.ReadRTP(); err != nil {
					return
				}
			}
		case <-time.After(10 * time.Second):
		}
	}()

	var up, down *TrackQuality
	joinMs := map[string]int64{}
	deadline := time.After(20 * time.Second)
	for up == nil || down == nil || len(joinMs) < 2 {
		select {
		case ev := <-e.events:
			if ev.Type != EventQuality {
				continue
			}
			if ev.AppID != testApp || ev.Channel != "room" || ev.Session == "" || ev.IntervalMs <= 0 {
				t.Errorf("quality event %+v", ev)
			}
			if ev.JoinMs != 0 {
				if _, dup := joinMs[ev.UID]; dup {
					t.Errorf("join time of %s reported twice", ev.UID)
				}
				joinMs[ev.UID] = ev.JoinMs
			}
			for _, q := range ev.Tracks {
				switch {
				case ev.UID == "alice" && q.Direction == DirectionUp && q.Packets > 0 && up == nil:
					up = &q
				case ev.UID == "bob" && q.Direction == DirectionDown && q.Packets > 0 && down == nil:
					down = &q
				}
			}
		case <-deadline:
			t.Fatalf("no complete quality reports: up %+v down %+v join %v", up, down, joinMs)
		}
	}
	t.Logf("uplink %+v, downlink %+v, join times %v ms", *up, *down, joinMs)
	if up.Kind != "audio" || up.BitrateKbps <= 0 || up.Loss != 0 || up.Lost != 0 || up.JitterMs < 0 || up.JitterMs > 1000 {
		t.Errorf("uplink %+v", up)
	}
	if down.Kind != "audio" || down.Loss != 0 || down.JitterMs < 0 || down.JitterMs > 1000 || down.BitrateKbps != 0 {
		t.Errorf("downlink %+v", down)
	}
	for uid, ms := range joinMs {
		if ms <= 0 || ms > 10000 {
			t.Errorf("join time of %s: %d ms", uid, ms)
		}
	}

	// Leaving: the leave event, then the final report.
	a.sendRaw(&protocol.Message{Type: protocol.TypeLeave})
	<-a.closed
	leave := false
	for {
		select {
		case ev := <-e.events:
			if ev.UID != "alice" {
				continue
			}
			if ev.Type == EventLeave {
				leave = true
				continue
			}
			if ev.Type != EventQuality || !ev.Final {
				continue
			}
			if !leave {
				t.Error("the final report came before the leave")
			}
			// Never media or content: the event is only figures and identifiers.
			raw, _ := json.Marshal(ev)
			if strings.Contains(string(raw), "payload") || len(ev.Tracks) != 1 || ev.Tracks[0].Direction != DirectionUp {
				t.Errorf("final report %s", raw)
			}
			return
		case <-deadline:
			t.Fatal("no final report")
		}
	}
}
