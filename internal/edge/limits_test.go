package edge

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stoa-rtc/stoa/internal/guard"
	"github.com/stoa-rtc/stoa/internal/protocol"
)

// waitClosed waits until the edge has closed c's socket.
func waitClosed(t *testing.T, c *testClient, what string) {
	t.Helper()
	select {
	case <-c.closed:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still open", what)
	}
}

// Finding 2 (idle unjoined sockets emptied a region): sockets that never join are closed at the join deadline,
// even one that keeps pinging; they never count as joined; a joined session outlives the deadline.
func TestJoinDeadline(t *testing.T) {
	e := startEdge(t, func(c *Config) { c.JoinTimeout = time.Second })
	member := e.dial(t)
	if r := member.join(e.token(t, "room", "1", nil), "room", "1"); r.Type != protocol.TypeJoined {
		t.Fatalf("join: %s", errCode(r))
	}
	const idle = 20
	closed := make(chan error, idle)
	for i := range idle {
		conn := dialRaw(t, e.url)
		go func() { closed <- holdUnjoined(conn, i == 0) }()
	}
	for range idle {
		if n := e.srv.Joined(); n != 1 {
			t.Errorf("Joined = %d with idle sockets open, want 1", n)
		}
		select {
		case err := <-closed:
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != string(protocol.CodeTimeout) {
				t.Errorf("idle socket closed with %v, want policy violation \"timeout\"", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("idle sockets outlived the join deadline")
		}
	}
	waitFor(t, 5*time.Second, "the idle sessions to be gone", func() bool { return e.srv.Sessions() == 1 })
	// The member joined before every idle socket opened, so its own deadline has passed too.
	if r := member.request(&protocol.Message{Type: protocol.TypePing}); r.Type != protocol.TypePong {
		t.Errorf("joined session after the deadline: %s", errCode(r))
	}
	if n := e.srv.Joined(); n != 1 {
		t.Errorf("Joined = %d, want 1", n)
	}
}

// dialRaw opens a signaling WebSocket and nothing else; the test's end closes it.
func dialRaw(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(websocket.StatusNormalClosure, "") })
	return conn
}

// holdUnjoined keeps a socket open without joining, as the attack did — silent, or pinging — and returns the
// error that ended it.
func holdUnjoined(conn *websocket.Conn, ping bool) error {
	if ping {
		b, _ := protocol.Encode(&protocol.Message{Type: protocol.TypePing, ID: 1})
		go func() {
			tick := time.NewTicker(100 * time.Millisecond) // the attacker's pace
			defer tick.Stop()
			for range tick.C {
				if conn.Write(context.Background(), websocket.MessageText, b) != nil {
					return
				}
			}
		}()
	}
	for {
		if _, _, err := conn.Read(context.Background()); err != nil {
			return err
		}
	}
}

// Finding 2: unjoined sessions that misbehave — garbage, binary frames, messages before the join, a flood, or no
// join at all — are scored by the guard until their address is blocked; another address is still served.
func TestUnjoinedMisbehaviourBlocked(t *testing.T) {
	const threshold = 5
	tests := []struct {
		name   string
		mod    func(*Config)
		attack func(t *testing.T, e *testEdge, source string)
		reason string
	}{
		{"garbage", nil, func(t *testing.T, e *testEdge, source string) {
			c := dialOrFail(t, e, source)
			for range threshold {
				c.sendBytes([]byte("not json"))
			}
		}, guard.ReasonBadRequest},
		{"binary", nil, func(t *testing.T, e *testEdge, source string) {
			c := dialOrFail(t, e, source)
			for range threshold {
				c.conn.Write(context.Background(), websocket.MessageBinary, []byte{1, 2, 3})
			}
		}, guard.ReasonBadRequest},
		{"messages before the join", nil, func(t *testing.T, e *testEdge, source string) {
			c := dialOrFail(t, e, source)
			for range threshold {
				c.sendRaw(&protocol.Message{Type: protocol.TypePing})
			}
		}, guard.ReasonNotJoined},
		{"flood", func(c *Config) { c.MessageRate, c.MessageBurst = 0.001, 1 }, func(t *testing.T, e *testEdge, source string) {
			c := dialOrFail(t, e, source)
			for range threshold {
				c.sendRaw(&protocol.Message{Type: protocol.TypePing}) // the first is not_joined, the rest a flood
			}
		}, guard.ReasonFlood},
		{"no join", func(c *Config) { c.JoinTimeout = 100 * time.Millisecond }, func(t *testing.T, e *testEdge, source string) {
			for range threshold {
				waitClosed(t, dialOrFail(t, e, source), "a socket past the join deadline")
			}
		}, guard.ReasonJoinTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gcfg := guard.Default()
			gcfg.BadThreshold = threshold
			blocks := make(chan guard.Event, 10)
			gcfg.Events = func(ev guard.Event) {
				if ev.Type == guard.EventBlock {
					blocks <- ev
				}
			}
			g, err := guard.New(gcfg)
			if err != nil {
				t.Fatal(err)
			}
			e := startEdge(t, func(c *Config) {
				c.Guard = g
				if tc.mod != nil {
					tc.mod(c)
				}
			})
			tc.attack(t, e, "127.0.0.2")
			select {
			case ev := <-blocks:
				if ev.Reason != tc.reason {
					t.Errorf("blocked for %q, want %q", ev.Reason, tc.reason)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the attacker was not blocked")
			}
			if _, err := e.dialFrom(t, "127.0.0.2"); err == nil || !strings.Contains(err.Error(), "HTTP 403") {
				t.Errorf("the blocked address connected: %v", err)
			}
			victim := dialOrFail(t, e, "127.0.0.3")
			if r := victim.join(e.token(t, "room", "2", nil), "room", "2"); r.Type != protocol.TypeJoined {
				t.Errorf("victim: %s", errCode(r))
			}
		})
	}
}

func dialOrFail(t *testing.T, e *testEdge, source string) *testClient {
	t.Helper()
	c, err := e.dialFrom(t, source)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
