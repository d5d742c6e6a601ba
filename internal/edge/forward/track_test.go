package forward

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

func TestNewTrack(t *testing.T) {
	tests := []struct {
		name    string
		codec   webrtc.RTPCodecCapability
		kind    webrtc.RTPCodecType
		wantErr string
	}{
		{"opus", opusCap, webrtc.RTPCodecTypeAudio, ""},
		{"vp8", vp8Cap, webrtc.RTPCodecTypeVideo, ""},
		{"vp8 lower case", webrtc.RTPCodecCapability{MimeType: "video/vp8", ClockRate: 90000}, webrtc.RTPCodecTypeVideo, ""},
		{"h264 has no keyframe detector", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}, 0, "unsupported codec"},
		{"not media", webrtc.RTPCodecCapability{MimeType: "text/plain", ClockRate: 1000}, 0, "unsupported codec"},
		{"no clock rate", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, 0, "no clock rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := NewTrack("t1", "s1", tt.codec, WithRID("h"))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "forward: ") {
					t.Fatalf("err = %v, want forward: …%s…", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tr.ID() != "t1" || tr.StreamID() != "s1" || tr.RID() != "h" || tr.Kind() != tt.kind || !reflect.DeepEqual(tr.Codec(), tt.codec) {
				t.Errorf("got id %q stream %q rid %q kind %v codec %v", tr.ID(), tr.StreamID(), tr.RID(), tr.Kind(), tr.Codec())
			}
		})
	}
}

func TestBind(t *testing.T) {
	tests := []struct {
		name    string
		codec   webrtc.RTPCodecCapability
		have    []webrtc.RTPCodecParameters
		noWrite bool
		wantPT  webrtc.PayloadType
		wantErr error
	}{
		{name: "opus", codec: opusCap, have: subscriberCodecs, wantPT: 109},
		{name: "vp8 not rtx", codec: vp8Cap, have: subscriberCodecs, wantPT: 98},
		{name: "exact fmtp preferred", codec: opusCap, have: []webrtc.RTPCodecParameters{
			{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 100},
			{RTPCodecCapability: opusCap, PayloadType: 111},
		}, wantPT: 111},
		{name: "fmtp differs", codec: opusCap, have: []webrtc.RTPCodecParameters{
			{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "AUDIO/OPUS", ClockRate: 48000, Channels: 2}, PayloadType: 100},
		}, wantPT: 100},
		{name: "clock rate differs", codec: opusCap, have: []webrtc.RTPCodecParameters{
			{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 16000, Channels: 2}, PayloadType: 100},
		}, wantErr: webrtc.ErrUnsupportedCodec},
		{name: "no codecs", codec: vp8Cap, wantErr: webrtc.ErrUnsupportedCodec},
		{name: "no write stream", codec: vp8Cap, have: subscriberCodecs, noWrite: true, wantErr: errNoWriteStream},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, _ := testTrack(t, tt.codec, 0, 0)
			ctx := &fakeContext{id: "sub", ssrc: 7, codecs: tt.have, writer: &fakeWriter{t: t}}
			if tt.noWrite {
				ctx.writer = nil
			}
			got, err := tr.Bind(ctx)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.HasPrefix(err.Error(), "forward: ") {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if n := tr.Stats().Bindings; n != 0 {
					t.Errorf("bindings = %d after failed Bind", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.PayloadType != tt.wantPT {
				t.Errorf("payload type = %d, want %d", got.PayloadType, tt.wantPT)
			}
			if n := tr.Stats().Bindings; n != 1 {
				t.Errorf("bindings = %d, want 1", n)
			}
		})
	}
}

