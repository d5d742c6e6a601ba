package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDecodeValid(t *testing.T) {
	yes := true
	for _, m := range []*Message{
		{Type: TypeJoin, ID: 1, Join: &Join{Version: 1, Token: "007x", AppID: "app", Channel: "room 1", UID: "42", AutoSubscribe: &yes}},
		{Type: TypeOffer, ID: 2, Offer: &SDP{SDP: "v=0"}},
		{Type: TypePublish, ID: 3, Publish: &Publish{Kind: KindVideo}},
		{Type: TypeOK, ID: 3},
		{Type: TypeOK, ID: 3, OK: &OK{TrackID: "t1"}},
		{Type: TypeLeave},
		{Type: TypePing, ID: 9},
		{Type: TypeError, Error: &Error{Code: CodeNoPrivilege, Message: "no"}},
		{Type: TypeRemoved, Removed: &Removed{Reason: CodeReplaced}},
	} {
		b, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Errorf("Decode(%s): %v", b, err)
			continue
		}
		again, _ := Encode(got)
		if string(again) != string(b) {
			t.Errorf("round trip: %s → %s", b, again)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, tc := range []struct {
		in     string
		code   Code
		reason string
	}{
		{`{`, CodeBadRequest, "invalid JSON"},
		{`[]`, CodeBadRequest, "invalid JSON"},
		{`{"type":"join"} {}`, CodeBadRequest, "more than one"},
		{`{}`, CodeBadRequest, "missing type"},
		{`{"type":"dance"}`, CodeBadRequest, "unknown type"},
		{`{"type":"join"}`, CodeBadRequest, "exactly its own payload"},
		{`{"type":"join","offer":{"sdp":"x"}}`, CodeBadRequest, "exactly its own payload"},
		{`{"type":"ping","join":{}}`, CodeBadRequest, "no payload"},
		{`{"type":"join","join":{"token":"t","app_id":"a","channel":"c","uid":"1","extra":1}}`, CodeBadRequest, "unknown field"},
		{`{"type":"join","join":{"token":"","app_id":"a","channel":"c","uid":"1"}}`, CodeBadRequest, "join.token is required"},
		{`{"type":"join","join":{"token":"t","app_id":"a","channel":"` + strings.Repeat("c", 65) + `","uid":"1"}}`, CodeBadRequest, "channel is longer"},
		{`{"type":"join","join":{"token":"t","app_id":"a","channel":"c\n","uid":"1"}}`, CodeBadRequest, "printable"},
		{`{"type":"join","join":{"token":"t","app_id":"a","channel":"c","uid":""}}`, CodeBadRequest, "uid is required"},
		{`{"type":"publish","publish":{"kind":"smell"}}`, CodeBadRequest, "audio, video or data"},
		{`{"type":"publish","id":-1,"publish":{"kind":"audio"}}`, CodeBadRequest, "invalid JSON"},
		{`{"type":"offer","offer":{"sdp":""}}`, CodeBadRequest, "offer.sdp is required"},
		{`{"type":"ping","x":"` + strings.Repeat("a", MaxMessageSize) + `"}`, CodeMessageTooLarge, "limit"},
	} {
		_, err := Decode([]byte(tc.in))
		var de *DecodeError
		if !errors.As(err, &de) || de.Code != tc.code || !strings.Contains(de.Reason, tc.reason) {
			t.Errorf("Decode(%.60s) = %v, want %s %q", tc.in, err, tc.code, tc.reason)
		}
	}
}

func TestDataFrame(t *testing.T) {
	b := AppendDataFrame(nil, "track-1", []byte("hello"))
	id, p, err := ParseDataFrame(b)
	if err != nil || id != "track-1" || string(p) != "hello" {
		t.Fatalf("ParseDataFrame = %q %q %v", id, p, err)
	}
	for _, bad := range [][]byte{nil, {0}, {5, 'a'}, {0, 'a'}} {
		if _, _, err := ParseDataFrame(bad); !errors.Is(err, ErrDataFrame) {
			t.Errorf("ParseDataFrame(%v) = %v", bad, err)
		}
	}
}

// FuzzDecode: arbitrary bytes never panic, every refusal is a DecodeError with a code, and whatever is accepted
// re-encodes to a message that decodes to the same thing.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"type":"join","id":1,"join":{"version":1,"token":"007abc","app_id":"a","channel":"c","uid":"1"}}`))
	f.Add([]byte(`{"type":"publish","id":2,"publish":{"kind":"audio"}}`))
	f.Add([]byte(`{"type":"ok","id":2,"ok":{"track_id":"t"}}`))
	f.Add([]byte(`{"type":"leave"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Code == "" {
				t.Fatalf("error %v is not a DecodeError with a code", err)
			}
			return
		}
		enc, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded message refused: %v\n%s", err, enc)
		}
		a, _ := json.Marshal(m)
		c, _ := json.Marshal(m2)
		if string(a) != string(c) {
			t.Fatalf("round trip differs:\n%s\n%s", a, c)
		}
	})
}

func FuzzParseDataFrame(f *testing.F) {
	f.Add(AppendDataFrame(nil, "t", []byte("x")))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, p, err := ParseDataFrame(b)
		if err != nil {
			return
		}
		if again := AppendDataFrame(nil, id, p); string(again) != string(b) {
			t.Fatalf("round trip differs")
		}
	})
}
