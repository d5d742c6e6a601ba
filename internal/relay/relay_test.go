package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stoa-rtc/stoa/internal/busauth"
	"github.com/stoa-rtc/stoa/internal/clustertest"
	"github.com/stoa-rtc/stoa/internal/protocol"
)

// TestLink: everything one end sends arrives at the other, control messages in order, media once, and closing
// tells both handlers once.
func TestLink(t *testing.T) {
	t.Cleanup(clustertest.Goroutines(t))
	n := newNetwork(t)
	a, b := n.transport(t, "eu", "e1"), n.transport(t, "us", "e2")

	// What B's Accept sends goes after the ok, so A hears it.
	var outB *OutTrack
	b.setAccept(func(l *Link, appID, channel string) (Handler, error) {
		l.Join("bob")
		var err error
		if outB, err = l.Publish(TrackInfo{ID: "tb", UID: "bob", Kind: "video"}); err != nil {
			return nil, err
		}
		r := newRecorder()
		b.accepted <- accepted{l, appID, channel, r}
		return r, nil
	})
	recA := newRecorder()
	la := open(t, a, b.peer(), recA)
	acc := b.next(t)
	lb, recB := acc.link, acc.rec
	if acc.appID != "app" || acc.channel != "room" {
		t.Fatalf("accepted %q %q", acc.appID, acc.channel)
	}
	if p := la.Peer(); p != b.peer() {
		t.Errorf("A's link peer %+v, want %+v", p, b.peer())
	}
	if p := lb.Peer(); p.Region != "eu" || p.EdgeID != "e1" || p.Addr != a.Addr().String() {
		t.Errorf("B's link peer %+v", p)
	}
	recA.waitEvents(t, "joined bob", "published tb bob video")

	la.Join("alice")
	audio, err := la.Publish(TrackInfo{ID: "ta", UID: "alice", Kind: "audio"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := la.Publish(TrackInfo{ID: "td", UID: "alice", Kind: "data"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := la.Publish(TrackInfo{ID: "ta", UID: "alice", Kind: "audio"}); err == nil {
		t.Error("a track id published twice")
	}
	const packets = 200
	for i := range packets {
		audio.WriteRTP(rtpPacket(uint16(i), 200))
	}
	big := bytes.Repeat([]byte{'x'}, protocol.MaxDataMessage)
	data.SendData([]byte("m1"))
	data.SendData([]byte("m2"))
	data.SendData(append(big, 'y')) // too large: dropped
	la.RequestKeyframe("tb")
	la.RequestKeyframe("unknown") // not a track of the peer: nothing sent
	eventually(t, 10*time.Second, func() error {
		if n := recB.rtpCount(); n != packets {
			return fmt.Errorf("%d packets delivered", n)
		}
		return nil
	})
	audio.Unpublish()
	audio.WriteRTP(rtpPacket(packets, 200)) // after Unpublish: not sent
	la.Leave("alice", "left")
	recB.waitEvents(t, "joined alice", "published ta alice audio", "published td alice data", "data td m1",
		"data td m2", "unpublished ta", "left alice left")
	eventually(t, 10*time.Second, func() error {
		recB.mu.Lock()
		defer recB.mu.Unlock()
		if len(recB.keyframes) != 1 || recB.keyframes[0] != "tb" {
			return fmt.Errorf("keyframe requests %q", recB.keyframes)
		}
		return nil
	})
	for seq, n := range recB.rtp["ta"] {
		if n != 1 {
			t.Errorf("packet %d delivered %d times", seq, n)
		}
	}

	// B sends media to A too.
	for i := range 10 {
		outB.WriteRTP(rtpPacket(uint16(i), 1200))
	}
	eventually(t, 10*time.Second, func() error {
		if n := recA.rtpCount(); n != 10 {
			return fmt.Errorf("%d packets delivered", n)
		}
		return nil
	})
	sa, sb := la.Stats(), lb.Stats()
	// A burst of 200 may overflow quic-go's queue of 32 packets that are not QUIC: what B recovers was sent twice.
	if sa.PacketsSent-sa.Retransmitted != packets || sa.Retransmitted < sb.Recovered || sb.PacketsReceived != packets ||
		sa.BytesSent != sa.PacketsSent*200 || sb.Lost != 0 || sa.Dropped != 1 || sa.PacketsReceived != 10 ||
		sb.PacketsSent-sb.Retransmitted != 10 || sa.AppID != "app" || sa.Channel != "room" {
		t.Errorf("stats A %+v, B %+v", sa, sb)
	}
	if got := testutil.ToFloat64(b.m.packetsReceived.WithLabelValues("eu/e1")); got != packets {
		t.Errorf("B counted %v packets received from eu/e1", got)
	}
	if got := testutil.ToFloat64(a.m.links.WithLabelValues("us/e2")); got != 1 {
		t.Errorf("A counts %v links to us/e2", got)
	}
	if len(a.Links()) != 1 || len(b.Links()) != 1 {
		t.Errorf("links: A %v, B %v", a.Links(), b.Links())
	}

	// The large message in full.
	data.SendData(big)
	eventually(t, 10*time.Second, func() error {
		ev := recB.snapshot()
		if last := ev[len(ev)-1]; last != "data td "+string(big) {
			return fmt.Errorf("last event %.40q", last)
		}
		return nil
	})

	la.Close()
	if err := recA.waitClosed(t); !errors.Is(err, ErrClosed) {
		t.Errorf("A's handler closed with %v", err)
	}
	if err := recB.waitClosed(t); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "eu/e1") {
		t.Errorf("B's handler closed with %v", err)
	}
	<-la.Done()
	<-lb.Done()
	if _, err := la.Publish(TrackInfo{ID: "tx", UID: "alice", Kind: "audio"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish on a closed link: %v", err)
	}
	la.Close() // again: nothing
	if recA.calls != 1 || recB.calls != 1 {
		t.Errorf("Closed called %d and %d times", recA.calls, recB.calls)
	}
	eventually(t, 5*time.Second, func() error {
		if n := len(a.Links()) + len(b.Links()); n != 0 {
			return fmt.Errorf("%d links left", n)
		}
		return nil
	})
}

// TestLinksShareConnection: links to one peer use one connection, and the links of either end work side by side.
func TestLinksShareConnection(t *testing.T) {
	t.Cleanup(clustertest.Goroutines(t))
	n := newNetwork(t)
	a, b := n.transport(t, "eu", "e1"), n.transport(t, "eu", "e2")
	l1 := open(t, a, b.peer(), newRecorder())
	b.next(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l2, err := a.Open(ctx, b.peer(), "app", "other", newRecorder())
	if err != nil {
		t.Fatal(err)
	}
	b.next(t)
	recB := newRecorder()
	l3, err := b.Open(ctx, a.peer(), "app", "third", recB) // B opens on the connection A dialled
	if err != nil {
		t.Fatal(err)
	}
	acc := a.next(t)
	acc.link.Join("x")
	recB.waitEvents(t, "joined x")
	if l1.c != l2.c || l3.c.peer.key() != "eu/e1" || conns(a) != 1 || conns(b) != 1 {
		t.Errorf("connections: A %d, B %d", conns(a), conns(b))
	}
}

func conns(nd *node) int {
	nd.Transport.mu.Lock()
	defer nd.Transport.mu.Unlock()
	n := 0
	for _, cs := range nd.conns {
		n += len(cs)
	}
	return n
}

// TestAcceptRefuses: Open fails with Accept's reason, and the connection stays for other links.
func TestAcceptRefuses(t *testing.T) {
	t.Cleanup(clustertest.Goroutines(t))
	n := newNetwork(t)
	a, b := n.transport(t, "eu", "e1"), n.transport(t, "eu", "e2")
	b.setAccept(func(l *Link, appID, channel string) (Handler, error) {
		l.Join("never sent")
		if _, err := l.Publish(TrackInfo{ID: "t", UID: "u", Kind: "audio"}); err != nil {
			return nil, err
		}
		return nil, errors.New("channel not held by this edge")
	})
	h := newRecorder()
	_, err := a.Open(context.Background(), b.peer(), "app", "room", h)
	mustErr(t, err, ErrRefused, "channel not held by this edge")
	b.setAccept(nil)
	open(t, a, b.peer(), h)
	b.next(t)
	if h.calls != 0 || len(h.snapshot()) != 0 {
		t.Errorf("the refused link's handler was called: %q", h.snapshot())
	}
}

// TestRefusals: a peer that is not an edge of this network, or not the one dialled, is refused with a reason,
// counted, and Open says why.
func TestRefusals(t *testing.T) {
	t.Cleanup(clustertest.Goroutines(t))
	n, other := newNetwork(t), newNetwork(t)
	for _, tc := range []struct {
		name string
		// dialler and server credentials (nil: the node's own)
		client, server *busauth.Credentials
		dial           func(Peer) Peer // the peer A asks for
		refuser        string          // "a" or "b": which end refuses
		reason         string
		target         error
		says           string
	}{
		{name: "dispatcher dials", client: n.creds(t, busauth.Identity{Role: busauth.RoleDispatch, Regions: []string{"eu"}, ID: "e1"}),
			refuser: "b", reason: reasonNotEdge, target: ErrRefused, says: "do not make it edge"},
		{name: "console dials", client: n.creds(t, busauth.Identity{Role: busauth.RoleConsole}),
			refuser: "b", reason: reasonNotEdge, target: ErrRefused, says: "do not make it edge"},
		{name: "edge of another region dials", client: n.creds(t, edgeID("us", "e1")),
			refuser: "b", reason: reasonNotEdge, target: ErrRefused, says: "do not make it edge"},
		{name: "other authority dials", client: other.creds(t, edgeID("eu", "e1")),
			refuser: "b", reason: reasonUntrusted, target: ErrRefused, says: "not an edge of this network"},
		{name: "server claims another edge's id", server: n.creds(t, edgeID("eu", "e3")),
			refuser: "a", reason: reasonNotEdge, target: ErrUntrusted, says: "do not make it edge \"e2\""},
		{name: "server is a dispatcher", server: n.creds(t, busauth.Identity{Role: busauth.RoleDispatch, Regions: []string{"eu"}, ID: "e2"}),
			refuser: "a", reason: reasonNotEdge, target: ErrUntrusted, says: "do not make it edge"},
		{name: "server of another authority", server: other.creds(t, edgeID("eu", "e2")),
			refuser: "a", reason: reasonUntrusted, target: ErrUntrusted, says: "not an edge of this network"},
		{name: "server names another edge", dial: func(p Peer) Peer { p.EdgeID = "e9"; return p },
			refuser: "a", reason: reasonWrongPeer, target: ErrUntrusted, says: "dialled edge eu/e9, reached edge eu/e2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ao, bo []func(*Config)
			if tc.client != nil {
				ao = append(ao, withCreds(tc.client))
			}
			if tc.server != nil {
				bo = append(bo, withCreds(tc.server))
			}
			a, b := n.transport(t, "eu", "e1", ao...), n.transport(t, "eu", "e2", bo...)
			p := b.peer()
			if tc.dial != nil {
				p = tc.dial(p)
			}
			_, err := a.Open(context.Background(), p, "app", "room", newRecorder())
			mustErr(t, err, tc.target, tc.says)
			refuser := map[string]*node{"a": a, "b": b}[tc.refuser]
			eventually(t, 5*time.Second, func() error {
				if got := testutil.ToFloat64(refuser.m.refused.WithLabelValues(tc.reason)); got != 1 {
					return fmt.Errorf("refused{reason=%q} = %v", tc.reason, got)
				}
				return nil
			})
			if strings.Contains(err.Error(), a.cfg.Credentials.JWT()) {
				t.Error("the error shows the JWT")
			}
			eventually(t, 5*time.Second, func() error {
				if n := conns(a) + conns(b); n != 0 {
					return fmt.Errorf("%d connections after a refusal", n)
				}
				return nil
			})
		})
	}
}

// TestBackoff: after a failure Open fails at once until the backoff has passed, the delay doubles, and a
// success forgets it.
func TestBackoff(t *testing.T) {
	t.Cleanup(clustertest.Goroutines(t))
	n, other := newNetwork(t), newNetwork(t)
	a, b := n.transport(t, "eu", "e1"), n.transport(t, "eu", "e2")
	good := a.cfg.Credentials
	a.cfg.Credentials = other.creds(t, edgeID("eu", "e1"))
	refused := func() float64 { return testutil.ToFloat64(b.m.refused.WithLabelValues(reasonUntrusted)) }
	ctx := context.Background()
	_, err := a.Open(ctx, b.peer(), "app", "room", newRecorder())
	mustErr(t, err, ErrRefused, "not an edge")
	_, err = a.Open(ctx, b.peer(), "app", "room", newRecorder())
	mustErr(t, err, ErrBackoff, "not an edge") // at once, without dialling
	if !errors.Is(err, ErrRefused) {
		t.Errorf("the backoff error hides the failure: %v", err)
	}
	if got := refused(); got != 1 {
		t.Fatalf("B refused %v connections, want 1", got)
	}
	eventually(t, 10*time.Second, func() error {
		_, err := a.Open(ctx, b.peer(), "app", "room", newRecorder())
		if errors.Is(err, ErrBackoff) {
			return err
		}
		return nil
	})
	if got := refused(); got != 2 {
		t.Fatalf("B refused %v connections, want 2", got)
	}
	a.mu.Lock()
	delay := a.backoff[b.peer().key()+"@"+b.peer().Addr].delay
	a.mu.Unlock()
	if delay != 2*minBackoff {
		t.Errorf("delay after two failures %s, want %s", delay, 2*minBackoff)
	}
	a.cfg.Credentials = good
	eventually(t, 10*time.Second, func() error {
		_, err := a.Open(ctx, b.peer(), "app", "room", newRecorder())
		return err
	})
	b.next(t)
	a.mu.Lock()
	left := len(a.backoff)
	a.mu.Unlock()
	if left != 0 {
		t.Error("the backoff outlived a success")
	}
}

// TestTransportClose: closing a transport ends every link at both ends in order, and it can be used no more.
func TestTransportClose(t *testing.T) {
	t.Cleanup(clustertest.Goroutines(t))
	n := newNetwork(t)
	a, b := n.transport(t, "eu", "e1"), n.transport(t, "eu", "e2")
	recA := newRecorder()
	open(t, a, b.peer(), recA)
	recB := b.next(t).rec
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := recA.waitClosed(t); !errors.Is(err, ErrClosed) {
		t.Errorf("A's handler: %v", err)
	}
	if err := recB.waitClosed(t); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "shut down") {
		t.Errorf("B's handler: %v", err)
	}
	if _, err := a.Open(context.Background(), b.peer(), "app", "room", newRecorder()); !errors.Is(err, ErrClosed) {
		t.Errorf("Open after Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestProtocolViolation: a peer that breaks the protocol on a link loses the link, and is told why.
func TestProtocolViolation(t *testing.T) {
	t.Cleanup(clustertest.Goroutines(t))
	n := newNetwork(t)
	a, b := n.transport(t, "eu", "e1"), n.transport(t, "eu", "e2")
	recA := newRecorder()
	la := open(t, a, b.peer(), recA)
	recB := b.next(t).rec
	la.send(&frame{typ: frameData, track: 7, msg: []byte("x")}, false) // no track 7 was published
	if err := recB.waitClosed(t); err == nil || !strings.Contains(err.Error(), "not a data track") {
		t.Errorf("B's handler: %v", err)
	}
	if err := recA.waitClosed(t); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "not a data track") {
		t.Errorf("A's handler: %v", err)
	}
}

// TestOpenValidates: what cannot be sent is refused before any dial.
func TestOpenValidates(t *testing.T) {
	t.Cleanup(clustertest.Goroutines(t))
	n := newNetwork(t)
	a := n.transport(t, "eu", "e1")
	for _, tc := range []struct {
		peer           Peer
		appID, channel string
	}{
		{Peer{Region: "eu", EdgeID: "e2", Addr: "127.0.0.1:1"}, "", "room"},
		{Peer{Region: "eu", EdgeID: "e2", Addr: "127.0.0.1:1"}, "app", strings.Repeat("c", maxChannel+1)},
		{Peer{Region: "eu", EdgeID: "e2", Addr: "127.0.0.1:1"}, "app", "\xff"},
		{Peer{EdgeID: "e2", Addr: "127.0.0.1:1"}, "app", "room"},
		{a.peer(), "app", "room"},
	} {
		if _, err := a.Open(context.Background(), tc.peer, tc.appID, tc.channel, newRecorder()); err == nil {
			t.Errorf("Open(%+v, %q, %q) succeeded", tc.peer, tc.appID, tc.channel)
		}
	}
	if _, err := New(Config{Region: "eu", EdgeID: "e2", Addr: "127.0.0.1:0", Credentials: a.cfg.Credentials,
		Trust: n.trust, Accept: a.acceptLink}); err == nil {
		t.Error("New accepted credentials of another edge")
	}
}

// TestMediaSize: an RTP packet of maxRTPPacket bytes arrives (in a media packet within the 1452 bytes a 1500-byte
// path carries), and one byte more is dropped and counted.
func TestMediaSize(t *testing.T) {
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
	out.WriteRTP(rtpPacket(0, maxRTPPacket+1))
	out.WriteRTP(rtpPacket(1, maxRTPPacket))
	eventually(t, 10*time.Second, func() error {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if rec.rtp["v"][1] != 1 || testutil.ToFloat64(a.m.dropped.WithLabelValues("eu/e2", dropSize)) != 1 {
			return fmt.Errorf("delivered %v, dropped %v", rec.rtp["v"], la.Stats().Dropped)
		}
		return nil
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.rtp["v"][0] != 0 {
		t.Error("a packet larger than maxRTPPacket arrived")
	}
}

// TestIdleConnection: the dialler closes a connection left without links, and the next Open dials again.
func TestIdleConnection(t *testing.T) {
	t.Cleanup(clustertest.Goroutines(t))
	n := newNetwork(t)
	a, b := n.transport(t, "eu", "e1"), n.transport(t, "eu", "e2")
	a.idleTimeout = 100 * time.Millisecond // read by the connection's goroutines, which Open starts
	rec := newRecorder()
	l := open(t, a, b.peer(), rec)
	b.next(t)
	l.Close()
	rec.waitClosed(t)
	eventually(t, 10*time.Second, func() error {
		if n := conns(a) + conns(b); n != 0 {
			return fmt.Errorf("%d connections", n)
		}
		return nil
	})
	open(t, a, b.peer(), newRecorder())
	b.next(t)
}