func TestBindUnbind(t *testing.T) {
	tr, _ := testTrack(t, opusCap, 1000, 5000)
	a := bind(t, tr, "a", 1)
	b := bind(t, tr, "b", 2)
	tr.Forward(upstream(9, 1, 0), opusFrame)

	// Binding "a" again replaces it: the connection gets the Track once.
	a2 := bind(t, tr, "a", 3)
	tr.Forward(upstream(9, 2, 960), opusFrame)
	if n := len(a.packets()); n != 1 {
		t.Errorf("replaced binding got %d packets, want 1", n)
	}
	if p := a2.packets(); len(p) != 1 || p[0].hdr.SSRC != 3 {
		t.Errorf("new binding got %+v, want one packet with SSRC 3", p)
	}

	unbind(t, tr, "b")
	if err := tr.Unbind(&fakeContext{id: "b"}); !errors.Is(err, webrtc.ErrUnbindFailed) {
		t.Errorf("second Unbind: err = %v, want ErrUnbindFailed", err)
	}
	tr.Forward(upstream(9, 3, 1920), opusFrame)
	if n := len(b.packets()); n != 2 {
		t.Errorf("unbound binding got %d packets, want 2", n)
	}
	if s := tr.Stats(); s.Bindings != 1 || s.PacketsIn != 3 || s.PacketsOut != 5 ||
		s.BytesOut != 5*uint64(len(opusFrame)) || s.BytesIn != 3*uint64(len(opusFrame)) {
		t.Errorf("stats = %+v", s)
	}
}

// offsets of upstream packets from the first one, in arrival order: a loss
// gap (3 is missing until it arrives late), reordering, a duplicate, a
// packet older than the first (it has no downstream number and is
// dropped), and a burst loss.
var arrivals = []int{0, 1, 2, 4, 5, 3, 7, 6, -1, 8, 8, 9, 40, 39, 41}

// TestRewriterSequenceSweep runs the arrival pattern from every upstream
// start value 0…65535, each with a different downstream start, so every
// 16-bit wraparound position is crossed both upstream and downstream.
func TestRewriterSequenceSweep(t *testing.T) {
	step := 1
	if testing.Short() {
		step = 257
	}
	for s := 0; s < 1<<16; s += step {
		start := uint16(s)
		out0 := uint16(s*40503 + 65500) // wanders over the range, often near the wrap
		var r rewriter
		r.anchor(start, 0, 0, 0, 48000, 960, out0, 0)
		for _, off := range arrivals {
			got, _, ok := r.rewrite(start+uint16(off), 0)
			if off < 0 {
				if ok {
					t.Fatalf("start %d: offset %d forwarded as %d, want dropped", start, off, got)
				}
				continue
			}
			if want := out0 + uint16(off); !ok || got != want {
				t.Fatalf("start %d out0 %d: offset %d -> %d (ok %v), want %d", start, out0, off, got, ok, want)
			}
		}
	}
}

// TestRewriterLongRun crosses the 16-bit wrap several times in one source,
// with reordering, and checks the anchor never drifts.
func TestRewriterLongRun(t *testing.T) {
	for _, start := range []uint16{0, 1, 32767, 32768, 65535} {
		var r rewriter
		const out0 = 65000
		r.anchor(start, 0, 0, 0, 48000, 960, out0, 0)
		for i := 0; i < 4*65536; i += 2 {
			// Pairs arrive swapped: i+1 before i.
			for _, k := range []int{i + 1, i} {
				got, _, ok := r.rewrite(start+uint16(k), 0)
				if want := uint16(out0 + k); !ok || got != want {
					t.Fatalf("start %d: packet %d -> %d (ok %v), want %d", start, k, got, ok, want)
				}
			}
		}
	}
}

// TestForwardWraparound sweeps upstream and downstream starts around the
// 16-bit and 32-bit wraps through a Track, with loss and reordering.
func TestForwardWraparound(t *testing.T) {
	seqStarts := []uint16{0, 1, 127, 128, 129, 511, 512, 513, 32767, 32768, 32769, 65407, 65408, 65409, 65534, 65535}
	tsStarts := []uint32{0, 1, 1<<31 - 1, 1 << 31, 1<<32 - 960, 1<<32 - 1, 1<<32 - 5000}
	for i, inSeq := range seqStarts {
		for j, outSeq := range seqStarts {
			inTS := tsStarts[(i+j)%len(tsStarts)]
			outTS := tsStarts[(i+2*j+1)%len(tsStarts)]
			tr, _ := testTrack(t, opusCap, outSeq, outTS)
			w := bind(t, tr, "sub", 42)
			for _, off := range arrivals {
				tr.Forward(upstream(7, inSeq+uint16(off), inTS+uint32(off)*960), opusFrame)
			}
			var want []string
			for _, off := range arrivals {
				if off >= 0 {
					want = append(want, fmt.Sprintf("%d/%d", outSeq+uint16(off), outTS+uint32(off)*960))
				}
			}
			var got []string
			for _, p := range w.packets() {
				got = append(got, fmt.Sprintf("%d/%d", p.hdr.SequenceNumber, p.hdr.Timestamp))
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("in %d/%d out %d/%d:\n got %v\nwant %v", inSeq, inTS, outSeq, outTS, got, want)
			}
		}
	}
}

