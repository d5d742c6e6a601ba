package edge

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/internal/guard"
	"github.com/stoa-rtc/stoa/internal/protocol"
	"github.com/stoa-rtc/stoa/internal/ticket"
	"github.com/stoa-rtc/stoa/token"
)

func TestJoinChecksTheToken(t *testing.T) {
	e := startEdge(t)
	good := e.token(t, "room", "1", nil)
	expired, err := token.BuildRTC(testCert, token.RTCOptions{AppID: testApp, Channel: "room", UID: "1",
		Expire: time.Minute, IssuedAt: e.clock.Now().Add(-time.Hour), Salt: 1})
	if err != nil {
		t.Fatal(err)
	}
	otherApp, _ := token.BuildRTC(testCert, token.RTCOptions{AppID: strings.Repeat("a", 32), Channel: "room", UID: "1", Expire: time.Hour})
	for _, tc := range []struct {
		name string
		join protocol.Join
		code protocol.Code
	}{
		{"malformed", protocol.Join{Version: 1, Token: "007garbage", AppID: testApp, Channel: "room", UID: "1"}, protocol.CodeInvalidToken},
		{"forged", protocol.Join{Version: 1, Token: good[:len(good)-6] + "AAAA==", AppID: testApp, Channel: "room", UID: "1"}, protocol.CodeInvalidToken},
		{"other channel", protocol.Join{Version: 1, Token: good, AppID: testApp, Channel: "hall", UID: "1"}, protocol.CodeChannelMismatch},
		{"other uid", protocol.Join{Version: 1, Token: good, AppID: testApp, Channel: "room", UID: "2"}, protocol.CodeUIDMismatch},
		{"other app id", protocol.Join{Version: 1, Token: good, AppID: strings.Repeat("b", 32), Channel: "room", UID: "1"}, protocol.CodeAppMismatch},
		{"unknown app", protocol.Join{Version: 1, Token: otherApp, AppID: strings.Repeat("a", 32), Channel: "room", UID: "1"}, protocol.CodeUnknownApp},
		{"expired", protocol.Join{Version: 1, Token: expired, AppID: testApp, Channel: "room", UID: "1"}, protocol.CodeTokenExpired},
		{"version 2", protocol.Join{Version: 2, Token: good, AppID: testApp, Channel: "room", UID: "1"}, protocol.CodeUnsupportedVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial(t)
			j := tc.join
			reply := c.request(&protocol.Message{Type: protocol.TypeJoin, Join: &j})
			if errCode(reply) != string(tc.code) {
				t.Fatalf("join = %s, want %s", errCode(reply), tc.code)
			}
			if strings.Contains(reply.Error.Message, j.Token) {
				t.Error("the error message contains the token")
			}
			<-c.closed // a failed join ends the session
		})
	}
	c := e.dial(t)
	if r := c.request(&protocol.Message{Type: protocol.TypePing}); errCode(r) != string(protocol.CodeNotJoined) {
		t.Errorf("ping before join = %s", errCode(r))
	}
	if r := c.join(good, "room", "1"); r.Type != protocol.TypeJoined {
		t.Fatalf("join = %s", errCode(r))
	}
	if r := c.join(good, "room", "1"); errCode(r) != string(protocol.CodeAlreadyJoined) {
		t.Errorf("second join = %s", errCode(r))
	}
}

