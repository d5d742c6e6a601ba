package relay

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/clustertest"
)

// TestHealth: a peer that goes silent (the path drops everything) is found by the health check, and every link
// on the connection ends at both ends.
func TestHealth(t *testing.T) {
	t.Cleanup(clustertest.Goroutines(t))
	n := newNetwork(t)
	fast := func(c *Config) { c.HealthInterval, c.HealthTimeout = 50*time.Millisecond, 500*time.Millisecond }
	a, b := n.transport(t, "eu", "e1", fast), n.transport(t, "eu", "e2", fast)
	proxy := newUDPProxy(t, b.Addr().String(), impairment{}, 1)
	peer := b.peer()
	peer.Addr = proxy.addr()
	recA := newRecorder()
	open(t, a, peer, recA)
	recB := b.next(t).rec
	eventually(t, 10*time.Second, func() error {
		if s := a.Links(); len(s) != 1 || s[0].RTT == 0 {
			return fmt.Errorf("no RTT measured: %+v", s)
		}
		return nil
	})
	proxy.setBlackhole(true)
	for name, r := range map[string]*recorder{"A": recA, "B": recB} {
		if err := r.waitClosed(t); err == nil || !strings.Contains(err.Error(), "answered no health check") {
			t.Errorf("%s's handler closed with %v", name, err)
		}
	}
	eventually(t, 5*time.Second, func() error {
		if n := conns(a) + conns(b); n != 0 {
			return fmt.Errorf("%d connections left", n)
		}
		return nil
	})
}

// TestWAN relays a realistic stream (audio at 50 packets/s, 30 fps video of 1100-byte packets with a keyframe
// every two seconds: about 700 kbit/s, and about 4.4 Mbit/s, several publishers' worth) across a path with 80 ms
// RTT, ±10 ms jitter and 2% loss each way. With recovery nearly every packet arrives; without, the loss shows.
func TestWAN(t *testing.T) {
	if testing.Short() {
		t.Skip("a 10 s stream")
	}
	t.Cleanup(clustertest.Goroutines(t))
	imp := impairment{delay: 40 * time.Millisecond, jitter: 10 * time.Millisecond, loss: 0.02}
	for _, tc := range []struct {
		name       string
		frameBytes int
		noRecovery bool
	}{{"0.7 Mbit/s recovery", 2600, false}, {"0.7 Mbit/s no recovery", 2600, true}, {"4 Mbit/s recovery", 17000, false}} {
		t.Run(tc.name, func(t *testing.T) {
			res := runWAN(t, imp, tc.noRecovery, tc.frameBytes)
			t.Logf("%s (%.2f Mbit/s): %d/%d packets delivered (%.2f%%); one-way latency p50 %s, p99 %s, max %s (the path adds 40±10 ms); "+
				"sender: %d retransmitted, %d dropped; receiver: %d recovered, %d lost, loss on first arrival %.2f%%, RTT %s",
				tc.name, res.mbits, res.delivered, res.sent, 100*res.ratio(), res.p50, res.p99, res.max, res.sender.Retransmitted,
				res.sender.Dropped, res.receiver.Recovered, res.receiver.Lost, 100*res.receiver.Loss, res.receiver.RTT)
			if tc.noRecovery {
				if res.ratio() >= 0.995 || res.receiver.Retransmitted+res.sender.Retransmitted != 0 {
					t.Errorf("without recovery %.2f%% delivered, %d retransmitted: the path is not lossy, or recovery ran",
						100*res.ratio(), res.sender.Retransmitted)
				}
				return
			}
			if res.ratio() < 0.995 {
				t.Errorf("with recovery only %.2f%% delivered", 100*res.ratio())
			}
			if res.receiver.Recovered == 0 {
				t.Error("nothing recovered")
			}
			// About 2% of the hundreds of packets in the window: far from both bounds.
			if l := res.receiver.Loss; l < 0.003 || l > 0.06 {
				t.Errorf("loss on first arrival %.2f%% over a path losing 2%%", 100*l)
			}
		})
	}
}

type wanResult struct {
	sent, delivered  int
	mbits            float64 // the stream's rate, without retransmissions
	p50, p99, max    time.Duration
	sender, receiver Stats
}

func (r wanResult) ratio() float64 { return float64(r.delivered) / float64(r.sent) }

