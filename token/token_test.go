package token

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

// tokenFromContent wraps raw content the way a builder would, so tests can feed the parser any layout.
func tokenFromContent(content []byte) string {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(content)
	zw.Close()
	return Version + base64.StdEncoding.EncodeToString(z.Bytes())
}

func refContent(t *testing.T) []byte {
	t.Helper()
	s, err := refToken(refUID).Build(refCert)
	if err != nil {
		t.Fatal(err)
	}
	c, err := decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseHostileInput(t *testing.T) {
	good := refContent(t)
	unknownService := append([]byte(nil), good...)
	// The service type follows signature (34), app id (34), 3×u32 and the service count (2).
	unknownService[34+34+12+2] = 9
	countTooLarge := append([]byte(nil), good...)
	countTooLarge[34+34+12] = 200

	var bomb bytes.Buffer
	zw := zlib.NewWriter(&bomb)
	zw.Write(make([]byte, 1<<20)) // 1 MiB of zeros compress to 1-2 KiB (by Go version): the token fits the length limit
	zw.Close()

	badChecksum := []byte(tokenFromContent(good)[3:])
	raw, _ := base64.StdEncoding.DecodeString(string(badChecksum))
	raw[len(raw)-1] ^= 1

	tests := []struct {
		name, token, reason string
	}{
		{"empty", "", "not a version 007 token"},
		{"other version", "008abc", "not a version 007 token"},
		{"too long", Version + strings.Repeat("A", MaxTokenLength), "longer than the limit"},
		{"bad base64", Version + "!!!!", "bad base64"},
		{"not zlib", Version + base64.StdEncoding.EncodeToString([]byte("hello world")), "zlib"},
		{"bad checksum", Version + base64.StdEncoding.EncodeToString(raw), "zlib"},
		{"zlib bomb", Version + base64.StdEncoding.EncodeToString(bomb.Bytes()), "larger than"},
		{"trailing bytes", tokenFromContent(append(append([]byte(nil), good...), 0)), "left after the last service"},
		{"truncated", tokenFromContent(good[:len(good)-3]), "truncated"},
		{"unknown service", tokenFromContent(unknownService), "unknown service type 9"},
		{"count too large", tokenFromContent(countTooLarge), "larger than what follows"},
		{"short signature", tokenFromContent(append([]byte{1, 0, 7}, good[34:]...)), "signature is 1 bytes"},
		{"006 to Parse", "006" + refAppID + "AAAA", "Parse006"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.token)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse: %v, want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not say %q", err, tc.reason)
			}
		})
	}
	if bomb.Len() > 3*MaxTokenLength/4 {
		t.Fatalf("the bomb is %d bytes compressed: it would hit the length limit instead", bomb.Len())
	}
}

func TestZlibBombIsCheap(t *testing.T) {
	var bomb bytes.Buffer
	zw := zlib.NewWriter(&bomb)
	zw.Write(make([]byte, 20<<20))
	zw.Close()
	raw := bomb.Bytes()
	// The least of a few runs: TotalAlloc counts every goroutine's allocations, and the race detector's too.
	least := uint64(1 << 62)
	for range 5 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := inflate(raw); !errors.Is(err, ErrMalformed) {
			t.Fatalf("inflate = %v, want ErrMalformed", err)
		}
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	// The bomb would expand to 20 MiB; a bounded inflate allocates about the content limit and a decompressor.
	if least > 1<<20 {
		t.Errorf("refusing a zlib bomb allocated %d bytes", least)
	}
}

func TestVerifyErrors(t *testing.T) {
	build := func(mod func(*Token)) *Token {
		tok := refToken(refUID)
		tok.Services[0].Privileges[PrivilegePublishAudio] = 300
		if mod != nil {
			mod(tok)
		}
		s, err := tok.Build(refCert)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	at := time.Unix(refIssue+10, 0)
	tests := []struct {
		name string
		tok  *Token
		cert string
		want Expect
		now  time.Time
		err  error
	}{
		{"valid", build(nil), refCert, Expect{refAppID, refChannel, refUID}, at, nil},
		{"valid uid only", build(nil), refCert, Expect{UID: refUID}, at, nil},
		{"wrong certificate", build(nil), strings.ToLower(refCert), Expect{}, at, ErrSignature},
		{"wrong app", build(nil), refCert, Expect{AppID: strings.Repeat("0", 32)}, at, ErrAppIDMismatch},
		{"wrong channel", build(nil), refCert, Expect{Channel: "other"}, at, ErrChannelMismatch},
		{"wrong uid", build(nil), refCert, Expect{Channel: refChannel, UID: "42"}, at, ErrUIDMismatch},
		{"wildcard uid", build(func(t *Token) { t.Services[0].UID = "" }), refCert, Expect{Channel: refChannel, UID: "42"}, at, nil},
		{"uid 0 needs wildcard", build(nil), refCert, Expect{Channel: refChannel, UID: "0"}, at, ErrUIDMismatch},
		{"expired", build(nil), refCert, Expect{}, time.Unix(refIssue+600, 0), ErrExpired},
		{"not yet expired", build(nil), refCert, Expect{}, time.Unix(refIssue+299, 0), nil},
		{"privilege expired", build(nil), refCert, Expect{Channel: refChannel}, time.Unix(refIssue+300, 0), ErrPrivilegeExpired},
		{"no rtc service", build(func(t *Token) {
			t.Services[0] = Service{Type: ServiceRTM, UserID: "u", Privileges: map[Privilege]uint32{1: 600}}
		}),
			refCert, Expect{Channel: refChannel}, at, ErrNoService},
		{"no join privilege", build(func(t *Token) { delete(t.Services[0].Privileges, PrivilegeJoinChannel) }),
			refCert, Expect{Channel: refChannel}, at, ErrNoPrivilege},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.tok.Verify(tc.cert, tc.want, tc.now)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), refCert) {
				t.Errorf("error contains the certificate: %v", err)
			}
		})
	}
	var pe *PrivilegeExpiredError
	err := build(nil).Verify(refCert, Expect{}, time.Unix(refIssue+300, 0))
	if !errors.As(err, &pe) || pe.Privilege != PrivilegePublishAudio || pe.At.Unix() != refIssue+300 {
		t.Errorf("Verify = %v, want publish audio expired at %d", err, refIssue+300)
	}
}