// Hostile signaling gets clear errors; the session and everyone else keep going.
func TestHostileSignaling(t *testing.T) {
	e := startEdge(t, func(c *Config) { c.MessageRate, c.MessageBurst = 5, 10 })
	victim, attacker := e.dial(t), e.dial(t)
	if r := victim.join(e.token(t, "room", "1", nil), "room", "1"); r.Type != protocol.TypeJoined {
		t.Fatal(errCode(r))
	}
	if r := attacker.join(e.token(t, "room", "2", nil), "room", "2"); r.Type != protocol.TypeJoined {
		t.Fatal(errCode(r))
	}
	for _, tc := range []struct {
		in   string
		code protocol.Code
	}{
		{`{"type":`, protocol.CodeBadRequest},
		{`{"type":"teleport"}`, protocol.CodeBadRequest},
		{`{"type":"publish","id":5,"publish":{"kind":"smell"}}`, protocol.CodeBadRequest},
		{`{"type":"ping","pad":"` + strings.Repeat("x", protocol.MaxMessageSize) + `"}`, protocol.CodeMessageTooLarge},
	} {
		attacker.sendBytes([]byte(tc.in))
		if m := attacker.expect(protocol.TypeError); m.Error.Code != tc.code {
			t.Errorf("%.30s: %s, want %s", tc.in, m.Error.Code, tc.code)
		}
	}
	if r := attacker.request(&protocol.Message{Type: protocol.TypePing}); r.Type != protocol.TypePong {
		t.Fatalf("after bad messages the session should go on: %s", errCode(r))
	}
	// Publishing on another channel's behalf is impossible: the session is bound to its join.
	if r := attacker.request(&protocol.Message{Type: protocol.TypeSubscribe, Subscribe: &protocol.TrackRef{TrackID: "TR_nope"}}); errCode(r) != string(protocol.CodeUnknownTrack) {
		t.Errorf("subscribe unknown = %s", errCode(r))
	}
	// A flood is rate limited, then cut off; the victim is still served.
	for range 200 {
		attacker.sendRaw(&protocol.Message{Type: protocol.TypePing})
	}
	if m := attacker.expect(protocol.TypeError); m.Error.Code != protocol.CodeRateLimited {
		t.Errorf("flood: %s", m.Error.Code)
	}
	<-attacker.closed
	if r := victim.request(&protocol.Message{Type: protocol.TypePing}); r.Type != protocol.TypePong {
		t.Fatalf("victim after the flood: %s", errCode(r))
	}
	if m := victim.expect(protocol.TypeParticipantLeft); m.ParticipantLeft.UID != "2" {
		t.Errorf("participant_left %+v", m.ParticipantLeft)
	}
}

func TestPublishNeedsPrivilege(t *testing.T) {
	e := startEdge(t)
	c := e.dial(t)
	sub := e.token(t, "room", "1", map[token.Privilege]time.Duration{token.PrivilegeJoinChannel: time.Hour})
	if r := c.join(sub, "room", "1"); r.Type != protocol.TypeJoined {
		t.Fatal(errCode(r))
	}
	for _, k := range []protocol.Kind{protocol.KindAudio, protocol.KindVideo, protocol.KindData} {
		if r := c.request(&protocol.Message{Type: protocol.TypePublish, Publish: &protocol.Publish{Kind: k}}); errCode(r) != string(protocol.CodeNoPrivilege) {
			t.Errorf("publish %s = %s, want no_privilege", k, errCode(r))
		}
	}
}

// A subscriber receives exactly the publisher's payload bytes, for media and data, over UDP and over the TCP
// fallback.
func TestForwarding(t *testing.T) {
	t.Run("udp", func(t *testing.T) { testForwarding(t, webrtc.NetworkTypeUDP4) })
	t.Run("tcp", func(t *testing.T) { testForwarding(t, webrtc.NetworkTypeTCP4) })
}

