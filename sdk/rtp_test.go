package sdk

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/stoa-rtc/stoa/internal/protocol"
	"github.com/stoa-rtc/stoa/sframe"
	"github.com/stoa-rtc/stoa/sframe/media"
)

func testSecret(b byte) *sframe.Key { return sframe.NewKey(bytes.Repeat([]byte{b}, media.SecretSize)) }

func newTestSender(t testing.TB, secret *sframe.Key) *media.Sender {
	t.Helper()
	s, err := media.NewSender(sframe.DefaultSuite, secret, media.NewKID(0))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newTestReceiver(t testing.TB, secret *sframe.Key) *media.Receiver {
	t.Helper()
	r, err := media.NewReceiver(sframe.DefaultSuite)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddSecret(0, secret); err != nil {
		t.Fatal(err)
	}
	return r
}

// vp8Frame returns a fake VP8 frame of n bytes: a key frame has bit 0 of its first byte clear and the key frame
// start code, a delta frame has it set.
func vp8Frame(key bool, n int, seed byte) []byte {
	f := make([]byte, n)
	for i := range f {
		f[i] = seed + byte(i*7)
	}
	if key {
		f[0] = 0x10
		copy(f[3:], []byte{0x9d, 0x01, 0x2a})
	} else {
		f[0] = 0x31
	}
	return f
}

func fixedPacketizer(kind Kind, start uint16) *packetizer {
	pk := newPacketizer(kind)
	if kind == KindVideo {
		pk.p = rtp.NewPacketizer(rtpMTU, 96, 1234, &codecs.VP8Payloader{EnablePictureID: true}, rtp.NewFixedSequencer(start), 90000)
	} else {
		pk.p = rtp.NewPacketizer(rtpMTU, 111, 1234, &codecs.OpusPayloader{}, rtp.NewFixedSequencer(start), 48000)
	}
	return pk
}

// receive runs packets through what a remote track's reader does: reorder, reassemble, decrypt.
func receive(t *testing.T, kind Kind, recv *media.Receiver, pkts []*rtp.Packet) (frames [][]byte, incomplete, failed int) {
	t.Helper()
	ro := reorder{hold: holdAudio}
	if kind == KindVideo {
		ro.hold = holdVideo
	}
	var asm vp8Assembler
	open := func(wire []byte) {
		out, err := recv.Open(nil, kind.codec(), wire)
		if err != nil {
			if !errors.Is(err, sframe.ErrAuth) {
				t.Errorf("Open error %v is not ErrAuth", err)
			}
			failed++
			return
		}
		frames = append(frames, out)
	}
	emit := func(p *rtp.Packet, lost bool) {
		if kind == KindAudio {
			open(p.Payload)
			return
		}
		f, d := asm.push(p, lost)
		incomplete += d
		if f != nil {
			open(f)
		}
	}
	for _, p := range pkts {
		ro.push(p, time.Time{}, emit)
	}
	ro.flush(emit)
	return frames, incomplete, failed
}

func TestOpusRoundTrip(t *testing.T) {
	secret := testSecret(1)
	s := newTestSender(t, secret)
	pk := fixedPacketizer(KindAudio, 65533)
	var want [][]byte
	var pkts []*rtp.Packet
	for i := range 40 {
		frame := make([]byte, 1+i*7)
		for j := range frame {
			frame[j] = byte(i + j)
		}
		want = append(want, frame)
		wire, err := s.Seal(nil, media.Opus, frame)
		if err != nil {
			t.Fatal(err)
		}
		ps := pk.packetize(wire, 20*time.Millisecond)
		if len(ps) != 1 {
			t.Fatalf("Opus frame became %d packets, want 1", len(ps))
		}
		if i > 0 && ps[0].Timestamp-pkts[len(pkts)-1].Timestamp != 960 {
			t.Fatalf("timestamp step %d, want 960", ps[0].Timestamp-pkts[len(pkts)-1].Timestamp)
		}
		pkts = append(pkts, ps...)
	}
	// Swap two neighbours and duplicate one: still every frame once, in order.
	pkts[5], pkts[6] = pkts[6], pkts[5]
	pkts = slices.Insert(pkts, 10, pkts[9])
	got, _, failed := receive(t, KindAudio, newTestReceiver(t, secret), pkts)
	if failed != 0 || !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("got %d frames (%d failed), want %d equal frames", len(got), failed, len(want))
	}

	// Another channel secret opens nothing, and every failure is counted.
	got, _, failed = receive(t, KindAudio, newTestReceiver(t, testSecret(2)), pkts)
	if len(got) != 0 || failed != len(want) {
		t.Fatalf("wrong secret: %d frames opened, %d failed; want 0, %d", len(got), failed, len(want))
	}
}