// runWAN sends the stream from A to B through an impaired path and measures what B's handler gets; frameBytes
// is the size of a video P frame (keyframes are twice that, at least 15000 bytes).
func runWAN(t *testing.T, imp impairment, noRecovery bool, frameBytes int) wanResult {
	n := newNetwork(t)
	opt := func(c *Config) { c.NoRecovery = noRecovery }
	a, b := n.transport(t, "eu", "e1", opt), n.transport(t, "us", "e2", opt)
	proxy := newUDPProxy(t, b.Addr().String(), imp, 42)
	peer := b.peer()
	peer.Addr = proxy.addr()
	la := open(t, a, peer, newRecorder())
	acc := b.next(t)
	recB := acc.rec

	// Each packet carries its stream index and send time after the RTP header; markers (index ≥ total) only
	// keep the sequence moving after the stream, so that losses at its end are found too.
	var mu sync.Mutex
	arrived := map[uint64]time.Duration{}
	recB.mu.Lock()
	recB.onRTP = func(_ string, pkt []byte) {
		idx := binary.BigEndian.Uint64(pkt[12:])
		sent := time.Unix(0, int64(binary.BigEndian.Uint64(pkt[20:])))
		mu.Lock()
		if _, dup := arrived[idx]; dup {
			t.Errorf("packet %d delivered twice", idx)
		}
		arrived[idx] = time.Since(sent)
		mu.Unlock()
	}
	recB.mu.Unlock()
	audio, err := la.Publish(TrackInfo{ID: "a", UID: "u", Kind: "audio"})
	if err != nil {
		t.Fatal(err)
	}
	video, err := la.Publish(TrackInfo{ID: "v", UID: "u", Kind: "video"})
	if err != nil {
		t.Fatal(err)
	}
	recB.waitEvents(t, "published a u audio", "published v u video")

	var idx, bytes uint64
	var seqA, seqV uint16
	send := func(o *OutTrack, seq *uint16, size int) {
		bytes += uint64(size)
		p := rtpPacket(*seq, size)
		*seq++
		binary.BigEndian.PutUint64(p[12:], idx)
		binary.BigEndian.PutUint64(p[20:], uint64(time.Now().UnixNano()))
		idx++
		o.WriteRTP(p)
	}
	const duration = 10 * time.Second
	audioTick, videoTick := time.NewTicker(20*time.Millisecond), time.NewTicker(time.Second/30)
	defer audioTick.Stop()
	defer videoTick.Stop()
	frame := 0
	for end := time.Now().Add(duration); time.Now().Before(end); {
		select {
		case <-audioTick.C:
			send(audio, &seqA, 160)
		case <-videoTick.C:
			size := frameBytes
			if frame%60 == 0 {
				size = max(15000, 2*frameBytes) // a keyframe
			}
			frame++
			for ; size > 0; size -= 1100 {
				send(video, &seqV, min(size, 1100)+28)
			}
		}
	}
	total, mbits := idx, float64(bytes)*8/duration.Seconds()/1e6
	lastA, lastV := seqA-1, seqV-1

	// Markers until B has settled every packet of the stream: received, or given up on.
	settled := func() bool {
		l := acc.link
		l.inMu.Lock()
		defer l.inMu.Unlock()
		for _, it := range l.in {
			last := lastA
			if it.id == "v" {
				last = lastV
			}
			if it.rt.next <= uint64(last) {
				return false
			}
			for s := range it.rt.missing {
				if s <= uint64(last) {
					return false
				}
			}
		}
		return true
	}
	deadline := time.Now().Add(30 * time.Second)
	for !settled() {
		if time.Now().After(deadline) {
			t.Fatal("the stream did not settle in 30 s")
		}
		<-audioTick.C
		send(audio, &seqA, 160)
		send(video, &seqV, 160)
	}

	mu.Lock()
	defer mu.Unlock()
	var lat []time.Duration
	for i, d := range arrived {
		if i < total {
			lat = append(lat, d)
		}
	}
	if len(lat) == 0 {
		t.Fatal("nothing arrived")
	}
	slices.Sort(lat)
	sender, receiver := la.Stats(), acc.link.Stats()
	return wanResult{mbits: mbits, sent: int(total), delivered: len(lat), p50: lat[len(lat)/2], p99: lat[len(lat)*99/100],
		max: lat[len(lat)-1], sender: sender, receiver: receiver}
}
