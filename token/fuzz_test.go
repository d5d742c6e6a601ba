package token

import (
	"cmp"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/tokentest"
)

// FuzzParse feeds arbitrary strings to the parsers: they never panic, every error is ErrMalformed, and whatever
// parses re-encodes to the very bytes that were signed.
func FuzzParse(f *testing.F) {
	for _, c := range loadPublished(f) {
		f.Add(c.Token)
	}
	f.Add("006970CA35de60c44645bbae8a215061b33IACV0fZUBw+72cVoL9eyGGh3Q6Poi8bgjwVLnyKSJyOXR7dIfRBXoFHlEAABAAAAR/QQAAEAAQCvKDdW")
	f.Add("007")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		if err != nil {
			if !isMalformed(err) {
				t.Fatalf("Parse error %v does not match ErrMalformed", err)
			}
		} else {
			checkReencoding(t, tok)
			_ = tok.Verify(refCert, Expect{Channel: "c", UID: "1"}, time.Unix(refIssue, 0))
		}
		if t6, err := Parse006(s); err == nil {
			_, _ = t6.Verify(refCert, Expect{Channel: "c", UID: "1"}, time.Unix(refIssue, 0))
		} else if !isMalformed(err) {
			t.Fatalf("Parse006 error %v does not match ErrMalformed", err)
		}
	})
}

// FuzzContent fuzzes the decompressed content directly, which reaches the layout parser far more often than
// fuzzing whole tokens does.
func FuzzContent(f *testing.F) {
	for _, c := range loadPublished(f) {
		if content, err := decode(c.Token); err == nil {
			f.Add(content)
		}
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		tok, err := parseContent(content)
		if err != nil {
			if !isMalformed(err) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		checkReencoding(t, tok)
	})
}

// checkReencoding checks that a parsed token re-encodes to content that parses to the same token. (Only the byte
// order of services and privileges may differ: builders sort them, but the parser does not insist.)
func checkReencoding(t *testing.T, tok *Token) {
	t.Helper()
	info, err := tok.appendSigningInfo(nil)
	if err != nil {
		t.Fatalf("a parsed token does not re-encode: %v", err)
	}
	content := append(appendU16(nil, uint16(len(tok.signature))), tok.signature...)
	again, err := parseContent(append(content, info...))
	if err != nil {
		t.Fatalf("re-encoded token does not parse: %v", err)
	}
	want := *tok
	want.Services = slices.Clone(tok.Services)
	slices.SortStableFunc(want.Services, func(a, b Service) int { return cmp.Compare(a.Type, b.Type) })
	again.signingInfo, want.signingInfo = nil, nil
	if !reflect.DeepEqual(again, &want) {
		t.Fatalf("re-encoded token differs:\n%+v\n%+v", again, &want)
	}
}

// FuzzBuildParse builds tokens from random fields; parsing gives back exactly those fields and the token verifies
// with its certificate only.
func FuzzBuildParse(f *testing.F) {
	f.Add(uint32(refIssue), uint32(600), uint32(1), "channel", "2882341273", "user", uint16(0x0f), uint32(600), int16(-1))
	f.Add(uint32(0), uint32(0), uint32(0), "", "", "", uint16(0), uint32(0), int16(0))
	f.Fuzz(func(t *testing.T, issue, expire, salt uint32, channel, uid, user string, privMask uint16, privExpire uint32, role int16) {
		tok := &Token{AppID: refAppID, IssueTS: issue, Expire: expire, Salt: salt}
		privs := map[Privilege]uint32{}
		for p := range Privilege(16) {
			if privMask&(1<<p) != 0 {
				privs[p+1] = privExpire + uint32(p)
			}
		}
		tok.Services = []Service{
			{Type: ServiceRTC, Channel: channel, UID: uid, Privileges: privs},
			{Type: ServiceChat, UserID: user, Privileges: map[Privilege]uint32{}},
			{Type: ServiceAPaaS, RoomUUID: channel, UserUUID: user, Role: role, Privileges: privs},
			{Type: ServiceRTM2, UserID: user, Privileges: privs,
				Permissions: map[uint16]map[uint16][]string{privMask: {1: {channel, user}}}},
		}
		s, err := tok.Build(refCert)
		if err != nil {
			return // a field too long for the format: refused, not mis-encoded
		}
		if len(s) > MaxTokenLength {
			return
		}
		got, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse of a built token: %v", err)
		}
		got.signature, got.signingInfo = nil, nil
		if !reflect.DeepEqual(got, tok) {
			a, _ := json.Marshal(got)
			b, _ := json.Marshal(tok)
			t.Fatalf("round trip differs:\n got %s\nwant %s", a, b)
		}
		parsed, _ := Parse(s)
		now := time.Unix(int64(issue), 0)
		if err := parsed.Verify(secondCert, Expect{}, now); err != ErrSignature {
			t.Fatalf("verified with the wrong certificate: %v", err)
		}
		if !parsed.checkSignature(refCert) {
			t.Fatal("signature does not verify with its certificate")
		}
	})
}

func isMalformed(err error) bool {
	_, ok := err.(*MalformedError)
	return ok
}

// FuzzVerify006Splits checks the property that closes finding 1: of all the ways to split the signed bytes
// channel || uid of a 006 token into a channel and a uid (with the CRCs rewritten to match, as an attacker can),
// the verifier accepts at most one.
func FuzzVerify006Splits(f *testing.F) {
	const app, cert = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	now := time.Unix(1_800_000_000, 0)
	v := NewVerifier(WithClock(func() time.Time { return now }))
	v.SetApp(app, App{Certificates: []string{cert}, Accept006: true})
	for _, s := range [][2]string{{"room1", "23"}, {"room", "123"}, {"a", "1"}, {"x9", "0"}, {"r", "4294967295"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, channel, uid string) {
		signed := channel + uid
		if len(signed) > 300 {
			return
		}
		tok := tokentest.Build006(cert, app, channel, uid, 1, uint32(now.Add(time.Hour).Unix()))
		var accepted []string
		for i := 1; i <= len(signed); i++ {
			c, u := signed[:i], signed[i:]
			if _, err := v.Verify(tokentest.Retarget006(tok, c, u), Expect{AppID: app, Channel: c, UID: u}); err == nil {
				accepted = append(accepted, c+"/"+u)
			}
		}
		if len(accepted) > 1 {
			t.Fatalf("one 006 signature accepted for %q", accepted)
		}
	})
}