func testForwarding(t *testing.T, network webrtc.NetworkType) {
	e := startEdge(t)
	a, b := e.dial(t), e.dial(t)
	a.api, b.api = clientAPI(t, network), clientAPI(t, network)
	if r := a.join(e.token(t, "room", "alice", nil), "room", "alice"); r.Type != protocol.TypeJoined {
		t.Fatal(errCode(r))
	}
	if r := b.join(e.token(t, "room", "bob", nil), "room", "bob"); r.Type != protocol.TypeJoined {
		t.Fatal(errCode(r))
	}
	if m := a.expect(protocol.TypeParticipantJoined); m.ParticipantJoined.UID != "bob" {
		t.Fatalf("participant_joined %+v", m.ParticipantJoined)
	}
	id, audio, _ := a.publish(protocol.KindAudio)
	dataID, _, dc := a.publish(protocol.KindData)
	for range 2 {
		m := b.expect(protocol.TypeTrackPublished)
		if (m.TrackPublished.ID != id && m.TrackPublished.ID != dataID) || m.TrackPublished.UID != "alice" {
			t.Fatalf("track_published %+v", m.TrackPublished)
		}
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for seq := uint16(0); ; seq++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(seq) * 960},
				Payload: []byte("sframe-ciphertext-" + string(rune('a'+seq%26)))})
			dc.Send([]byte("data-message"))
		}
	}()
	var track *webrtc.TrackRemote
	select {
	case track = <-b.tracks:
	case <-time.After(10 * time.Second):
		t.Fatal("no track arrived")
	}
	if track.ID() != id || track.StreamID() != "alice" {
		t.Errorf("track id %q stream %q, want %q alice", track.ID(), track.StreamID(), id)
	}
	pkt, _, err := track.ReadRTP()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pkt.Payload, []byte("sframe-ciphertext-")) || len(pkt.Payload) != len("sframe-ciphertext-")+1 {
		t.Errorf("payload changed: %q", pkt.Payload)
	}
	select {
	case frame := <-b.data:
		gotID, payload, err := protocol.ParseDataFrame(frame)
		if err != nil || gotID != dataID || string(payload) != "data-message" {
			t.Errorf("data frame %q %q %v", gotID, payload, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no data message arrived")
	}
}

// Privileges are enforced as time passes: a warning before expiry, the publication stopped at the publish
// privilege's expiry, removal at the join privilege's, and renewal in place.
func TestPrivilegeExpiryAndRenewal(t *testing.T) {
	e := startEdge(t)
	a, b := e.dial(t), e.dial(t)
	tok := e.token(t, "room", "alice", map[token.Privilege]time.Duration{
		token.PrivilegeJoinChannel: 10 * time.Minute, token.PrivilegePublishAudio: 2 * time.Minute})
	if r := a.join(tok, "room", "alice"); r.Type != protocol.TypeJoined || len(r.Joined.Privileges) != 2 {
		t.Fatalf("join: %s %+v", errCode(r), r.Joined)
	}
	if r := b.join(e.token(t, "room", "bob", nil), "room", "bob"); r.Type != protocol.TypeJoined {
		t.Fatal(errCode(r))
	}
	id, _, _ := a.publish(protocol.KindAudio)
	b.expect(protocol.TypeTrackPublished)

	e.clock.Advance(90 * time.Second) // 30 s before publish audio expires
	if m := a.expect(protocol.TypePrivilegeWillExpire); m.PrivilegeWillExpire.Privilege != 2 {
		t.Errorf("will expire: %+v", m.PrivilegeWillExpire)
	}
	e.clock.Advance(30 * time.Second)
	if m := a.expect(protocol.TypePrivilegeExpired); m.PrivilegeExpired.Privilege != 2 {
		t.Errorf("expired: %+v", m.PrivilegeExpired)
	}
	if m := b.expect(protocol.TypeTrackUnpublished); m.TrackUnpublished.TrackID != id {
		t.Errorf("unpublished %+v", m.TrackUnpublished)
	}
	if r := a.request(&protocol.Message{Type: protocol.TypePublish, Publish: &protocol.Publish{Kind: protocol.KindAudio}}); errCode(r) != string(protocol.CodePrivilegeExpired) {
		t.Errorf("publish after expiry = %s", errCode(r))
	}

	// Renew before the join privilege (10 min) expires: a token of another channel is refused, a good one moves
	// the expiry.
	if r := a.request(&protocol.Message{Type: protocol.TypeRenew, Renew: &protocol.Renew{Token: e.token(t, "hall", "alice", nil)}}); errCode(r) != string(protocol.CodeChannelMismatch) {
		t.Errorf("renew for another channel = %s", errCode(r))
	}
	e.clock.Advance(7*time.Minute + 30*time.Second) // t = 9:30, 30 s before the join privilege expires
	a.expect(protocol.TypePrivilegeWillExpire)
	fresh := e.token(t, "room", "alice", map[token.Privilege]time.Duration{token.PrivilegeJoinChannel: 5 * time.Minute})
	r := a.request(&protocol.Message{Type: protocol.TypeRenew, Renew: &protocol.Renew{Token: fresh}})
	if r.Type != protocol.TypeRenewed || r.Renewed.Privileges[0].ExpiresAt != e.clock.Now().Add(5*time.Minute).Unix() {
		t.Fatalf("renew = %s %+v", errCode(r), r.Renewed)
	}
	e.clock.Advance(2 * time.Minute) // past the old expiry: still in
	if r := a.request(&protocol.Message{Type: protocol.TypePing}); r.Type != protocol.TypePong {
		t.Fatalf("after the old expiry: %s", errCode(r))
	}
	e.clock.Advance(3 * time.Minute) // the renewed join privilege expires
	if m := a.expect(protocol.TypeRemoved); m.Removed.Reason != protocol.CodePrivilegeExpired {
		t.Errorf("removed %+v", m.Removed)
	}
	if m := b.expect(protocol.TypeParticipantLeft); m.ParticipantLeft.UID != "alice" || m.ParticipantLeft.Reason != protocol.CodePrivilegeExpired {
		t.Errorf("participant_left %+v", m.ParticipantLeft)
	}
}

func TestDuplicateUIDReplaces(t *testing.T) {
	e := startEdge(t)
	first, second, other := e.dial(t), e.dial(t), e.dial(t)
	tok := e.token(t, "room", "7", nil)
	first.join(tok, "room", "7")
	other.join(e.token(t, "room", "8", nil), "room", "8")
	first.publish(protocol.KindAudio)
	other.expect(protocol.TypeTrackPublished)
	if r := second.join(tok, "room", "7"); r.Type != protocol.TypeJoined {
		t.Fatal(errCode(r))
	}
	if m := first.expect(protocol.TypeRemoved); m.Removed.Reason != protocol.CodeReplaced {
		t.Errorf("removed %+v", m.Removed)
	}
	<-first.closed
	other.expect(protocol.TypeTrackUnpublished) // the old session's track goes
	if r := second.request(&protocol.Message{Type: protocol.TypePing}); r.Type != protocol.TypePong {
		t.Errorf("the new session: %s", errCode(r))
	}
	waitFor(t, 5*time.Second, "the replaced session to go", func() bool { return e.srv.Sessions() == 2 })
}

func TestEventsCarryNoSecrets(t *testing.T) {
	e, priv := startTicketEdge(t)
	tk, err := ticket.Sign(ticket.Ticket{KID: "d1", AppID: testApp, Channel: "room", UID: "1", Edges: []string{"edge-a"},
		Expires: e.clock.Now().Add(time.Hour).Unix()}, priv)
	if err != nil {
		t.Fatal(err)
	}
	tok := e.token(t, "room", "1", nil)
	// A token signed with another certificate: refused, and the refusal is an event too.
	forged, err := token.BuildRTC(strings.Repeat("9", 32), token.RTCOptions{AppID: testApp, Channel: "room", UID: "1",
		Expire: time.Hour, IssuedAt: e.clock.Now(), Salt: 8})
	if err != nil {
		t.Fatal(err)
	}
	join := func(tok string) *protocol.Message {
		c := e.dial(t)
		return c.request(&protocol.Message{Type: protocol.TypeJoin, Join: &protocol.Join{Version: 1, Token: tok,
			AppID: testApp, Channel: "room", UID: "1", Ticket: tk}})
	}
	if r := join(forged); errCode(r) != string(protocol.CodeInvalidToken) {
		t.Fatalf("forged token: %s", errCode(r))
	}
	c := e.dial(t)
	if r := c.request(&protocol.Message{Type: protocol.TypeJoin, Join: &protocol.Join{Version: 1, Token: tok,
		AppID: testApp, Channel: "room", UID: "1", Ticket: tk}}); errCode(r) != "(joined)" {
		t.Fatalf("join: %s", errCode(r))
	}
	c.sendRaw(&protocol.Message{Type: protocol.TypeLeave})
	<-c.closed

	// Every field of every event, as it goes to the cluster: no 16-character piece of a token, of the ticket or of
	// the App Certificate.
	secrets := []string{tok, forged, tk, testCert}
	var got []EventType
	for len(got) < 3 {
		select {
		case ev := <-e.events:
			got = append(got, ev.Type)
			b, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range secrets {
				for i := 0; i+16 <= len(s); i += 8 {
					if bytes.Contains(b, []byte(s[i:i+16])) {
						t.Errorf("%s event carries a secret: %s", ev.Type, b)
					}
				}
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("events so far %v", got)
		}
	}
	if !slices.Equal(got, []EventType{EventJoinFailed, EventJoin, EventLeave}) {
		t.Errorf("events %v", got)
	}
}

// With dispatcher keys configured, the edge admits only joins whose ticket names it.
func TestTicketRequired(t *testing.T) {
	e, priv := startTicketEdge(t)
	sign := func(edges ...string) string {
		s, err := ticket.Sign(ticket.Ticket{KID: "d1", AppID: testApp, Channel: "room", UID: "1", Edges: edges,
			Expires: e.clock.Now().Add(time.Hour).Unix()}, priv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tok := e.token(t, "room", "1", nil)
	for name, tc := range map[string]struct {
		ticket string
		code   string
	}{
		"none":        {"", string(protocol.CodeInvalidTicket)},
		"other edges": {sign("edge-b", "edge-c"), string(protocol.CodeInvalidTicket)},
		"garbage":     {"abc.def", string(protocol.CodeInvalidTicket)},
		"ours":        {sign("edge-b", "edge-a"), "(joined)"},
	} {
		c := e.dial(t)
		r := c.request(&protocol.Message{Type: protocol.TypeJoin, Join: &protocol.Join{Version: 1, Token: tok,
			AppID: testApp, Channel: "room", UID: "1", Ticket: tc.ticket}})
		if errCode(r) != tc.code {
			t.Errorf("%s: join = %s, want %s", name, errCode(r), tc.code)
		}
	}
}

// An address that keeps sending bad tokens is blocked before its WebSocket upgrade; others are served.
func TestGuardBlocksBadClients(t *testing.T) {
	gcfg := guard.Default()
	gcfg.BadThreshold = 5
	g, err := guard.New(gcfg)
	if err != nil {
		t.Fatal(err)
	}
	e := startEdge(t, func(c *Config) { c.Guard = g })
	for i := range 5 {
		c, err := e.dialFrom(t, "127.0.0.2")
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		if r := c.join("007forged", "room", "1"); errCode(r) != string(protocol.CodeInvalidToken) {
			t.Fatalf("attempt %d: %s", i, errCode(r))
		}
	}
	_, err = e.dialFrom(t, "127.0.0.2")
	if err == nil || !strings.Contains(err.Error(), "HTTP 403") || strings.Contains(err.Error(), `Retry-After ""`) {
		t.Fatalf("blocked address connected: %v", err)
	}
	victim, err := e.dialFrom(t, "127.0.0.3")
	if err != nil {
		t.Fatal(err)
	}
	if r := victim.join(e.token(t, "room", "2", nil), "room", "2"); r.Type != protocol.TypeJoined {
		t.Fatalf("victim: %s", errCode(r))
	}
}

func TestDrainMovesClientsAway(t *testing.T) {
	e := startEdge(t)
	c := e.dial(t)
	c.join(e.token(t, "room", "1", nil), "room", "1")
	if ch := e.srv.Channels(); len(ch) != 1 || ch[0].Name != "room" || ch[0].AppID != testApp {
		t.Errorf("Channels = %+v", ch)
	}
	e.srv.Drain()
	if m := c.expect(protocol.TypeRemoved); m.Removed.Reason != protocol.CodeShuttingDown {
		t.Errorf("removed %+v", m.Removed)
	}
	late := e.dial(t)
	<-late.closed // refused
	waitFor(t, 5*time.Second, "sessions to end", func() bool { return e.srv.Sessions() == 0 && len(e.srv.Channels()) == 0 })
	e.srv.Undrain()
	again := e.dial(t)
	if r := again.join(e.token(t, "room", "1", nil), "room", "1"); r.Type != protocol.TypeJoined {
		t.Errorf("after undrain: %s", errCode(r))
	}
}

// TestJoinFailuresNameNoProjectUntilVerified covers finding 7 (anyone who knows an App ID could write into that
// project's logs and analytics with failed joins). A flood of joins naming the App ID with tokens that do not
// verify with its certificate gives join_failed events under no project (the claim in ClaimedAppID, for
// operators); a join whose token verified and whose ticket fails is the project's.
func TestJoinFailuresNameNoProjectUntilVerified(t *testing.T) {
	e, priv := startTicketEdge(t)
	good := e.token(t, "room", "1", nil)
	expired, err := token.BuildRTC(testCert, token.RTCOptions{AppID: testApp, Channel: "room", UID: "1",
		Expire: time.Minute, IssuedAt: e.clock.Now().Add(-time.Hour), Salt: 1})
	if err != nil {
		t.Fatal(err)
	}
	otherCert, err := token.BuildRTC(strings.Repeat("c", 32), token.RTCOptions{AppID: testApp, Channel: "room", UID: "1", Expire: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ticketFor := func(edge string) string {
		s, err := ticket.Sign(ticket.Ticket{KID: "d1", AppID: testApp, Channel: "room", UID: "1", Edges: []string{edge},
			Expires: e.clock.Now().Add(time.Hour).Unix()}, priv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	nextFailure := func() Event {
		t.Helper()
		for {
			select {
			case ev := <-e.events:
				if ev.Type == EventJoinFailed {
					return ev
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no join_failed event")
			}
		}
	}
	joins := []protocol.Join{
		{Version: 1, Token: "007garbage", AppID: testApp, Channel: "room", UID: "1", Ticket: ticketFor("edge-a")},
		{Version: 1, Token: good[:len(good)-6] + "AAAA==", AppID: testApp, Channel: "room", UID: "1", Ticket: ticketFor("edge-a")},
		{Version: 1, Token: otherCert, AppID: testApp, Channel: "room", UID: "1", Ticket: ticketFor("edge-a")},
		{Version: 1, Token: expired, AppID: testApp, Channel: "room", UID: "1", Ticket: ticketFor("edge-a")},
		{Version: 1, Token: good, AppID: testApp, Channel: "hall", UID: "1", Ticket: ticketFor("edge-a")},
		{Version: 2, Token: good, AppID: testApp, Channel: "room", UID: "1", Ticket: ticketFor("edge-a")},
	}
	for i := range 3 * len(joins) {
		j := joins[i%len(joins)]
		c := e.dial(t)
		if r := c.request(&protocol.Message{Type: protocol.TypeJoin, Join: &j}); r.Type != protocol.TypeError {
			t.Fatalf("join %d = %s", i, r.Type)
		}
		if ev := nextFailure(); ev.AppID != "" || ev.ClaimedAppID != testApp {
			t.Errorf("join %d (%s): event app_id %q, claimed %q; want none and %q", i, ev.Reason, ev.AppID, ev.ClaimedAppID, testApp)
		}
		<-c.closed
	}
	c := e.dial(t)
	j := protocol.Join{Version: 1, Token: good, AppID: testApp, Channel: "room", UID: "1", Ticket: ticketFor("edge-b")}
	if r := c.request(&protocol.Message{Type: protocol.TypeJoin, Join: &j}); errCode(r) != string(protocol.CodeInvalidTicket) {
		t.Fatalf("join with another edge's ticket = %s", errCode(r))
	}
	if ev := nextFailure(); ev.AppID != testApp || ev.ClaimedAppID != "" || ev.Reason != string(protocol.CodeInvalidTicket) {
		t.Errorf("failed ticket: event app_id %q, claimed %q, reason %q; want the project's", ev.AppID, ev.ClaimedAppID, ev.Reason)
	}
}

// startTicketEdge starts edge "edge-a" trusting one dispatcher key, "d1", whose private half it returns.
func startTicketEdge(t *testing.T) (*testEdge, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var keys ticket.Keys
	keys.Set("d1", pub)
	return startEdge(t, func(c *Config) { c.ID, c.Tickets = "edge-a", &keys }), priv
}
