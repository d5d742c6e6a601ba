package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/internal/protocol"
	"github.com/stoa-rtc/stoa/internal/rtc"
	"github.com/stoa-rtc/stoa/token"
)

const (
	testApp  = "0123456789abcdef0123456789abcdef"
	testCert = "fedcba9876543210fedcba9876543210"
)

// fakeClock is a Clock that moves only when told to.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// Advance moves the clock and fires, in time order, every timer that became due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		if t.stopped {
			continue
		}
		if !t.at.After(c.now) {
			t.stopped = true
			due = append(due, t)
		} else {
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

type testEdge struct {
	srv    *Server
	url    string
	clock  *fakeClock
	events chan Event
}

// startEdge runs an edge on random loopback ports with a fake clock; it stops when the test ends and the test
// fails if goroutines are left behind.
func startEdge(t *testing.T, mod ...func(*Config)) *testEdge {
	t.Helper()
	before := runtime.NumGoroutine()
	clock := newFakeClock()
	v := token.NewVerifier(token.WithClock(clock.Now))
	v.SetCertificates(testApp, testCert)
	e := &testEdge{clock: clock, events: make(chan Event, 1000)}
	cfg := Config{Verifier: v, Clock: clock, Logger: slog.New(slog.NewTextHandler(testLogWriter{t}, nil)), Events: func(ev Event) {
		select {
		case e.events <- ev:
		default:
		}
	}}
	for _, m := range mod {
		m(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	e.srv, e.url = srv, "ws"+strings.TrimPrefix(hs.URL, "http")+"/v1/signal"
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		hs.Close()
		waitFor(t, 10*time.Second, "goroutines to stop", func() bool { return runtime.NumGoroutine() <= before+2 })
	})
	return e
}

func (e *testEdge) token(t *testing.T, channel, uid string, privs map[token.Privilege]time.Duration) string {
	t.Helper()
	if privs == nil {
		privs = map[token.Privilege]time.Duration{1: time.Hour, 2: time.Hour, 3: time.Hour, 4: time.Hour}
	}
	s, err := token.BuildRTC(testCert, token.RTCOptions{AppID: testApp, Channel: channel, UID: uid,
		Expire: 2 * time.Hour, Privileges: privs, IssuedAt: e.clock.Now(), Salt: 7})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testClient is a minimal client of the protocol, enough to drive the edge from tests: it answers subscriber
// offers by itself and queues every other message.
type testClient struct {
	t      *testing.T
	conn   *websocket.Conn
	mu     sync.Mutex
	queue  []*protocol.Message
	notify chan struct{}
	nextID uint32
	api    *webrtc.API
	pub    *webrtc.PeerConnection
	sub    *webrtc.PeerConnection
	tracks chan *webrtc.TrackRemote
	data   chan []byte
	closed chan struct{}
}

func (e *testEdge) dial(t *testing.T) *testClient {
	t.Helper()
	c, err := e.dialFrom(t, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dialFrom connects from a given loopback source address ("" for any), so tests can play several clients.
func (e *testEdge) dialFrom(t *testing.T, source string) (*testClient, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var opts *websocket.DialOptions
	if source != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
		opts = &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}}
	}
	conn, resp, err := websocket.Dial(ctx, e.url, opts)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("HTTP %d, Retry-After %q: %w", resp.StatusCode, resp.Header.Get("Retry-After"), err)
		}
		return nil, err
	}
	conn.SetReadLimit(1 << 20)
	c := &testClient{t: t, conn: conn, notify: make(chan struct{}, 1), tracks: make(chan *webrtc.TrackRemote, 16),
		data: make(chan []byte, 1024), closed: make(chan struct{})}
	c.api = clientAPI(t, webrtc.NetworkTypeUDP4)
	go c.read()
	t.Cleanup(c.close)
	return c, nil
}

func clientAPI(t *testing.T, network webrtc.NetworkType) *webrtc.API {
	m, _, err := rtc.MediaEngine()
	if err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{network})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se))
}

func (c *testClient) close() {
	c.conn.Close(websocket.StatusNormalClosure, "")
	<-c.closed
	if c.pub != nil {
		c.pub.Close()
	}
	if c.sub != nil {
		c.sub.Close()
	}
}

func (c *testClient) read() {
	defer close(c.closed)
	for {
		_, b, err := c.conn.Read(context.Background())
		if err != nil {
			return
		}
		m, err := protocol.Decode(b)
		if err != nil {
			c.t.Errorf("edge sent an invalid message: %v: %s", err, b)
			return
		}
		if m.Type == protocol.TypeOffer {
			c.answerSubscriber(m.Offer.SDP)
			continue
		}
		c.mu.Lock()
		c.queue = append(c.queue, m)
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
}

func (c *testClient) answerSubscriber(sdp string) {
	if c.sub == nil {
		pc, err := c.api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			c.t.Error(err)
			return
		}
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { c.tracks <- tr })
		pc.OnDataChannel(func(dc *webrtc.DataChannel) {
			dc.OnMessage(func(m webrtc.DataChannelMessage) {
				select {
				case c.data <- m.Data:
				default:
				}
			})
		})
		c.sub = pc
	}
	if err := c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		// Closed by the edge's DTLS close at the end of a test: fine (the state may not say so yet).
		if c.sub.ConnectionState() != webrtc.PeerConnectionStateClosed && !errors.Is(err, webrtc.ErrConnectionClosed) {
			c.t.Error(err)
		}
		return
	}
	answer, err := localDescription(c.sub, false)
	if err != nil {
		if !errors.Is(err, webrtc.ErrConnectionClosed) { // as above
			c.t.Error(err)
		}
		return
	}
	c.sendRaw(&protocol.Message{Type: protocol.TypeAnswer, Answer: &protocol.SDP{SDP: answer}})
}

