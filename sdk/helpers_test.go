package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/internal/protocol"
)

// waitFor polls cond until it holds or the deadline passes: tests never sleep to synchronize.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronization
	}
}

// expectEvent returns the next event of type T from c, skipping others; it fails after timeout.
func expectEvent[T Event](t testing.TB, c *Client, timeout time.Duration) T {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-c.Events():
			if !ok {
				var zero T
				t.Fatalf("events closed while waiting for %T", zero)
			}
			if v, ok := e.(T); ok {
				return v
			}
			t.Logf("skipping event %T %+v", e, e)
		case <-timer.C:
			var zero T
			t.Fatalf("no %T within %v", zero, timeout)
		}
	}
}

// checkLeaks records the goroutines running now; the returned function fails the test if, within a few seconds,
// goroutines started since are still running. Call it after closing everything the test started.
func checkLeaks(t testing.TB) func() {
	t.Helper()
	before := goroutineIDs()
	return func() {
		t.Helper()
		var extra []string
		deadline := time.Now().Add(5 * time.Second)
		for {
			extra = extra[:0]
			for id, stack := range goroutineStacks() {
				if !before[id] && !strings.Contains(stack, "testing.(*T).Run") && !strings.Contains(stack, "testing.tRunner") {
					extra = append(extra, stack)
				}
			}
			if len(extra) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if len(extra) > 0 {
			t.Errorf("%d goroutines leaked:\n%s", len(extra), strings.Join(extra, "\n\n"))
		}
	}
}

func goroutineIDs() map[string]bool {
	ids := map[string]bool{}
	for id := range goroutineStacks() {
		ids[id] = true
	}
	return ids
}

func goroutineStacks() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		fields := strings.Fields(header) // goroutine 12 [running]:
		if len(fields) >= 2 {
			out[fields[1]] = g
		}
	}
	return out
}

// testLogger logs to the test output with -v and STOA_TEST_LOG=1, and nowhere otherwise.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("STOA_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// fakeEdge is a dispatcher and an edge's signaling in one httptest server, built on internal/protocol: enough of
// the protocol to test the client without an edge. Its answers to publisher offers come from a real Pion peer
// connection, so SDP handling is real; by default it answers everything the way an edge does.
type fakeEdge struct {
	t   testing.TB
	srv *httptest.Server
	api *webrtc.API

	// hook, if set, sees every client message first; it returns true when it has handled the message.
	hook func(fc *fakeConn, m *protocol.Message) bool
	// joined, if set, builds the answer to a join.
	joined func(fc *fakeConn, j *protocol.Join) *protocol.Joined
	// edges, if set, are the edges the dispatcher returns (default: this server).
	edges []Edge

	mu       sync.Mutex
	conns    []*fakeConn
	received []*protocol.Message
	tracks   int
}

// fakeConn is one client connection to the fake edge.
type fakeConn struct {
	e   *fakeEdge
	ws  *websocket.Conn
	ctx context.Context
	mu  sync.Mutex
	pcs []*webrtc.PeerConnection
}

const (
	testAppID   = "0123456789abcdef0123456789abcdef"
	testTicket  = "ticket-for-e1-e2-e3"
	testChannel = "room-1"
)