func TestTicks(t *testing.T) {
	tests := []struct {
		elapsed time.Duration
		rate    uint32
		want    int64
	}{
		{0, 48000, 0},
		{-time.Second, 48000, 0},
		{time.Second, 0, 0},
		{20 * time.Millisecond, 48000, 960},
		{21 * time.Millisecond, 48000, 1008},
		{2 * time.Second, 90000, 180000},
		{1500 * time.Millisecond, 90000, 135000},
		{3 * time.Hour, 90000, 972_000_000},
		{1 << 62, 90000, maxTicks},
		{1<<63 - 1, 1<<32 - 1, maxTicks},
		{1<<63 - 1, 1, 9_223_372_036},
	}
	for _, tt := range tests {
		if got := ticks(int64(tt.elapsed), tt.rate); got != tt.want {
			t.Errorf("ticks(%v, %d) = %d, want %d", tt.elapsed, tt.rate, got, tt.want)
		}
	}
}

// TestSourceSwitch checks that a subscriber sees one continuous stream
// across a change of upstream source: the sequence continues at last+1,
// the timestamp advances by the elapsed time (at least one frame), and the
// new source's loss and reordering are kept.
func TestSourceSwitch(t *testing.T) {
	const oldSSRC, newSSRC = 0x1111, 0x2222
	tests := []struct {
		name     string
		codec    webrtc.RTPCodecCapability
		explicit bool          // SwitchSource with the SSRC unchanged
		elapsed  time.Duration // from the last old packet to the first new one
		seq0     uint16
		ts0      uint32
		wantGap  uint32
	}{
		{"audio ssrc change, no pause", opusCap, false, 0, 100, 1000, 960},
		{"audio ssrc change, 2s pause", opusCap, false, 2 * time.Second, 100, 1000, 96000},
		{"audio same ssrc, SwitchSource", opusCap, true, 50 * time.Millisecond, 100, 1000, 2400},
		{"audio across both wraps", opusCap, false, 10 * time.Millisecond, 65534, 1<<32 - 1000, 960},
		{"audio after a month away", opusCap, false, 30 * 24 * time.Hour, 7, 7, maxTimestampGap},
		{"video ssrc change, no pause", vp8Cap, false, 0, 200, 0, 3000},
		{"video ssrc change, 1s pause", vp8Cap, false, time.Second, 200, 0, 90000},
		{"video same ssrc, SwitchSource", vp8Cap, true, 0, 65535, 1<<32 - 1, 3000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var requests atomic.Int32
			tr, clk := testTrack(t, tt.codec, tt.seq0, tt.ts0,
				WithKeyframeRequest(func(uint32) { requests.Add(1) }), WithKeyframeInterval(0))
			w := bind(t, tr, "sub", 42)
			video := tt.codec.MimeType == webrtc.MimeTypeVP8
			first, rest := opusFrame, opusFrame
			if video {
				first, rest = keyframeStart, keyframeCont
			}
			// A packet every 20 ms: 960 ticks at 48 kHz, 1800 at 90 kHz.
			step := tt.codec.ClockRate / 50

			// Old source: three packets, upstream numbers far from the new;
			// then a pause before the new source's first packet.
			tr.Forward(upstream(oldSSRC, 50000, 7_000_000), first)
			clk.advanceMillis(20)
			tr.Forward(upstream(oldSSRC, 50001, 7_000_000+step), rest)
			clk.advanceMillis(20)
			tr.Forward(upstream(oldSSRC, 50002, 7_000_000+2*step), rest)
			clk.advance(int64(tt.elapsed))

			src := uint32(newSSRC)
			if tt.explicit {
				src = oldSSRC
				tr.SwitchSource()
			}
			requestsBefore := requests.Load()
			if video {
				// The new source's delta frame cannot start the binding.
				tr.Forward(upstream(src, 9, 500), deltaStart)
				if requests.Load() == requestsBefore {
					t.Error("no keyframe request while waiting after the switch")
				}
			}
			// New source: anchor at 10, lose 11, reorder 13/12, and a
			// packet from before the anchor.
			tr.Forward(upstream(src, 10, 900), first)
			tr.Forward(upstream(src, 12, 900+2*step), rest)
			tr.Forward(upstream(src, 13, 900+3*step), rest)
			tr.Forward(upstream(src, 11, 900+step), rest)
			tr.Forward(upstream(src, 9, 900-step), rest)

			last := tt.ts0 + 2*step
			anchor := last + tt.wantGap
			want := []string{
				fmt.Sprintf("%d/%d", tt.seq0, tt.ts0),
				fmt.Sprintf("%d/%d", tt.seq0+1, tt.ts0+step),
				fmt.Sprintf("%d/%d", tt.seq0+2, last),
				fmt.Sprintf("%d/%d", tt.seq0+3, anchor),
				fmt.Sprintf("%d/%d", tt.seq0+5, anchor+2*step),
				fmt.Sprintf("%d/%d", tt.seq0+6, anchor+3*step),
				fmt.Sprintf("%d/%d", tt.seq0+4, anchor+step),
			}
			var got []string
			for _, p := range w.packets() {
				got = append(got, fmt.Sprintf("%d/%d", p.hdr.SequenceNumber, p.hdr.Timestamp))
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("\n got %v\nwant %v", got, want)
			}
			// Monotonic across the switch in RTP's modular sense.
			if d := int32(anchor - last); d <= 0 {
				t.Errorf("timestamp went back across the switch: %d", d)
			}
			wantDropped := uint64(1)
			if video {
				wantDropped = 2
			}
			if s := tr.Stats(); s.SourceChanges != 1 || s.Dropped != wantDropped {
				t.Errorf("stats: %d source changes, %d dropped; want 1, %d", s.SourceChanges, s.Dropped, wantDropped)
			}
		})
	}
}

