package edge

import (
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/protocol"
	"github.com/stoa-rtc/stoa/internal/tokentest"
	"github.com/stoa-rtc/stoa/token"
)

// TestJoinRefusesRetargeted006 covers finding 1 at the edge, where a re-targeted 006 token used to replace a
// participant: a genuine 006 token for room1/23, its unsigned CRCs rewritten for room123 and the wildcard uid (or
// uid 1), or for room12/3, is refused with token_006_ambiguous and uid 1 of room123 stays in the call. Without the
// project's opt-in every 006 token is refused with token_006_refused.
func TestJoinRefusesRetargeted006(t *testing.T) {
	var v *token.Verifier
	e := startEdge(t, func(c *Config) { v = c.Verifier })
	ts := uint32(e.clock.Now().Add(24 * time.Hour).Unix())
	genuine := tokentest.Build006(testCert, testApp, "hall", "5", 1, ts)
	c := e.dial(t)
	if r := c.join(genuine, "hall", "5"); errCode(r) != string(protocol.CodeToken006Refused) {
		t.Fatalf("006 join without the opt-in = %s, want %s", errCode(r), protocol.CodeToken006Refused)
	}
	<-c.closed

	v.SetApp(testApp, token.App{Certificates: []string{testCert}, Accept006: true})
	victim := e.dial(t)
	if r := victim.join(e.token(t, "room123", "1", nil), "room123", "1"); r.Type != protocol.TypeJoined {
		t.Fatalf("victim join = %s", errCode(r))
	}
	room1 := tokentest.Build006(testCert, testApp, "room1", "23", 2, ts)
	for _, tc := range []struct{ channel, uid, crcUID string }{
		{"room123", "1", ""}, {"room123", "1", "1"}, {"room12", "3", "3"},
	} {
		a := e.dial(t)
		if r := a.join(tokentest.Retarget006(room1, tc.channel, tc.crcUID), tc.channel, tc.uid); errCode(r) != string(protocol.CodeToken006Ambiguous) {
			t.Errorf("room1/23 as %s/%s (uid CRC of %q) = %s, want %s", tc.channel, tc.uid, tc.crcUID, errCode(r), protocol.CodeToken006Ambiguous)
		}
		<-a.closed
	}
	if r := victim.request(&protocol.Message{Type: protocol.TypePing}); r.Type != protocol.TypePong {
		t.Errorf("the victim was removed: %s", errCode(r))
	}
	if r := e.dial(t).join(genuine, "hall", "5"); r.Type != protocol.TypeJoined {
		t.Errorf("genuine 006 join with the opt-in = %s", errCode(r))
	}
}