// vp8Stream seals and packetizes frames; it returns the packets and, per frame, the indexes of its packets.
func vp8Stream(t *testing.T, secret *sframe.Key, start uint16, frames [][]byte) (pkts []*rtp.Packet, byFrame [][]int) {
	t.Helper()
	s := newTestSender(t, secret)
	pk := fixedPacketizer(KindVideo, start)
	for _, f := range frames {
		wire, err := s.Seal(nil, media.VP8, f)
		if err != nil {
			t.Fatal(err)
		}
		var idx []int
		for _, p := range pk.packetize(wire, time.Second/30) {
			idx = append(idx, len(pkts))
			pkts = append(pkts, p)
		}
		byFrame = append(byFrame, idx)
	}
	return pkts, byFrame
}

func TestVP8RoundTrip(t *testing.T) {
	secret := testSecret(3)
	frames := [][]byte{
		vp8Frame(true, 5000, 1), vp8Frame(false, 2500, 2), vp8Frame(false, 2900, 3),
		vp8Frame(false, 3000, 4), vp8Frame(false, 12, 5), vp8Frame(true, 4000, 6),
	}
	for _, tc := range []struct {
		name string
		// mutate changes the packet order or loses packets; byFrame gives each frame's packet indexes.
		mutate     func(pkts []*rtp.Packet, byFrame [][]int) []*rtp.Packet
		lostFrames []int
		// unseen are lost frames of which no packet arrived: nothing tells the receiver they existed.
		unseen int
	}{
		{"in order", nil, nil, 0},
		{"middle packet of frame 1 lost", func(p []*rtp.Packet, f [][]int) []*rtp.Packet {
			return slices.Delete(p, f[1][1], f[1][1]+1)
		}, []int{1}, 0},
		{"first packet of frame 3 lost", func(p []*rtp.Packet, f [][]int) []*rtp.Packet {
			return slices.Delete(p, f[3][0], f[3][0]+1)
		}, []int{3}, 0},
		{"marker packet of frame 0 lost", func(p []*rtp.Packet, f [][]int) []*rtp.Packet {
			last := f[0][len(f[0])-1]
			return slices.Delete(p, last, last+1)
		}, []int{0}, 0},
		{"end of frame 1 and start of frame 2 lost", func(p []*rtp.Packet, f [][]int) []*rtp.Packet {
			last := f[1][len(f[1])-1]
			return slices.Delete(p, last, f[2][0]+1)
		}, []int{1, 2}, 0},
		{"single-packet frame 4 lost", func(p []*rtp.Packet, f [][]int) []*rtp.Packet {
			return slices.Delete(p, f[4][0], f[4][0]+1)
		}, []int{4}, 1},
		{"reordered within and across frames", func(p []*rtp.Packet, f [][]int) []*rtp.Packet {
			p = slices.Clone(p)
			a, b := f[1][0], f[1][2]
			p[a], p[b] = p[b], p[a]
			c := f[2][len(f[2])-1]
			p[c], p[c+1] = p[c+1], p[c]
			return p
		}, nil, 0},
		{"duplicates", func(p []*rtp.Packet, f [][]int) []*rtp.Packet {
			p = slices.Insert(slices.Clone(p), f[3][1], p[f[3][0]])
			return append(p, p[0])
		}, nil, 0},
	} {
		// Every start value near the wraparound of the sequence number, and a plain one.
		for _, start := range []uint16{65528, 65530, 65532, 65533, 65534, 65535, 0, 1000} {
			pkts, byFrame := vp8Stream(t, secret, start, frames)
			if len(byFrame[0]) < 4 {
				t.Fatalf("a 5000-byte frame became %d packets", len(byFrame[0]))
			}
			if tc.mutate != nil {
				pkts = tc.mutate(pkts, byFrame)
			}
			got, incomplete, failed := receive(t, KindVideo, newTestReceiver(t, secret), pkts)
			var want [][]byte
			for i, f := range frames {
				if !slices.Contains(tc.lostFrames, i) {
					want = append(want, f)
				}
			}
			if failed != 0 || incomplete != len(tc.lostFrames)-tc.unseen || !slices.EqualFunc(got, want, bytes.Equal) {
				t.Errorf("%s, start %d: got %d frames, %d incomplete, %d failed; want %d frames, %d incomplete",
					tc.name, start, len(got), incomplete, failed, len(want), len(tc.lostFrames)-tc.unseen)
			}
		}
	}
}