// TestSwitchBeforeAnyOutput: a binding that never forwarded keeps its
// random start across a source change.
func TestSwitchBeforeAnyOutput(t *testing.T) {
	tr, _ := testTrack(t, vp8Cap, 4000, 77)
	w := bind(t, tr, "sub", 42)
	tr.Forward(upstream(1, 10, 10), deltaStart)
	tr.Forward(upstream(2, 500, 9000), keyframeStart)
	p := w.packets()
	if len(p) != 1 || p[0].hdr.SequenceNumber != 4000 || p[0].hdr.Timestamp != 77 {
		t.Fatalf("got %+v, want one packet 4000/77", p)
	}
}

func seqs(ps []sent) []uint16 {
	var out []uint16
	for _, p := range ps {
		out = append(out, p.hdr.SequenceNumber)
	}
	return out
}

// TestKeyframeGating walks video bindings through joining mid-stream:
// nothing before a keyframe start, a throttled keyframe request while
// waiting, and then every packet.
func TestKeyframeGating(t *testing.T) {
	var requests []uint32
	var mu sync.Mutex
	tr, clk := testTrack(t, vp8Cap, 100, 0, WithKeyframeRequest(func(ssrc uint32) {
		mu.Lock()
		requests = append(requests, ssrc)
		mu.Unlock()
	}))
	nRequests := func() int { mu.Lock(); defer mu.Unlock(); return len(requests) }
	const src = 0xabc
	seq := uint16(1)
	send := func(payload []byte) {
		tr.Forward(upstream(src, seq, uint32(seq)*3000), payload)
		seq++
	}

	a := bind(t, tr, "a", 1)
	steps := []struct {
		name      string
		at        int // clock, ms
		bindB     bool
		payload   []byte
		wantA     []uint16
		wantB     []uint16
		wantAsked int
	}{
		{"delta before keyframe", 0, false, deltaStart, nil, nil, 1},
		{"continuation is not a start", 100, false, keyframeCont, nil, nil, 1},
		{"still throttled", 499, false, deltaStart, nil, nil, 1},
		{"asked again after 500ms", 500, false, deltaStart, nil, nil, 2},
		{"keyframe starts a", 510, false, keyframeStart, []uint16{100}, nil, 2},
		{"rest of the keyframe", 520, false, keyframeCont, []uint16{100, 101}, nil, 2},
		{"delta flows to a", 530, false, deltaStart, []uint16{100, 101, 102}, nil, 2},
		{"b joins mid-stream and waits", 1100, true, deltaStart, []uint16{100, 101, 102, 103}, nil, 3},
		{"b still waits", 1200, false, keyframeCont, []uint16{100, 101, 102, 103, 104}, nil, 3},
		{"keyframe starts b", 1300, false, keyframeStart, []uint16{100, 101, 102, 103, 104, 105}, []uint16{100}, 3},
		{"both forward", 1310, false, deltaStart, []uint16{100, 101, 102, 103, 104, 105, 106}, []uint16{100, 101}, 3},
	}
	var b *fakeWriter
	for _, st := range steps {
		clk.ns.Store(int64(st.at) * 1e6)
		if st.bindB {
			b = bind(t, tr, "b", 2)
		}
		send(st.payload)
		if got := seqs(a.packets()); !reflect.DeepEqual(got, st.wantA) {
			t.Errorf("%s: a got %v, want %v", st.name, got, st.wantA)
		}
		if b != nil {
			if got := seqs(b.packets()); !reflect.DeepEqual(got, st.wantB) {
				t.Errorf("%s: b got %v, want %v", st.name, got, st.wantB)
			}
		}
		if n := nRequests(); n != st.wantAsked {
			t.Errorf("%s: %d keyframe requests, want %d", st.name, n, st.wantAsked)
		}
	}
	for _, ssrc := range requests {
		if ssrc != src {
			t.Errorf("keyframe requested for SSRC %#x, want the upstream %#x", ssrc, src)
		}
	}
	if s := tr.Stats(); s.KeyframeRequests != 3 || s.Dropped != 6 {
		t.Errorf("stats = %+v, want 3 requests, 6 dropped", s)
	}
}