func TestBuildRTC(t *testing.T) {
	issued := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		role  Role
		privs []Privilege
	}{
		{RolePublisher, []Privilege{1, 2, 3, 4}},
		{RoleSubscriber, []Privilege{1}},
		{0, []Privilege{1, 2, 3, 4}}, // the default role publishes
	} {
		s, err := BuildRTC(refCert, RTCOptions{AppID: refAppID, Channel: "c", UID: UIDString(7), Role: tc.role,
			Expire: time.Hour, PrivilegeExpire: 10 * time.Minute, IssuedAt: issued, Salt: 42})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		if tok.IssueTS != 1700000000 || tok.Salt != 42 || tok.Expire != 3600 {
			t.Errorf("header %d %d %d", tok.IssueTS, tok.Salt, tok.Expire)
		}
		rtc := tok.Services[0]
		if rtc.Channel != "c" || rtc.UID != "7" || len(rtc.Privileges) != len(tc.privs) {
			t.Errorf("role %d: service %+v", tc.role, rtc)
		}
		for _, p := range tc.privs {
			if rtc.Privileges[p] != 600 {
				t.Errorf("role %d: privilege %d = %d, want 600", tc.role, p, rtc.Privileges[p])
			}
		}
	}
	if UIDString(0) != "" {
		t.Error("uid 0 must be the wildcard")
	}
	// A random salt is in 1..MaxSalt and the issue time defaults to now.
	tok, err := NewRTCToken(RTCOptions{AppID: refAppID, Channel: "c", Expire: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Salt < 1 || tok.Salt > MaxSalt || time.Since(tok.IssuedAt()) > time.Minute {
		t.Errorf("salt %d issued %v", tok.Salt, tok.IssuedAt())
	}
}

func TestBuildRejectsBadInput(t *testing.T) {
	for name, o := range map[string]struct {
		appID, cert string
		tok         func(*Token)
	}{
		"short app id":     {"abc", refCert, nil},
		"non-hex cert":     {refAppID, strings.Repeat("z", 32), nil},
		"no services":      {refAppID, refCert, func(t *Token) { t.Services = nil }},
		"unknown service":  {refAppID, refCert, func(t *Token) { t.Services[0].Type = 99 }},
		"channel too long": {refAppID, refCert, func(t *Token) { t.Services[0].Channel = strings.Repeat("c", 70000) }},
	} {
		tok := refToken(refUID)
		tok.AppID = o.appID
		if o.tok != nil {
			o.tok(tok)
		}
		_, err := tok.Build(o.cert)
		if !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: Build = %v, want ErrInvalidInput", name, err)
		}
		if err != nil && strings.Contains(err.Error(), o.cert) {
			t.Errorf("%s: error contains the certificate", name)
		}
	}
}

func TestToken006(t *testing.T) {
	const v = "006970CA35de60c44645bbae8a215061b33IACV0fZUBw+72cVoL9eyGGh3Q6Poi8bgjwVLnyKSJyOXR7dIfRBXoFHlEAABAAAAR/QQAAEAAQCvKDdW"
	tok, err := Parse006(v)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AppID != refAppID || tok.Salt != 1 || tok.TS != 1111111 || tok.Privileges[PrivilegeJoinChannel] != 1446455471 {
		t.Fatalf("decoded %+v", tok)
	}
	want := Expect{AppID: refAppID, Channel: refChannel, UID: refUID}
	before := time.Unix(1111111-1, 0)
	if _, err := tok.Verify(refCert, want, before); err != nil {
		t.Errorf("Verify: %v", err)
	}
	for name, tc := range map[string]struct {
		cert string
		want Expect
		now  time.Time
		err  error
	}{
		"bad certificate": {strings.ToLower(refCert), want, before, ErrSignature},
		"other channel":   {refCert, Expect{Channel: "x", UID: refUID}, before, ErrChannelMismatch},
		"other uid":       {refCert, Expect{Channel: refChannel, UID: "1"}, before, ErrUIDMismatch},
		"expired":         {refCert, want, time.Unix(1111111, 0), ErrExpired},
	} {
		if _, err := tok.Verify(tc.cert, tc.want, tc.now); !errors.Is(err, tc.err) {
			t.Errorf("%s: Verify = %v, want %v", name, err, tc.err)
		}
	}
	for _, bad := range []string{"006", "006" + refAppID + "!!", v + "AAAA", v[:len(v)-4]} {
		if _, err := Parse006(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse006(%.40q…) = %v, want ErrMalformed", bad, err)
		}
	}
}
