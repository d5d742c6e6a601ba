package sdk

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stoa-rtc/stoa/internal/protocol"
)

const eventTimeout = 10 * time.Second

func TestJoinAndEvents(t *testing.T) {
	leaks := checkLeaks(t)
	e := newFakeEdge(t)
	e.joined = func(fc *fakeConn, j *protocol.Join) *protocol.Joined {
		return &protocol.Joined{Session: "S1", Edge: "e1", ServerTime: 1,
			Participants: []protocol.Participant{
				{UID: "bob", Tracks: []protocol.Track{{ID: "TR_b1", UID: "bob", Kind: protocol.KindAudio}}},
				{UID: "alice"}, // the client's own uid: ignored
			},
			Privileges: []protocol.PrivilegeState{{Privilege: 1, Name: "join_channel", ExpiresAt: 1_900_000_000}}}
	}
	e.hook = func(fc *fakeConn, m *protocol.Message) bool {
		if m.Type != protocol.TypeJoin {
			return false
		}
		fc.handle(m)
		if err := fc.offerSubscriber(); err != nil {
			t.Errorf("subscriber offer: %v", err)
		}
		return true
	}
	cfg := e.testConfig(t, "alice")
	log, logs := captureLogs(t)
	cfg.Logger = log
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Join(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}

	joins := e.messages(protocol.TypeJoin)
	if len(joins) != 1 {
		t.Fatalf("%d joins", len(joins))
	}
	j := joins[0].Join
	if j.Version != 1 || j.Token != cfg.Token || j.Ticket != testTicket || j.AppID != testAppID ||
		j.Channel != testChannel || j.UID != "alice" || j.AutoSubscribe == nil || !*j.AutoSubscribe || j.Client != clientName {
		t.Errorf("join = %+v", j)
	}
	if got := expectEvent[ParticipantJoined](t, c, eventTimeout); got.Participant.UID != "bob" ||
		len(got.Participant.Tracks) != 1 || got.Participant.Tracks[0].ID != "TR_b1" {
		t.Errorf("ParticipantJoined = %+v", got)
	}
	if got := expectEvent[TrackPublished](t, c, eventTimeout); got.Track != (TrackInfo{ID: "TR_b1", UID: "bob", Kind: KindAudio}) {
		t.Errorf("TrackPublished = %+v", got)
	}
	if ps := c.Privileges(); len(ps) != 1 || ps[0].ID != PrivilegeJoinChannel || ps[0].ExpiresAt.Unix() != 1_900_000_000 {
		t.Errorf("Privileges = %+v", ps)
	}
	if c.SessionID() != "S1" || c.Region() != "local" || c.Edge().ID != "e1" {
		t.Errorf("session %q region %q edge %+v", c.SessionID(), c.Region(), c.Edge())
	}
	// The client answers the subscriber offer, with its data channel.
	waitFor(t, eventTimeout, "the subscriber answer", func() bool { return len(e.messages(protocol.TypeAnswer)) == 1 })
	if sdp := e.messages(protocol.TypeAnswer)[0].Answer.SDP; !strings.Contains(sdp, "m=application") {
		t.Errorf("answer without the data channel:\n%s", sdp)
	}

	// Events arrive typed and in order; events about the client's own uid are dropped.
	fc := e.snapshotConns()[0]
	for _, m := range []*protocol.Message{
		{Type: protocol.TypeParticipantJoined, ParticipantJoined: &protocol.Participant{UID: "alice"}},
		{Type: protocol.TypeParticipantJoined, ParticipantJoined: &protocol.Participant{UID: "carol"}},
		{Type: protocol.TypeTrackPublished, TrackPublished: &protocol.Track{ID: "TR_c1", UID: "carol", Kind: protocol.KindVideo}},
		{Type: protocol.TypePrivilegeWillExpire, PrivilegeWillExpire: &protocol.PrivilegeState{Privilege: 1, Name: "join_channel", ExpiresAt: 1_900_000_000}},
		{Type: protocol.TypeTrackUnpublished, TrackUnpublished: &protocol.TrackRef{TrackID: "TR_b1"}},
		{Type: protocol.TypeParticipantLeft, ParticipantLeft: &protocol.ParticipantLeft{UID: "bob", Reason: protocol.CodeLeft}},
		{Type: protocol.TypeError, Error: &protocol.Error{Code: protocol.CodeNegotiation, Message: "subscriber connection failed"}},
	} {
		fc.send(m)
	}
	want := []string{"ParticipantJoined carol", "TrackPublished TR_c1 carol video", "PrivilegeWillExpire 1",
		"TrackUnpublished TR_b1 bob", "ParticipantLeft bob left", "ErrorEvent negotiation_failed"}
	for _, w := range want {
		var got string
		select {
		case ev := <-c.Events():
			got = describe(ev)
		case <-time.After(eventTimeout):
			t.Fatalf("no event; want %s", w)
		}
		if got != w {
			t.Errorf("event %q, want %q", got, w)
		}
	}
	if ps := c.Participants(); len(ps) != 1 || ps[0].UID != "carol" || len(ps[0].Tracks) != 1 {
		t.Errorf("Participants = %+v", ps)
	}

	// Renewal.
	ps, err := c.Renew(ctx, "007-renewed-token")
	if err != nil || len(ps) != 1 || ps[0].ExpiresAt.Unix() != 2_100_000_000 {
		t.Fatalf("Renew = %+v, %v", ps, err)
	}
	if r := e.messages(protocol.TypeRenew); len(r) != 1 || r[0].Renew.Token != "007-renewed-token" {
		t.Errorf("renew messages %+v", r)
	}
	refuse := func(fc *fakeConn, m *protocol.Message) bool {
		if m.Type == protocol.TypeRenew {
			fc.send(&protocol.Message{Type: protocol.TypeError, ID: m.ID, Error: &protocol.Error{Code: protocol.CodeInvalidToken, Message: "bad signature"}})
			return true
		}
		return false
	}
	e.setHook(refuse)
	_, err = c.Renew(ctx, "007-bad-token")
	var se *Error
	if !errors.As(err, &se) || se.Code != CodeInvalidToken || se.Op != "renew" {
		t.Errorf("Renew with a bad token: %v", err)
	}

	if err := c.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if len(e.messages(protocol.TypeLeave)) != 1 {
		t.Error("no leave message")
	}
	if d := expectEvent[Disconnected](t, c, eventTimeout); d.Err != nil {
		t.Errorf("Disconnected after Leave: %v", d.Err)
	}
	if _, ok := <-c.Events(); ok {
		t.Error("events not closed after Disconnected")
	}
	if _, err := c.PublishAudio(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("PublishAudio after Leave: %v", err)
	}
	e.close()
	leaks()
	for _, secret := range []string{cfg.Token, "007-renewed-token", "007-bad-token"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("a token appears in the logs")
		}
	}
}