// TestStartWaitsForDelivery: a binding does not start from a packet its
// writer swallowed (Pion does so before DTLS-SRTP is up), and meanwhile asks
// for keyframes with a growing backoff.
func TestStartWaitsForDelivery(t *testing.T) {
	var requests atomic.Int32
	tr, clk := testTrack(t, vp8Cap, 50, 0, WithKeyframeRequest(func(uint32) { requests.Add(1) }))
	w := &fakeWriter{t: t, undelivered: 2}
	if _, err := tr.Bind(&fakeContext{id: "a", ssrc: 1, codecs: subscriberCodecs, writer: w}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		at        int // ms
		ssrc      uint32
		payload   []byte
		want      []uint16
		wantAsked int32
	}{
		{0, 1, deltaStart, nil, 1},
		{100, 1, keyframeStart, nil, 1}, // swallowed: retry at 600
		{200, 1, deltaStart, nil, 1},
		{600, 1, deltaStart, nil, 2},    // retry at 1600
		{700, 1, keyframeStart, nil, 2}, // swallowed too
		{1000, 1, deltaStart, nil, 2},
		{1600, 1, deltaStart, nil, 3},
		{1700, 1, keyframeStart, []uint16{50}, 3}, // the connection is up
		{1710, 1, deltaStart, []uint16{50, 51}, 3},
		{1720, 2, deltaStart, []uint16{50, 51}, 3}, // new source; Track throttle until 2100
		{2200, 2, deltaStart, []uint16{50, 51}, 4}, // ready again: the usual interval
		{2210, 2, keyframeStart, []uint16{50, 51, 52}, 4},
	}
	for i, st := range steps {
		clk.ns.Store(int64(st.at) * 1e6)
		tr.Forward(upstream(st.ssrc, uint16(i), uint32(i)*3000), st.payload)
		if got := seqs(w.packets()); !reflect.DeepEqual(got, st.want) {
			t.Errorf("at %d ms: got %v, want %v", st.at, got, st.want)
		}
		if n := requests.Load(); n != st.wantAsked {
			t.Errorf("at %d ms: %d keyframe requests, want %d", st.at, n, st.wantAsked)
		}
	}

	t.Run("audio", func(t *testing.T) {
		tr, _ := testTrack(t, opusCap, 50, 0)
		w := &fakeWriter{t: t, undelivered: 2}
		if _, err := tr.Bind(&fakeContext{id: "a", ssrc: 1, codecs: subscriberCodecs, writer: w}); err != nil {
			t.Fatal(err)
		}
		for i := range 4 {
			tr.Forward(upstream(1, uint16(i), uint32(i)*960), opusFrame)
		}
		if got := seqs(w.packets()); !reflect.DeepEqual(got, []uint16{50, 51}) {
			t.Errorf("got %v, want [50 51]", got)
		}
	})

	// A subscriber that never connects must not make the publisher send
	// a keyframe every interval.
	t.Run("never connects", func(t *testing.T) {
		var requests atomic.Int32
		var pending atomic.Bool
		tr, clk := testTrack(t, vp8Cap, 0, 0, WithKeyframeRequest(func(uint32) { requests.Add(1); pending.Store(true) }))
		w := &fakeWriter{t: t, undelivered: 1 << 30}
		if _, err := tr.Bind(&fakeContext{id: "a", ssrc: 1, codecs: subscriberCodecs, writer: w}); err != nil {
			t.Fatal(err)
		}
		for i := range 300 { // 30 s, a packet every 100 ms
			p := deltaStart
			if pending.Swap(false) {
				p = keyframeStart
			}
			tr.Forward(upstream(1, uint16(i), uint32(i)*9000), p)
			clk.advanceMillis(100)
		}
		if n := requests.Load(); n > 8 {
			t.Errorf("%d keyframe requests in 30 s for a subscriber that never connected", n)
		}
	})
}