func newFakeEdge(t testing.TB) *fakeEdge {
	t.Helper()
	api, err := newAPI(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	e := &fakeEdge{t: t, api: api}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/dispatch", e.serveDispatch)
	mux.HandleFunc("GET /v1/signal", e.serveSignal)
	e.srv = httptest.NewServer(mux)
	return e
}

// close ends every connection and peer connection, then the server.
func (e *fakeEdge) close() {
	e.mu.Lock()
	conns := e.conns
	e.mu.Unlock()
	for _, fc := range conns {
		fc.ws.CloseNow()
		fc.closePCs()
	}
	e.srv.Close()
}

func (e *fakeEdge) signalURL() string {
	return "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/v1/signal"
}

func (e *fakeEdge) serveDispatch(w http.ResponseWriter, r *http.Request) {
	var req dispatchRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Token == "" {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"code":"bad_request","message":"bad body"}}`)
		return
	}
	edges := e.edges
	if edges == nil {
		edges = []Edge{{ID: "e1", Region: "local", URL: e.signalURL()}}
	}
	json.NewEncoder(w).Encode(dispatchAnswer{Region: "local", Ticket: testTicket, Edges: edges})
}

func (e *fakeEdge) serveSignal(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	fc := &fakeConn{e: e, ws: ws, ctx: r.Context()}
	e.mu.Lock()
	e.conns = append(e.conns, fc)
	e.mu.Unlock()
	defer fc.closePCs()
	defer ws.CloseNow()
	for {
		typ, b, err := ws.Read(r.Context())
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			e.t.Errorf("client sent a binary message")
			return
		}
		m, err := protocol.Decode(b)
		if err != nil {
			e.t.Errorf("client sent an invalid message: %v: %s", err, b)
			return
		}
		e.mu.Lock()
		e.received = append(e.received, m)
		hook := e.hook
		e.mu.Unlock()
		if hook != nil && hook(fc, m) {
			continue
		}
		fc.handle(m)
	}
}

// handle answers m as an edge would.
func (fc *fakeConn) handle(m *protocol.Message) {
	e := fc.e
	switch m.Type {
	case protocol.TypeJoin:
		j := &protocol.Joined{Session: fmt.Sprintf("S%d", len(e.snapshotConns())), Edge: "e1",
			Privileges: []protocol.PrivilegeState{{Privilege: 1, Name: "join_channel", ExpiresAt: 2_000_000_000}}}
		if e.joined != nil {
			j = e.joined(fc, m.Join)
		}
		fc.send(&protocol.Message{Type: protocol.TypeJoined, ID: m.ID, Joined: j})
	case protocol.TypePing:
		fc.send(&protocol.Message{Type: protocol.TypePong, ID: m.ID})
	case protocol.TypePublish:
		e.mu.Lock()
		e.tracks++
		id := fmt.Sprintf("TR_%d", e.tracks)
		e.mu.Unlock()
		fc.send(&protocol.Message{Type: protocol.TypeOK, ID: m.ID, OK: &protocol.OK{TrackID: id}})
	case protocol.TypeOffer:
		sdp, err := fc.answer(m.Offer.SDP)
		if err != nil {
			fc.send(&protocol.Message{Type: protocol.TypeError, ID: m.ID, Error: &protocol.Error{Code: protocol.CodeNegotiation, Message: err.Error()}})
			return
		}
		fc.send(&protocol.Message{Type: protocol.TypeAnswer, ID: m.ID, Answer: &protocol.SDP{SDP: sdp}})
	case protocol.TypeRenew:
		fc.send(&protocol.Message{Type: protocol.TypeRenewed, ID: m.ID, Renewed: &protocol.Renewed{
			Privileges: []protocol.PrivilegeState{{Privilege: 1, Name: "join_channel", ExpiresAt: 2_100_000_000}}}})
	case protocol.TypeUnpublish, protocol.TypeSubscribe, protocol.TypeUnsubscribe:
		fc.send(&protocol.Message{Type: protocol.TypeOK, ID: m.ID})
	case protocol.TypeLeave:
		fc.ws.Close(websocket.StatusNormalClosure, "left")
	}
}

func (fc *fakeConn) send(m *protocol.Message) {
	b, err := protocol.Encode(m)
	if err != nil {
		fc.e.t.Errorf("encode: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fc.ws.Write(ctx, websocket.MessageText, b)
}

// answer answers a publisher offer with a new Pion peer connection (one per offer is enough for SDP checks).
func (fc *fakeConn) answer(offer string) (string, error) {
	pc, err := fc.newPC()
	if err != nil {
		return "", err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", err
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", err
	}
	g := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		return "", err
	}
	<-g
	return pc.LocalDescription().SDP, nil
}

// offerSubscriber sends a subscriber offer carrying the stoa-data channel, as an edge does after joined.
func (fc *fakeConn) offerSubscriber() error {
	pc, err := fc.newPC()
	if err != nil {
		return err
	}
	if _, err := pc.CreateDataChannel(protocol.DataChannelLabel, nil); err != nil {
		return err
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	g := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	<-g
	fc.send(&protocol.Message{Type: protocol.TypeOffer, Offer: &protocol.SDP{SDP: pc.LocalDescription().SDP}})
	return nil
}

func (fc *fakeConn) newPC() (*webrtc.PeerConnection, error) {
	pc, err := fc.e.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	fc.mu.Lock()
	fc.pcs = append(fc.pcs, pc)
	fc.mu.Unlock()
	return pc, nil
}

func (fc *fakeConn) closePCs() {
	fc.mu.Lock()
	pcs := fc.pcs
	fc.pcs = nil
	fc.mu.Unlock()
	for _, pc := range pcs {
		pc.GracefulClose()
	}
}

// setHook replaces the hook while the fake is serving.
func (e *fakeEdge) setHook(h func(fc *fakeConn, m *protocol.Message) bool) {
	e.mu.Lock()
	e.hook = h
	e.mu.Unlock()
}

func (e *fakeEdge) snapshotConns() []*fakeConn {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*fakeConn(nil), e.conns...)
}

// messages returns the client messages of type typ received so far.
func (e *fakeEdge) messages(typ protocol.Type) []*protocol.Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*protocol.Message
	for _, m := range e.received {
		if m.Type == typ {
			out = append(out, m)
		}
	}
	return out
}

// testConfig returns a client configuration for the fake edge.
func (e *fakeEdge) testConfig(t testing.TB, uid string) Config {
	return Config{
		URL: e.srv.URL, AppID: testAppID, Channel: testChannel, UID: uid, Token: "007-secret-token-" + uid,
		Secret: testSecret(7), Logger: testLogger(t),
	}
}

// logCapture collects a client's logs, at every level, to check that secrets never appear in them.
type logCapture struct {
	mu  sync.Mutex
	buf strings.Builder
	t   testing.TB
}

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if os.Getenv("STOA_TEST_LOG") != "" {
		l.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return l.buf.Write(p)
}

func (l *logCapture) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func captureLogs(t testing.TB) (*slog.Logger, *logCapture) {
	lc := &logCapture{t: t}
	return slog.New(slog.NewTextHandler(lc, &slog.HandlerOptions{Level: slog.LevelDebug})), lc
}
