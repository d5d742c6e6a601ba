package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stoa-rtc/stoa/internal/connlimit"
	"github.com/stoa-rtc/stoa/internal/dispatch"
	"github.com/stoa-rtc/stoa/internal/protocol"
)

// Finding 2 (anyone could empty a region without a token): idle WebSockets that never join, from ten addresses,
// many more than the edge's capacity, do not count toward the load it reports, so the dispatcher keeps scheduling
// onto it; they are closed at the join deadline. Finding 6: a joined session outlives the HTTP server's (here
// very short) read and idle timeouts, since they do not apply to a WebSocket.
func TestIdleSocketsDoNotEmptyRegion(t *testing.T) {
	const (
		capacity    = 5
		idle        = 30
		joinTimeout = 4 * time.Second // long enough for the checks below while the sockets are open
	)
	n := newTestNet(t)
	n.edgeMod = func(c *EdgeConfig) {
		c.MaxSessions, c.JoinTimeout = capacity, joinTimeout
		c.Limits = connlimit.Config{ReadHeaderTimeout: 100 * time.Millisecond, ReadTimeout: 100 * time.Millisecond,
			IdleTimeout: 100 * time.Millisecond}
	}
	e := n.addEdge("eu", "e1")
	d := n.addDispatcher("eu", "d1")
	observer := n.cluster("eu", "observer")
	dispatchOK := func(uid string) dispatch.Response {
		t.Helper()
		var resp dispatch.Response
		eventually(t, 5*time.Second, func() error {
			r := dispatchFrom(t, d.url, "127.0.0.99", dispatch.Request{AppID: testApp, Channel: "c", UID: uid, Token: n.token("c", uid)})
			if r.status != 200 || edgeIDs(r.resp.Edges) != "e1" {
				return fmt.Errorf("dispatch: %d %+v, edges %s", r.status, r.err, edgeIDs(r.resp.Edges))
			}
			resp = r.resp
			return nil
		})
		return resp
	}
	member := joinEdge(t, e.url, n.token("c", "m"), "m", dispatchOK("m").Ticket)

	closed := make(chan error, idle)
	for i := range idle {
		conn := dialWS(t, e.url, fmt.Sprintf("127.0.1.%d", i%10+1))
		go func() {
			for {
				if _, _, err := conn.Read(context.Background()); err != nil {
					closed <- err
					return
				}
			}
		}()
	}
	eventually(t, 5*time.Second, func() error {
		if s := e.edge.Sessions(); s != idle+1 {
			return fmt.Errorf("%d sessions", s)
		}
		return nil
	})
	opened := time.Now()
	eventually(t, 5*time.Second, func() error {
		for _, info := range observer.Edges("eu") {
			if info.ID == "e1" && info.Updated.After(opened) {
				if info.Sessions != 1 || info.Load != 1.0/capacity {
					t.Errorf("heartbeat with %d idle sockets open: sessions %d, load %v; want 1 and %v", idle, info.Sessions, info.Load, 1.0/capacity)
				}
				return nil
			}
		}
		return errors.New("no heartbeat since the sockets opened")
	})
	dispatchOK("late")
	if s := e.edge.Sessions(); s != idle+1 {
		t.Fatalf("%d sessions after the checks, want %d: the join deadline passed before them, so they prove nothing", s, idle+1)
	}

	for range idle {
		select {
		case err := <-closed:
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != string(protocol.CodeTimeout) {
				t.Errorf("idle socket closed with %v, want policy violation \"timeout\"", err)
			}
		case <-time.After(joinTimeout + 10*time.Second):
			t.Fatal("idle sockets outlived the join deadline")
		}
	}
	eventually(t, 5*time.Second, func() error {
		if s := e.edge.Sessions(); s != 1 {
			return fmt.Errorf("%d sessions", s)
		}
		return nil
	})
	// The member's WebSocket has lived far longer than the HTTP timeouts.
	if r := member.request(t, &protocol.Message{Type: protocol.TypePing}); r.Type != protocol.TypePong {
		t.Errorf("joined session after the timeouts: %+v", r)
	}
}

// dialWS opens a signaling WebSocket from a loopback source address; the test's end closes it.
func dialWS(t *testing.T, url, source string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(websocket.StatusNormalClosure, "") })
	return conn
}

// wsClient is a joined signaling session that reads in the background, keeping replies to its requests.
type wsClient struct {
	conn    *websocket.Conn
	replies chan *protocol.Message
	nextID  uint32
}

// joinEdge joins channel "c" on the edge at url with a token and a dispatcher's ticket.
func joinEdge(t *testing.T, url, tok, uid, ticket string) *wsClient {
	t.Helper()
	c := &wsClient{conn: dialWS(t, url, "127.0.0.98"), replies: make(chan *protocol.Message, 16)}
	read := make(chan struct{})
	go func() {
		defer close(read)
		for {
			_, b, err := c.conn.Read(context.Background())
			if err != nil {
				return
			}
			if m, err := protocol.Decode(b); err == nil && m.ID != 0 {
				c.replies <- m
			}
		}
	}()
	t.Cleanup(func() {
		c.conn.Close(websocket.StatusNormalClosure, "")
		<-read
	})
	if r := c.request(t, &protocol.Message{Type: protocol.TypeJoin, Join: &protocol.Join{Version: protocol.Version,
		Token: tok, AppID: testApp, Channel: "c", UID: uid, Ticket: ticket}}); r.Type != protocol.TypeJoined {
		t.Fatalf("join: %+v", r.Error)
	}
	return c
}

// request sends m and returns the reply to it.
func (c *wsClient) request(t *testing.T, m *protocol.Message) *protocol.Message {
	t.Helper()
	c.nextID++
	m.ID = c.nextID
	b, err := protocol.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatalf("%s: %v", m.Type, err)
	}
	for {
		select {
		case r := <-c.replies:
			if r.ID == m.ID {
				return r
			}
		case <-ctx.Done():
			t.Fatalf("no reply to %s", m.Type)
		}
	}
}