// TestAudioNotGated: audio forwards from the first packet and never asks
// for keyframes.
func TestAudioNotGated(t *testing.T) {
	var requests atomic.Int32
	tr, _ := testTrack(t, opusCap, 5, 6, WithKeyframeRequest(func(uint32) { requests.Add(1) }))
	w := bind(t, tr, "sub", 1)
	tr.Forward(upstream(1, 300, 0), opusFrame)
	tr.RequestKeyframe()
	if n := len(w.packets()); n != 1 {
		t.Errorf("audio binding got %d packets, want 1", n)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d keyframe requests for audio", n)
	}
}

// TestKeyframeThrottle uses the real clock inside a synctest bubble.
func TestKeyframeThrottle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		tr, err := NewTrack("v", "s", vp8Cap, WithKeyframeRequest(func(uint32) { calls.Add(1) }))
		if err != nil {
			t.Fatal(err)
		}
		check := func(when string, want int32) {
			t.Helper()
			if got := calls.Load(); got != want {
				t.Errorf("%s: %d requests, want %d", when, got, want)
			}
		}
		tr.RequestKeyframe()
		tr.RequestKeyframe()
		check("two at once", 1)
		time.Sleep(DefaultKeyframeInterval - time.Millisecond)
		tr.RequestKeyframe()
		check("just before the interval", 1)
		time.Sleep(time.Millisecond)
		tr.RequestKeyframe()
		check("at the interval", 2)

		// Many subscribers' PLIs at the same instant: one request.
		time.Sleep(time.Second)
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(tr.RequestKeyframe)
		}
		wg.Wait()
		check("16 concurrent", 3)

		unthrottled, _ := NewTrack("v", "s", vp8Cap, WithKeyframeInterval(0),
			WithKeyframeRequest(func(uint32) { calls.Add(1) }))
		unthrottled.RequestKeyframe()
		unthrottled.RequestKeyframe()
		check("interval 0", 5)
	})
}

