package edge

import (
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/stoa-rtc/stoa/internal/protocol"
	"github.com/stoa-rtc/stoa/token"
)

// joinHidden joins as a hidden participant.
func (c *testClient) joinHidden(tok, channel, uid string) *protocol.Message {
	c.t.Helper()
	return c.request(&protocol.Message{Type: protocol.TypeJoin, Join: &protocol.Join{Version: 1, Token: tok,
		AppID: testApp, Channel: channel, UID: uid, Hidden: true}})
}

// mentions reports whether any message c has received and not consumed names uid.
func (c *testClient) mentions(uid string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.queue {
		b, _ := protocol.Encode(m)
		if strings.Contains(string(b), `"uid":"`+uid+`"`) {
			out = append(out, string(b))
		}
	}
	return out
}

// A hidden participant needs the join-hidden privilege, cannot publish, receives what others publish, and is never
// announced: neither when it joins, nor in later joiners' participant lists, nor when it leaves.
func TestHiddenParticipant(t *testing.T) {
	e := startEdge(t)
	recorder := map[token.Privilege]time.Duration{token.PrivilegeJoinChannel: time.Hour, token.PrivilegeJoinHidden: time.Hour}

	// Without the privilege, or with a legacy-style token of privileges 1–4 only, a hidden join is refused.
	c := e.dial(t)
	if r := c.joinHidden(e.token(t, "room", "rec", nil), "room", "rec"); errCode(r) != string(protocol.CodeNoPrivilege) {
		t.Fatalf("hidden join without the privilege = %s, want no_privilege", errCode(r))
	}
	<-c.closed

	alice := e.dial(t)
	if r := alice.join(e.token(t, "room", "alice", nil), "room", "alice"); r.Type != protocol.TypeJoined {
		t.Fatal(errCode(r))
	}
	rec := e.dial(t)
	r := rec.joinHidden(e.token(t, "room", "rec", recorder), "room", "rec")
	if r.Type != protocol.TypeJoined {
		t.Fatal(errCode(r))
	}
	if len(r.Joined.Participants) != 1 || r.Joined.Participants[0].UID != "alice" {
		t.Errorf("the recorder sees %+v, want alice", r.Joined.Participants)
	}
	var granted []uint16
	for _, p := range r.Joined.Privileges {
		granted = append(granted, p.Privilege)
	}
	if len(granted) != 2 || granted[1] != uint16(token.PrivilegeJoinHidden) {
		t.Errorf("privileges %v, want join and join hidden", granted)
	}
	for _, k := range []protocol.Kind{protocol.KindAudio, protocol.KindVideo, protocol.KindData} {
		if r := rec.request(&protocol.Message{Type: protocol.TypePublish, Publish: &protocol.Publish{Kind: k}}); errCode(r) != string(protocol.CodeNoPrivilege) {
			t.Errorf("hidden publish %s = %s, want no_privilege", k, errCode(r))
		}
	}

	// The recorder receives alice's media.
	_, local, _ := alice.publish(protocol.KindAudio)
	rec.expect(protocol.TypeTrackPublished)
	stop := make(chan struct{})
	sent := make(chan struct{})
	defer func() { close(stop); <-sent }()
	go func() {
		defer close(sent)
		for seq := uint16(0); ; seq++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			local.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(seq) * 960},
				Payload: []byte("opus-ciphertext")})
		}
	}()
	select {
	case remote := <-rec.tracks:
		if pkt, _, err := remote.ReadRTP(); err != nil || string(pkt.Payload) != "opus-ciphertext" {
			t.Fatalf("the recorder read %v, %v", pkt, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the recorder got no track")
	}

	// Bob joins after the recorder: his list and alice's events name bob, never the recorder.
	bob := e.dial(t)
	r = bob.join(e.token(t, "room", "bob", nil), "room", "bob")
	if r.Type != protocol.TypeJoined {
		t.Fatal(errCode(r))
	}
	for _, p := range r.Joined.Participants {
		if p.UID == "rec" {
			t.Errorf("bob's participant list names the hidden recorder: %+v", r.Joined.Participants)
		}
	}
	if m := alice.expect(protocol.TypeParticipantJoined); m.ParticipantJoined.UID != "bob" {
		t.Errorf("alice was told %q joined, want bob", m.ParticipantJoined.UID)
	}
	// The recorder leaves, then bob: alice hears of bob's leave and, before it, nothing of the recorder's.
	rec.sendRaw(&protocol.Message{Type: protocol.TypeLeave})
	<-rec.closed
	waitFor(t, 5*time.Second, "the recorder to leave the room", func() bool {
		rm := e.srv.room(roomKey{appID: testApp, channel: "room"})
		rm.mu.Lock()
		defer rm.mu.Unlock()
		return rm.members["rec"] == nil
	})
	bob.sendRaw(&protocol.Message{Type: protocol.TypeLeave})
	if m := alice.expect(protocol.TypeParticipantLeft); m.ParticipantLeft.UID != "bob" {
		t.Errorf("alice was told %q left, want bob", m.ParticipantLeft.UID)
	}
	for _, c := range []*testClient{alice, bob} {
		if ms := c.mentions("rec"); len(ms) > 0 {
			t.Errorf("a participant was told about the hidden recorder: %s", ms)
		}
	}
}