func TestVP8KeyframeAndTimestamps(t *testing.T) {
	secret := testSecret(4)
	frames := [][]byte{vp8Frame(true, 3000, 1), vp8Frame(false, 100, 2), vp8Frame(false, 100, 3), vp8Frame(false, 100, 4)}
	pkts, byFrame := vp8Stream(t, secret, 7, frames)
	var stamps []uint32
	for _, idx := range byFrame {
		stamps = append(stamps, pkts[idx[0]].Timestamp)
		for _, i := range idx {
			if pkts[i].Timestamp != stamps[len(stamps)-1] {
				t.Fatal("packets of one frame have different timestamps")
			}
		}
		if !pkts[idx[len(idx)-1]].Marker {
			t.Fatal("last packet of a frame has no marker")
		}
	}
	// time.Second/30 is 33333333 ns: 2999.99997 ticks at 90 kHz, the fraction carried to the next frame.
	for i := 1; i < len(stamps); i++ {
		if d := stamps[i] - stamps[i-1]; d != 2999 && d != 3000 {
			t.Fatalf("timestamp steps %v", stamps)
		}
	}
	// The clear prefix lets anyone see a key frame, and nothing more: the rest is ciphertext.
	var vp codecs.VP8Packet
	first, _ := vp.Unmarshal(pkts[0].Payload)
	if first[0]&1 != 0 || !bytes.Equal(first[:10], frames[0][:10]) || bytes.Contains(first, frames[0][10:40]) {
		t.Fatal("key frame clear prefix wrong, or plaintext beyond it")
	}
}

func TestPacketizerDurationRemainder(t *testing.T) {
	pk := fixedPacketizer(KindVideo, 0)
	var first, last uint32
	for i := range 30 {
		ps := pk.packetize(vp8Frame(false, 50, 1), time.Second/29) // 3103.44... ticks
		if i == 0 {
			first = ps[0].Timestamp
		}
		last = ps[0].Timestamp
	}
	// 29 steps of 1/29 s: 90000 ticks give or take the fraction not yet carried.
	if d := last - first; d < 89999 || d > 90000 {
		t.Fatalf("29 frames of 1/29 s span %d ticks, want 90000", d)
	}
}

func TestDataRoundTrip(t *testing.T) {
	secret := testSecret(5)
	s := newTestSender(t, secret)
	r := newTestReceiver(t, secret)
	for _, msg := range [][]byte{{}, []byte("hello"), bytes.Repeat([]byte{0xab}, MaxDataMessage-64)} {
		wire, err := s.Seal(nil, media.Data, msg)
		if err != nil {
			t.Fatal(err)
		}
		if len(msg) > 0 && bytes.Contains(wire, msg) {
			t.Fatal("plaintext on the wire")
		}
		frame := protocol.AppendDataFrame(nil, "TR_data", wire)
		id, payload, err := protocol.ParseDataFrame(frame)
		if err != nil || id != "TR_data" {
			t.Fatal(id, err)
		}
		out, err := r.Open(nil, media.Data, payload)
		if err != nil || !bytes.Equal(out, msg) {
			t.Fatalf("Open = %d bytes, %v", len(out), err)
		}
		// A replay is refused.
		if _, err := r.Open(nil, media.Data, payload); !errors.Is(err, sframe.ErrReplay) {
			t.Fatalf("replayed message: %v", err)
		}
	}
}