// TestPayloadUnchanged: the writer gets the caller's payload slice itself,
// byte for byte, and neither the header nor the payload given to Forward is
// modified.
func TestPayloadUnchanged(t *testing.T) {
	tests := []struct {
		name    string
		codec   webrtc.RTPCodecCapability
		hdr     rtp.Header
		payload []byte
		wantPT  uint8
	}{
		{"opus with extensions", opusCap, withExtensions(t, rtp.Header{
			Version: 2, PayloadType: 111, SequenceNumber: 1, Timestamp: 2, SSRC: 3, Marker: true,
		}), opusFrame, 109},
		{"vp8 keyframe with padding and csrc", vp8Cap, rtp.Header{
			Version: 2, PayloadType: 96, SequenceNumber: 65535, Timestamp: 1<<32 - 1, SSRC: 3,
			Padding: true, PaddingSize: 4, CSRC: []uint32{10, 11},
		}, keyframeStart, 98},
		{"padding flag without size", opusCap, rtp.Header{Version: 2, Padding: true, SSRC: 3}, opusFrame, 109},
		{"empty payload", opusCap, rtp.Header{Version: 2, SSRC: 3, Padding: true, PaddingSize: 200}, []byte{}, 109},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, _ := testTrack(t, tt.codec, 10, 20)
			ws := []*fakeWriter{bind(t, tr, "a", 1000), bind(t, tr, "b", 2000), bind(t, tr, "c", 3000)}
			payload := append([]byte(nil), tt.payload...)
			hdr := tt.hdr.Clone()
			tr.Forward(&hdr, payload)

			if !bytes.Equal(payload, tt.payload) {
				t.Errorf("Forward modified the payload: % x", payload)
			}
			if !reflect.DeepEqual(hdr, tt.hdr) {
				t.Errorf("Forward modified the header:\n got %+v\nwant %+v", hdr, tt.hdr)
			}
			for i, w := range ws {
				ps := w.packets()
				if len(ps) != 1 {
					t.Fatalf("writer %d got %d packets", i, len(ps))
				}
				p := ps[0]
				if !bytes.Equal(p.payload, tt.payload) {
					t.Errorf("writer %d payload % x, want % x", i, p.payload, tt.payload)
				}
				if len(payload) > 0 && &p.orig[0] != &payload[0] {
					t.Errorf("writer %d got a copy of the payload", i)
				}
				wantPadding := tt.hdr.Padding && tt.hdr.PaddingSize > 0
				want := rtp.Header{
					Version: 2, Padding: wantPadding, Marker: tt.hdr.Marker, PayloadType: tt.wantPT,
					SequenceNumber: 10, Timestamp: 20, SSRC: uint32(1000 * (i + 1)), CSRC: tt.hdr.CSRC,
				}
				if wantPadding {
					want.PaddingSize = tt.hdr.PaddingSize
				}
				if !reflect.DeepEqual(p.hdr, want) {
					t.Errorf("writer %d header:\n got %+v\nwant %+v", i, p.hdr, want)
				}
				// What reaches the wire: the marshalled packet parses back to
				// the same payload.
				raw, err := (&rtp.Packet{Header: p.hdr, Payload: p.orig}).Marshal()
				if err != nil {
					t.Fatalf("marshal: %v", err)
				}
				var back rtp.Packet
				if err := back.Unmarshal(raw); err != nil || !bytes.Equal(back.Payload, tt.payload) {
					t.Errorf("round trip: %v, payload % x", err, back.Payload)
				}
			}
		})
	}
}