// describe summarizes an event for comparisons.
func describe(ev Event) string {
	switch e := ev.(type) {
	case ParticipantJoined:
		return "ParticipantJoined " + e.Participant.UID
	case ParticipantLeft:
		return "ParticipantLeft " + e.UID + " " + string(e.Reason)
	case TrackPublished:
		return "TrackPublished " + e.Track.ID + " " + e.Track.UID + " " + string(e.Track.Kind)
	case TrackUnpublished:
		return "TrackUnpublished " + e.Track.ID + " " + e.Track.UID
	case PrivilegeWillExpire:
		return "PrivilegeWillExpire " + string(rune('0'+e.Privilege.ID))
	case ErrorEvent:
		var se *Error
		if errors.As(e.Err, &se) {
			return "ErrorEvent " + string(se.Code)
		}
		return "ErrorEvent " + e.Err.Error()
	}
	return "?"
}

// TestPublishAndReconnect publishes audio and video against the fake edge, drops the socket, and checks that the
// client rejoins with the same token and ticket, publishes again, and refuses frames in between.
func TestPublishAndReconnect(t *testing.T) {
	leaks := checkLeaks(t)
	e := newFakeEdge(t)
	release := make(chan struct{})
	e.hook = func(fc *fakeConn, m *protocol.Message) bool {
		if m.Type == protocol.TypeJoin && len(e.snapshotConns()) == 2 {
			<-release // hold the rejoin until the test has looked at the client in between
		}
		return false
	}
	cfg := e.testConfig(t, "alice")
	log, logs := captureLogs(t)
	cfg.Logger = log
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Join(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	audio, err := c.PublishAudio(ctx)
	if err != nil {
		t.Fatal(err)
	}
	video, err := c.PublishVideo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if audio.ID() != "TR_1" || video.ID() != "TR_2" || audio.KID() == video.KID() {
		t.Fatalf("ids %q %q, KIDs %x %x", audio.ID(), video.ID(), audio.KID(), video.KID())
	}
	offers := e.messages(protocol.TypeOffer)
	if len(offers) != 2 {
		t.Fatalf("%d publisher offers", len(offers))
	}
	// msid: stream id = uid, track id = the id from ok.
	if sdp := offers[1].Offer.SDP; !strings.Contains(sdp, "a=msid:alice TR_1") || !strings.Contains(sdp, "a=msid:alice TR_2") ||
		!strings.Contains(sdp, "VP8/90000") || !strings.Contains(sdp, "opus/48000/2") || !strings.Contains(sdp, "a=sendonly") {
		t.Errorf("publisher offer:\n%s", sdp)
	}
	if err := audio.WriteFrame([]byte{0x78, 1, 2, 3}, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := video.WriteFrame([]byte{0x10, 0, 0}, time.Second/30); err == nil {
		t.Fatal("a 3-byte key frame was accepted")
	}

	// A network blip: the socket drops.
	e.snapshotConns()[0].ws.CloseNow()
	expectEvent[Reconnecting](t, c, eventTimeout)
	if err := audio.WriteFrame([]byte{0x78, 1, 2, 3}, 20*time.Millisecond); !errors.Is(err, ErrReconnecting) {
		t.Errorf("WriteFrame while reconnecting: %v", err)
	}
	if _, err := c.PublishData(ctx); !errors.Is(err, ErrReconnecting) {
		t.Errorf("PublishData while reconnecting: %v", err)
	}
	close(release)
	if r := expectEvent[Reconnected](t, c, eventTimeout); r.Edge.ID != "e1" {
		t.Errorf("Reconnected to %+v", r.Edge)
	}
	joins := e.messages(protocol.TypeJoin)
	if len(joins) != 2 || joins[1].Join.Token != cfg.Token || joins[1].Join.Ticket != testTicket {
		t.Fatalf("rejoin: %d joins", len(joins))
	}
	if audio.ID() != "TR_3" || video.ID() != "TR_4" {
		t.Errorf("republished as %q %q", audio.ID(), video.ID())
	}
	if sdp := e.messages(protocol.TypeOffer)[2].Offer.SDP; !strings.Contains(sdp, "a=msid:alice TR_3") || !strings.Contains(sdp, "a=msid:alice TR_4") {
		t.Errorf("offer after reconnecting:\n%s", sdp)
	}
	if err := audio.WriteFrame([]byte{0x78, 1, 2, 3}, 20*time.Millisecond); err != nil {
		t.Errorf("WriteFrame after reconnecting: %v", err)
	}
	st := c.Stats()
	if st.Reconnects != 1 || st.FramesSent != 2 || st.FramesDropped != 1 || len(st.Tracks) != 2 {
		t.Errorf("stats %+v", st)
	}

	if err := video.Unpublish(ctx); err != nil {
		t.Fatal(err)
	}
	if u := e.messages(protocol.TypeUnpublish); len(u) != 1 || u[0].Unpublish.TrackID != "TR_4" {
		t.Errorf("unpublish messages %+v", u)
	}
	if err := video.WriteFrame(vp8Frame(true, 20, 1), time.Second/30); !errors.Is(err, ErrUnpublished) {
		t.Errorf("WriteFrame after Unpublish: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := audio.WriteFrame([]byte{0x78, 1}, 20*time.Millisecond); !errors.Is(err, ErrUnpublished) {
		t.Errorf("WriteFrame after Close: %v", err)
	}
	e.close()
	leaks()
	if strings.Contains(logs.String(), cfg.Token) {
		t.Error("the token appears in the logs")
	}
}

func TestRemoved(t *testing.T) {
	for _, tc := range []struct {
		reason    protocol.Code
		reconnect bool
	}{
		{protocol.CodeReplaced, false},
		{protocol.CodePrivilegeExpired, false},
		{protocol.CodeShuttingDown, true},
		{protocol.CodeTimeout, true},
	} {
		t.Run(string(tc.reason), func(t *testing.T) {
			leaks := checkLeaks(t)
			e := newFakeEdge(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := Join(ctx, e.testConfig(t, "alice"))
			if err != nil {
				t.Fatal(err)
			}
			fc := e.snapshotConns()[0]
			fc.send(&protocol.Message{Type: protocol.TypeRemoved, Removed: &protocol.Removed{Reason: tc.reason, Message: "bye"}})
			fc.ws.Close(websocket.StatusPolicyViolation, string(tc.reason))
			if r := expectEvent[Removed](t, c, eventTimeout); r.Reason != Code(tc.reason) {
				t.Errorf("Removed %+v", r)
			}
			if tc.reconnect {
				expectEvent[Reconnected](t, c, eventTimeout)
				c.Close()
			} else {
				d := expectEvent[Disconnected](t, c, eventTimeout)
				var se *Error
				if !errors.As(d.Err, &se) || se.Code != Code(tc.reason) || !errors.As(c.Err(), &se) {
					t.Errorf("Disconnected %v, Err %v", d.Err, c.Err())
				}
				select {
				case <-c.Done():
				case <-time.After(eventTimeout):
					t.Fatal("Done not closed")
				}
				if n := len(e.messages(protocol.TypeJoin)); n != 1 {
					t.Errorf("%d joins after a final removal", n)
				}
				if err := c.Close(); err != nil {
					t.Error(err)
				}
			}
			e.close()
			leaks()
		})
	}
}

func TestPing(t *testing.T) {
	leaks := checkLeaks(t)
	e := newFakeEdge(t)
	cfg := e.testConfig(t, "alice")
	cfg.PingInterval = 20 * time.Millisecond
	cfg.RequestTimeout = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Join(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, eventTimeout, "three pings", func() bool { return len(e.messages(protocol.TypePing)) >= 3 })

	// Junk from the edge is ignored: a binary message, a message of an unknown type, an answer nobody waits for.
	fc := e.snapshotConns()[0]
	fc.ws.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3})
	fc.ws.Write(ctx, websocket.MessageText, []byte(`{"type":"dance","dance":{}}`))
	fc.send(&protocol.Message{Type: protocol.TypeOK, ID: 9999})
	n := len(e.messages(protocol.TypePing))
	waitFor(t, eventTimeout, "pings after junk", func() bool { return len(e.messages(protocol.TypePing)) >= n+2 })

	// An edge that stops answering pings is left, and the client reconnects.
	e.setHook(func(fc *fakeConn, m *protocol.Message) bool {
		return m.Type == protocol.TypePing && len(e.snapshotConns()) == 1
	})
	r := expectEvent[Reconnecting](t, c, eventTimeout)
	if r.Err == nil || !strings.Contains(r.Err.Error(), "ping") {
		t.Errorf("Reconnecting because of %v", r.Err)
	}
	expectEvent[Reconnected](t, c, eventTimeout)
	c.Close()
	e.close()
	leaks()
}

func TestJoinFallbackAndRefusal(t *testing.T) {
	leaks := checkLeaks(t)
	// An edge that is down (refuses the WebSocket), then a working one.
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "draining", http.StatusServiceUnavailable)
	}))
	e := newFakeEdge(t)
	downURL := "ws" + strings.TrimPrefix(down.URL, "http") + "/v1/signal"
	e.edges = []Edge{{ID: "down", URL: downURL}, {ID: "e2", URL: e.signalURL()}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Join(ctx, e.testConfig(t, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Edge().ID != "e2" {
		t.Errorf("joined through %+v", c.Edge())
	}
	c.Close()

	// A refusal of the token is final, and a refusal of the ticket would be repeated by every edge it names or, if
	// transient, would put the client on another edge than its channel's: the next edge is not tried.
	e.edges = []Edge{{ID: "e1", URL: e.signalURL()}, {ID: "e2", URL: e.signalURL()}}
	for _, code := range []protocol.Code{protocol.CodeTokenExpired, protocol.CodeInvalidTicket} {
		e.setHook(func(fc *fakeConn, m *protocol.Message) bool {
			if m.Type == protocol.TypeJoin {
				fc.send(&protocol.Message{Type: protocol.TypeError, ID: m.ID, Error: &protocol.Error{Code: code, Message: "refused"}})
				fc.ws.Close(websocket.StatusPolicyViolation, string(code))
				return true
			}
			return false
		})
		joinsBefore := len(e.messages(protocol.TypeJoin))
		cfg := e.testConfig(t, "alice")
		_, err = Join(ctx, cfg)
		var se *Error
		if !errors.As(err, &se) || string(se.Code) != string(code) || se.Op != "join" {
			t.Fatalf("%s: Join = %v", code, err)
		}
		if n := len(e.messages(protocol.TypeJoin)) - joinsBefore; n != 1 {
			t.Errorf("%s: %d joins, want 1 (the next edge was tried)", code, n)
		}
		if strings.Contains(err.Error(), cfg.Token) {
			t.Error("the token appears in the error")
		}
	}
	down.Close()
	e.close()
	leaks()
}

func TestManualSubscribe(t *testing.T) {
	leaks := checkLeaks(t)
	e := newFakeEdge(t)
	e.joined = func(fc *fakeConn, j *protocol.Join) *protocol.Joined {
		return &protocol.Joined{Session: "S", Edge: "e1", Participants: []protocol.Participant{
			{UID: "bob", Tracks: []protocol.Track{{ID: "TR_b1", UID: "bob", Kind: protocol.KindVideo}}}}}
	}
	cfg := e.testConfig(t, "alice")
	cfg.AutoSubscribe = new(false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Join(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if j := e.messages(protocol.TypeJoin)[0].Join; j.AutoSubscribe == nil || *j.AutoSubscribe {
		t.Errorf("auto_subscribe %v", j.AutoSubscribe)
	}
	if err := c.Subscribe(ctx, "TR_b1"); err != nil {
		t.Fatal(err)
	}
	// After a reconnection the subscription is restored.
	e.snapshotConns()[0].ws.CloseNow()
	expectEvent[Reconnected](t, c, eventTimeout)
	subs := e.messages(protocol.TypeSubscribe)
	if len(subs) != 2 || subs[1].Subscribe.TrackID != "TR_b1" {
		t.Errorf("subscribe messages: %d", len(subs))
	}
	if err := c.Unsubscribe(ctx, "TR_b1"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	e.close()
	leaks()
}
