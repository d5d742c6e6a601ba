package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stoa-rtc/stoa/internal/busauth"
	"github.com/stoa-rtc/stoa/internal/clustertest"
)

// network is a bus authority and what trusts it.
type network struct {
	a     *busauth.Authority
	trust *busauth.Verifier
}

func newNetwork(t testing.TB) *network {
	t.Helper()
	a, err := busauth.New()
	if err != nil {
		t.Fatal(err)
	}
	return &network{a: a, trust: busauth.NewVerifier(a.Account())}
}

func (n *network) creds(t testing.TB, id busauth.Identity) *busauth.Credentials {
	t.Helper()
	b, err := n.a.Issue(id, "stoa")
	if err != nil {
		t.Fatal(err)
	}
	c, err := busauth.ParseCredentials(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func edgeID(region, id string) busauth.Identity {
	return busauth.Identity{Role: busauth.RoleEdge, Regions: []string{region}, ID: id}
}

// node is a transport under test with what it accepted.
type node struct {
	*Transport
	reg      *prometheus.Registry
	accepted chan accepted
	// accept decides on each link; by default it accepts with a new recorder.
	mu     sync.Mutex
	accept func(l *Link, appID, channel string) (Handler, error)
}

type accepted struct {
	link           *Link
	appID, channel string
	rec            *recorder
}

// transport starts a transport of edge region/id on a random loopback port; t.Cleanup closes it.
func (n *network) transport(t testing.TB, region, id string, opts ...func(*Config)) *node {
	t.Helper()
	nd := &node{reg: prometheus.NewRegistry(), accepted: make(chan accepted, 16)}
	cfg := Config{Region: region, EdgeID: id, Addr: "127.0.0.1:0", Credentials: n.creds(t, edgeID(region, id)),
		Trust: n.trust, Metrics: nd.reg, Accept: nd.acceptLink}
	for _, o := range opts {
		o(&cfg)
	}
	newT := New
	if cfg.check() != nil {
		newT = start // credentials New would refuse, for the tests of refusals
	}
	tr, err := newT(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nd.Transport = tr
	t.Cleanup(func() { tr.Close() })
	return nd
}

func (nd *node) acceptLink(l *Link, appID, channel string) (Handler, error) {
	nd.mu.Lock()
	f := nd.accept
	nd.mu.Unlock()
	if f != nil {
		return f(l, appID, channel)
	}
	r := newRecorder()
	nd.accepted <- accepted{l, appID, channel, r}
	return r, nil
}

func (nd *node) setAccept(f func(l *Link, appID, channel string) (Handler, error)) {
	nd.mu.Lock()
	nd.accept = f
	nd.mu.Unlock()
}

func withCreds(c *busauth.Credentials) func(*Config) {
	return func(cfg *Config) { cfg.Credentials = c }
}

// peer is how others reach nd.
func (nd *node) peer() Peer {
	return Peer{Region: nd.cfg.Region, EdgeID: nd.cfg.EdgeID, Addr: nd.Addr().String()}
}

func (nd *node) next(t testing.TB) accepted {
	t.Helper()
	select {
	case a := <-nd.accepted:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no link accepted")
		return accepted{}
	}
}

func open(t testing.TB, from *node, to Peer, h Handler) *Link {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := from.Open(ctx, to, "app", "room", h)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// recorder is a Handler that records what it is told.
type recorder struct {
	mu        sync.Mutex
	events    []string
	rtp       map[string]map[uint16]int // track → RTP sequence number → deliveries
	nrtp      int
	keyframes []string
	onRTP     func(trackID string, pkt []byte)
	closed    chan error
	calls     int // Closed calls
}

func newRecorder() *recorder {
	return &recorder{rtp: map[string]map[uint16]int{}, closed: make(chan error, 1)}
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *recorder) Joined(uid string)       { r.add("joined %s", uid) }
func (r *recorder) Left(uid, reason string) { r.add("left %s %s", uid, reason) }
func (r *recorder) Published(t TrackInfo)   { r.add("published %s %s %s", t.ID, t.UID, t.Kind) }
func (r *recorder) Unpublished(id string)   { r.add("unpublished %s", id) }
func (r *recorder) Data(id string, m []byte) {
	r.add("data %s %s", id, m)
}

// KeyframeRequest is recorded apart: requests go ahead of other messages.
func (r *recorder) KeyframeRequest(id string) {
	r.mu.Lock()
	r.keyframes = append(r.keyframes, id)
	r.mu.Unlock()
}

func (r *recorder) RTP(id string, pkt []byte) {
	r.mu.Lock()
	if r.rtp[id] == nil {
		r.rtp[id] = map[uint16]int{}
	}
	r.rtp[id][uint16(pkt[2])<<8|uint16(pkt[3])]++
	r.nrtp++
	f := r.onRTP
	r.mu.Unlock()
	if f != nil {
		f(id, pkt)
	}
}

func (r *recorder) Closed(err error) {
	r.mu.Lock()
	r.calls++
	r.mu.Unlock()
	r.closed <- err
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func (r *recorder) rtpCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nrtp
}

// waitEvents waits until the recorder has seen want (in order, as a prefix of what follows its first n events).
func (r *recorder) waitEvents(t testing.TB, want ...string) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		got := r.snapshot()
		if len(got) < len(want) {
			return fmt.Errorf("events %q, want %q", got, want)
		}
		if strings.Join(got[:len(want)], "\n") != strings.Join(want, "\n") {
			return fmt.Errorf("events %q, want %q", got, want)
		}
		return nil
	})
}

func (r *recorder) waitClosed(t testing.TB) error {
	t.Helper()
	select {
	case err := <-r.closed:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("handler not closed")
		return nil
	}
}

// eventually polls cond until it returns nil, failing the test after d.
func eventually(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	clustertest.Eventually(t, d, cond)
}

// rtpPacket builds an RTP packet of size bytes with sequence number seq.
func rtpPacket(seq uint16, size int) []byte {
	p := make([]byte, size)
	p[0] = 0x80
	p[1] = 96
	p[2], p[3] = byte(seq>>8), byte(seq)
	return p
}

func mustErr(t testing.TB, err error, target error, contains string) {
	t.Helper()
	if err == nil || (target != nil && !errors.Is(err, target)) || !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %v, want %v containing %q", err, target, contains)
	}
}