// withExtensions adds an audio level (RFC 6464) and another one-byte
// header extension to h.
func withExtensions(t *testing.T, h rtp.Header) rtp.Header {
	t.Helper()
	if err := h.SetExtension(1, []byte{0x80}); err != nil {
		t.Fatal(err)
	}
	if err := h.SetExtension(3, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestWriteRTP(t *testing.T) {
	tr, _ := testTrack(t, opusCap, 0, 0)
	w := bind(t, tr, "a", 1)
	if err := tr.WriteRTP(nil); err == nil || !strings.HasPrefix(err.Error(), "forward: ") {
		t.Errorf("WriteRTP(nil) = %v", err)
	}
	if err := tr.WriteRTP(&rtp.Packet{Header: *upstream(1, 1, 1), Payload: opusFrame}); err != nil {
		t.Fatal(err)
	}
	if n := len(w.packets()); n != 1 {
		t.Errorf("got %d packets", n)
	}
}

// TestWriteErrorsCounted: one failing subscriber neither stops the others
// nor fails the publisher.
func TestWriteErrorsCounted(t *testing.T) {
	tr, _ := testTrack(t, opusCap, 0, 0)
	bad := bind(t, tr, "bad", 1)
	bad.fail = errors.New("closed pipe")
	good := bind(t, tr, "good", 2)
	tr.Forward(upstream(1, 1, 1), opusFrame)
	tr.Forward(upstream(1, 2, 2), opusFrame)
	if n := len(good.packets()); n != 2 {
		t.Errorf("good subscriber got %d packets", n)
	}
	if s := tr.Stats(); s.WriteErrors != 2 || s.PacketsOut != 2 {
		t.Errorf("stats = %+v", s)
	}
}

func TestForwardAllocs(t *testing.T) {
	for _, codec := range []webrtc.RTPCodecCapability{opusCap, vp8Cap} {
		t.Run(codec.MimeType, func(t *testing.T) {
			tr, err := NewTrack("t", "s", codec, WithKeyframeRequest(func(uint32) {}))
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				ctx := &fakeContext{id: fmt.Sprint(i), ssrc: webrtc.SSRC(i), codecs: subscriberCodecs, writer: &discardWriter{}}
				if _, err := tr.Bind(ctx); err != nil {
					t.Fatal(err)
				}
			}
			h := upstream(1, 0, 0)
			payload := make([]byte, 1000)
			copy(payload, keyframeStart)
			tr.Forward(h, payload)
			copy(payload, deltaStart)
			allocs := testing.AllocsPerRun(1000, func() {
				h.SequenceNumber++
				h.Timestamp += 3000
				tr.Forward(h, payload)
			})
			if allocs != 0 {
				t.Errorf("%.1f allocations per forwarded packet, want 0", allocs)
			}
			if s := tr.Stats(); s.PacketsOut != 10*1002 {
				t.Errorf("forwarded %d, want %d", s.PacketsOut, 10*1002)
			}
		})
	}
}

// TestConcurrentBindUnbind forwards while subscribers come and go, sources
// switch and stats are read. Run with -race. A binding that stays bound
// throughout must still see one continuous stream, and no unbound one may
// be written to after Unbind returns (fakeWriter checks).
func TestConcurrentBindUnbind(t *testing.T) {
	tr, err := NewTrack("t", "s", opusCap)
	if err != nil {
		t.Fatal(err)
	}
	stable := bind(t, tr, "stable", 1)

	stop := make(chan struct{})
	forwarded := make(chan int)
	go func() {
		h := upstream(1, 0, 0)
		n := 0
		for {
			select {
			case <-stop:
				forwarded <- n
				return
			default:
			}
			if n%500 == 499 {
				h.SSRC++ // a new source now and then
			}
			tr.Forward(h, opusFrame)
			h.SequenceNumber++
			h.Timestamp += 960
			n++
		}
	}()

	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				id := fmt.Sprintf("g%d-%d", g, i)
				w := bind(t, tr, id, webrtc.SSRC(100+i))
				unbind(t, tr, id)
				w.closed.Store(true)
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			tr.SwitchSource()
			_ = tr.Stats()
		}
	})
	wg.Wait()
	close(stop)
	n := <-forwarded

	ps := stable.packets()
	if len(ps) != n {
		t.Fatalf("stable binding got %d of %d packets", len(ps), n)
	}
	for i := 1; i < len(ps); i++ {
		a, b := ps[i-1].hdr, ps[i].hdr
		if b.SequenceNumber != a.SequenceNumber+1 || int32(b.Timestamp-a.Timestamp) <= 0 {
			t.Fatalf("discontinuity at %d: %d/%d then %d/%d", i, a.SequenceNumber, a.Timestamp, b.SequenceNumber, b.Timestamp)
		}
	}
	if s := tr.Stats(); s.Bindings != 1 {
		t.Errorf("bindings = %d, want 1", s.Bindings)
	}
}

// TestConcurrentForwarders: Forward from several goroutines is safe (if
// unordered). Run with -race.
func TestConcurrentForwarders(t *testing.T) {
	tr, _ := NewTrack("t", "s", vp8Cap, WithKeyframeRequest(func(uint32) {}))
	w := bind(t, tr, "a", 1)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				tr.Forward(upstream(uint32(g%2), uint16(i), uint32(i)*3000), keyframeStart)
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			id := fmt.Sprint(i)
			bind(t, tr, id, 9)
			unbind(t, tr, id)
		}
	})
	wg.Wait()
	if s := tr.Stats(); s.PacketsIn != 800 || uint64(len(w.packets()))+s.Dropped < 800 {
		t.Errorf("stats = %+v, stable binding got %d", s, len(w.packets()))
	}
}