func (c *testClient) sendRaw(m *protocol.Message) {
	b, err := protocol.Encode(m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendBytes(b)
}

func (c *testClient) sendBytes(b []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.conn.Write(ctx, websocket.MessageText, b) // errors show up as missing replies
}

// next returns the first queued message that match accepts, waiting up to 5 s.
func (c *testClient) next(match func(*protocol.Message) bool) (*protocol.Message, error) {
	deadline := time.After(5 * time.Second)
	for {
		c.mu.Lock()
		for i, m := range c.queue {
			if match(m) {
				c.queue = slices.Delete(c.queue, i, i+1)
				c.mu.Unlock()
				return m, nil
			}
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-c.closed:
			// Look once more: the message may have arrived just before the close.
			c.mu.Lock()
			for i, m := range c.queue {
				if match(m) {
					c.queue = slices.Delete(c.queue, i, i+1)
					c.mu.Unlock()
					return m, nil
				}
			}
			c.mu.Unlock()
			return nil, errors.New("connection closed")
		case <-deadline:
			return nil, errors.New("timed out")
		}
	}
}

// expect waits for the next message of type typ.
func (c *testClient) expect(typ protocol.Type) *protocol.Message {
	c.t.Helper()
	m, err := c.next(func(m *protocol.Message) bool { return m.Type == typ })
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", typ, err)
	}
	return m
}

// request sends m with a fresh id and returns the edge's reply to it.
func (c *testClient) request(m *protocol.Message) *protocol.Message {
	c.t.Helper()
	c.nextID++
	m.ID = c.nextID
	c.sendRaw(m)
	reply, err := c.next(func(r *protocol.Message) bool { return r.ID == m.ID })
	if err != nil {
		c.t.Fatalf("waiting for the reply to %s: %v", m.Type, err)
	}
	return reply
}

func (c *testClient) join(tok, channel, uid string) *protocol.Message {
	c.t.Helper()
	return c.request(&protocol.Message{Type: protocol.TypeJoin, Join: &protocol.Join{Version: 1, Token: tok,
		AppID: testApp, Channel: channel, UID: uid}})
}

// publish announces a track of kind and adds it to the publisher connection; it returns the local track (nil for
// data) and, for data, the open data channel.
func (c *testClient) publish(kind protocol.Kind) (string, *webrtc.TrackLocalStaticRTP, *webrtc.DataChannel) {
	c.t.Helper()
	reply := c.request(&protocol.Message{Type: protocol.TypePublish, Publish: &protocol.Publish{Kind: kind}})
	if reply.Type != protocol.TypeOK {
		c.t.Fatalf("publish %s: %+v", kind, reply.Error)
	}
	id := reply.OK.TrackID
	if c.pub == nil {
		pc, err := c.api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			c.t.Fatal(err)
		}
		c.pub = pc
	}
	var local *webrtc.TrackLocalStaticRTP
	var dc *webrtc.DataChannel
	var err error
	switch kind {
	case protocol.KindData:
		dc, err = c.pub.CreateDataChannel(id, nil)
	default:
		codec := rtc.Codec(kind == protocol.KindVideo).RTPCodecCapability
		local, err = webrtc.NewTrackLocalStaticRTP(codec, id, "stream")
		if err == nil {
			_, err = c.pub.AddTrack(local)
		}
	}
	if err != nil {
		c.t.Fatal(err)
	}
	opened := make(chan struct{})
	if dc != nil {
		dc.OnOpen(func() { close(opened) })
	}
	offer, err := localDescription(c.pub, true)
	if err != nil {
		c.t.Fatal(err)
	}
	answer := c.request(&protocol.Message{Type: protocol.TypeOffer, Offer: &protocol.SDP{SDP: offer}})
	if answer.Type != protocol.TypeAnswer {
		c.t.Fatalf("offer: %+v", answer.Error)
	}
	if err := c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer.Answer.SDP}); err != nil {
		c.t.Fatal(err)
	}
	if dc != nil {
		select {
		case <-opened:
		case <-time.After(10 * time.Second):
			c.t.Fatal("data channel did not open")
		}
	}
	return id, local, dc
}

func errCode(m *protocol.Message) string {
	if m.Type != protocol.TypeError {
		return fmt.Sprintf("(%s)", m.Type)
	}
	return string(m.Error.Code)
}

// testLogWriter sends the edge's logs to the test log.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