// TestReorderWraparound checks the reorder stage alone at every start value around the wraparound: a shuffled
// window comes out in order, and a real loss is skipped after hold packets.
func TestReorderWraparound(t *testing.T) {
	for start := 65500; start < 65536+40; start++ {
		s := uint16(start)
		var in []*rtp.Packet
		for i := range 20 {
			in = append(in, &rtp.Packet{Header: rtp.Header{SequenceNumber: s + uint16(i)}})
		}
		lostSeq := s + 12
		in = slices.DeleteFunc(slices.Clone(in), func(p *rtp.Packet) bool { return p.SequenceNumber == lostSeq })
		in[2], in[4] = in[4], in[2]
		in[7], in[8] = in[8], in[7]
		r := reorder{hold: 4}
		var out []uint16
		var losses int
		for _, p := range in {
			r.push(p, time.Time{}, func(p *rtp.Packet, lost bool) {
				out = append(out, p.SequenceNumber)
				if lost {
					losses++
				}
			})
		}
		r.flush(func(p *rtp.Packet, lost bool) {
			out = append(out, p.SequenceNumber)
			if lost {
				losses++
			}
		})
		if len(out) != 19 || losses != 1 {
			t.Fatalf("start %d: %d packets out, %d losses", start, len(out), losses)
		}
		for i := 1; i < len(out); i++ {
			if int16(out[i]-out[i-1]) <= 0 {
				t.Fatalf("start %d: out of order: %v", start, out)
			}
		}
	}
}

// TestReorderWait: a loss is given up on once the first held packet has waited long enough, even when few
// packets follow it.
func TestReorderWait(t *testing.T) {
	r := reorder{hold: 100, wait: 50 * time.Millisecond}
	var out []uint16
	var losses int
	emit := func(p *rtp.Packet, lost bool) {
		out = append(out, p.SequenceNumber)
		if lost {
			losses++
		}
	}
	t0 := time.Unix(1000, 0)
	pkt := func(seq uint16) *rtp.Packet { return &rtp.Packet{Header: rtp.Header{SequenceNumber: seq}} }
	r.push(pkt(10), t0, emit)
	r.push(pkt(12), t0.Add(10*time.Millisecond), emit) // 11 is missing
	r.push(pkt(13), t0.Add(30*time.Millisecond), emit)
	if len(out) != 1 {
		t.Fatalf("released %v before the wait", out)
	}
	r.push(pkt(14), t0.Add(60*time.Millisecond), emit)
	if !slices.Equal(out, []uint16{10, 12, 13, 14}) || losses != 1 {
		t.Fatalf("out %v, %d losses", out, losses)
	}
	// A late 11 is dropped; the stream goes on.
	r.push(pkt(11), t0.Add(70*time.Millisecond), emit)
	r.push(pkt(15), t0.Add(80*time.Millisecond), emit)
	if !slices.Equal(out, []uint16{10, 12, 13, 14, 15}) {
		t.Fatalf("out %v", out)
	}
}

// FuzzReceive: whatever happens to the packets (loss, reordering, duplication), the receiving path never panics,
// delivers only frames that were sent, each at most once and in order.
func FuzzReceive(f *testing.F) {
	f.Add(uint64(1), uint16(65530), uint8(10))
	f.Add(uint64(2), uint16(0), uint8(60))
	f.Fuzz(func(t *testing.T, seed uint64, start uint16, damage uint8) {
		rng := rand.New(rand.NewPCG(seed, 0))
		secret := testSecret(9)
		var frames [][]byte
		for i := range 12 {
			frames = append(frames, vp8Frame(i%5 == 0, 10+rng.IntN(4000), byte(i)))
		}
		pkts, _ := vp8Stream(t, secret, start, frames)
		for range int(damage) % 40 {
			i, j := rng.IntN(len(pkts)), rng.IntN(len(pkts))
			switch rng.IntN(3) {
			case 0:
				pkts = slices.Delete(pkts, i, i+1)
			case 1:
				pkts[i], pkts[j] = pkts[j], pkts[i]
			case 2:
				pkts = slices.Insert(pkts, i, pkts[j])
			}
			if len(pkts) == 0 {
				return
			}
		}
		got, _, failed := receive(t, KindVideo, newTestReceiver(t, secret), pkts)
		if failed != 0 {
			t.Fatalf("%d frames failed to decrypt: a frame was assembled from the wrong packets", failed)
		}
		next := 0
		for _, g := range got {
			for next < len(frames) && !bytes.Equal(frames[next], g) {
				next++
			}
			if next == len(frames) {
				t.Fatal("a delivered frame was not sent, or came out of order or twice")
			}
			next++
		}
	})
}
