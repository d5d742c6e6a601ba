package token

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/tokentest"
)

const secondCert = "0123456789abcdef0123456789ABCDEF"

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

func buildRef(t testing.TB, cert string, mod func(*RTCOptions)) string {
	t.Helper()
	o := RTCOptions{AppID: refAppID, Channel: refChannel, UID: refUID, Expire: 600 * time.Second,
		PrivilegeExpire: 600 * time.Second, IssuedAt: time.Unix(refIssue, 0), Salt: 1}
	if mod != nil {
		mod(&o)
	}
	s, err := BuildRTC(cert, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifierRotation(t *testing.T) {
	clock := &fakeClock{t: time.Unix(refIssue+1, 0)}
	v := NewVerifier(WithClock(clock.Now))
	want := Expect{AppID: refAppID, Channel: refChannel, UID: refUID}
	oldTok, newTok := buildRef(t, refCert, nil), buildRef(t, secondCert, nil)

	if _, err := v.Verify(oldTok, want); !errors.Is(err, ErrUnknownApp) {
		t.Fatalf("no certificates: %v, want ErrUnknownApp", err)
	}
	v.SetCertificates(refAppID, refCert)
	if _, err := v.Verify(newTok, want); !errors.Is(err, ErrSignature) {
		t.Fatalf("token of a certificate not yet added: %v", err)
	}
	// Rotation: add the new certificate as secondary; both verify.
	v.SetCertificates(refAppID, refCert, secondCert)
	for _, tok := range []string{oldTok, newTok, oldTok, newTok} {
		if _, err := v.Verify(tok, want); err != nil {
			t.Fatalf("during rotation: %v", err)
		}
	}
	// Retire the old certificate: its cached tokens stop verifying at once.
	v.SetCertificates(refAppID, secondCert)
	if _, err := v.Verify(oldTok, want); !errors.Is(err, ErrSignature) {
		t.Fatalf("retired certificate: %v, want ErrSignature", err)
	}
	if _, err := v.Verify(newTok, want); err != nil {
		t.Fatal(err)
	}
	v.SetCertificates(refAppID)
	if _, err := v.Verify(newTok, want); !errors.Is(err, ErrUnknownApp) {
		t.Fatalf("removed app: %v", err)
	}
}

func TestVerifierCacheChecksEveryCall(t *testing.T) {
	clock := &fakeClock{t: time.Unix(refIssue+1, 0)}
	v := NewVerifier(WithClock(clock.Now))
	v.SetCertificates(refAppID, refCert)
	tok := buildRef(t, refCert, func(o *RTCOptions) {
		o.Privileges = map[Privilege]time.Duration{PrivilegeJoinChannel: 500 * time.Second, PrivilegePublishAudio: 100 * time.Second}
	})
	want := Expect{AppID: refAppID, Channel: refChannel, UID: refUID}
	g, err := v.Verify(tok, want)
	if err != nil {
		t.Fatal(err)
	}
	if !g.Allows(PrivilegePublishAudio, clock.Now()) || g.Allows(PrivilegePublishVideo, clock.Now()) {
		t.Errorf("grant %+v: want audio, not video", g)
	}
	if at, _ := g.PrivilegeExpiresAt(PrivilegeJoinChannel); at.Unix() != refIssue+500 {
		t.Errorf("join expires at %v", at)
	}
	// Cached now: mismatches and expiry are still refused.
	for name, tc := range map[string]struct {
		want Expect
		now  int64
		err  error
	}{
		"other channel": {Expect{AppID: refAppID, Channel: "x", UID: refUID}, refIssue + 1, ErrChannelMismatch},
		"other uid":     {Expect{AppID: refAppID, Channel: refChannel, UID: "9"}, refIssue + 1, ErrUIDMismatch},
		"other app":     {Expect{AppID: secondCert, Channel: refChannel, UID: refUID}, refIssue + 1, ErrAppIDMismatch},
		"join expired":  {want, refIssue + 500, ErrPrivilegeExpired},
		"token expired": {want, refIssue + 600, ErrExpired},
		"still good":    {want, refIssue + 499, nil},
	} {
		clock.Set(time.Unix(tc.now, 0))
		g, err := v.Verify(tok, tc.want)
		if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
			t.Errorf("%s: %v, want %v", name, err, tc.err)
		}
		if err == nil && g.Allows(PrivilegePublishAudio, clock.Now()) {
			t.Errorf("%s: audio privilege should have expired", name)
		}
	}
	if hits, misses := v.Stats(); misses != 1 || hits != 6 {
		t.Errorf("hits %d misses %d, want 6 and 1", hits, misses)
	}
}

func TestVerifierDoesNotCacheFailures(t *testing.T) {
	v := NewVerifier(WithClock(func() time.Time { return time.Unix(refIssue+1, 0) }), WithCacheSize(4))
	v.SetCertificates(refAppID, refCert)
	bad := buildRef(t, secondCert, nil)
	for range 3 {
		if _, err := v.Verify(bad, Expect{}); !errors.Is(err, ErrSignature) {
			t.Fatal(err)
		}
	}
	if len(v.cache) != 0 {
		t.Errorf("cache holds %d entries after failures", len(v.cache))
	}
	// The cache stays within its size.
	for salt := range uint32(20) {
		tok := buildRef(t, refCert, func(o *RTCOptions) { o.Salt = salt + 1 })
		if _, err := v.Verify(tok, Expect{}); err != nil {
			t.Fatal(err)
		}
	}
	if len(v.cache) > 4 {
		t.Errorf("cache holds %d entries, limit 4", len(v.cache))
	}
}

func TestVerifier006(t *testing.T) {
	const v006 = "006970CA35de60c44645bbae8a215061b33IACV0fZUBw+72cVoL9eyGGh3Q6Poi8bgjwVLnyKSJyOXR7dIfRBXoFHlEAABAAAAR/QQAAEAAQCvKDdW"
	v := NewVerifier(WithClock(func() time.Time { return time.Unix(1000000, 0) }))
	want := Expect{AppID: refAppID, Channel: refChannel, UID: refUID}
	// Finding 1: 006 tokens are refused unless the app opts in.
	v.SetCertificates(refAppID, secondCert, refCert)
	if _, err := v.Verify(v006, want); !errors.Is(err, Err006Refused) {
		t.Fatalf("006 token without the opt-in: %v, want Err006Refused", err)
	}
	v.SetApp(refAppID, App{Certificates: []string{secondCert, refCert}, Accept006: true})
	g, err := v.Verify(v006, want)
	if err != nil {
		t.Fatal(err)
	}
	if g.Channel != refChannel || g.UID != refUID || !g.Allows(PrivilegeJoinChannel, time.Unix(1000000, 0)) {
		t.Errorf("grant %+v", g)
	}
	if _, err := v.Verify(v006, Expect{AppID: "other", Channel: refChannel, UID: refUID}); !errors.Is(err, ErrAppIDMismatch) {
		t.Errorf("006 token for another app: %v, want ErrAppIDMismatch", err)
	}
}

// TestVerifier006Retarget performs the attacks of finding 1 (HIGH): the 006 signature covers app_id || channel ||
// uid without separators and the CRC-32 fields are unsigned, so a holder of a token rewrites the CRCs and
// presents it for another split of the same bytes, or for the wildcard uid. Even with the opt-in, every such
// split is refused with ErrAmbiguous006.
func TestVerifier006Retarget(t *testing.T) {
	const app, cert = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	now := time.Unix(1_800_000_000, 0)
	ts := uint32(now.Add(24 * time.Hour).Unix())
	v := NewVerifier(WithClock(func() time.Time { return now }))
	v.SetApp(app, App{Certificates: []string{cert}, Accept006: true})

	// The finding's token: channel room1, uid 23. Its channel ends with a digit, so it is refused even as issued,
	// and so are the splits that keep a digit at the channel's end and the wildcard.
	room1 := tokentest.Build006(cert, app, "room1", "23", 7, ts)
	for _, tc := range []struct{ channel, uid, crcUID string }{
		{"room1", "23", "23"}, // as issued
		{"room12", "3", "3"},  // a digit moved from the uid to the channel
		{"room123", "9", ""},  // the wildcard uid: CRC of ""
		{"room123", "23", ""}, // the wildcard uid with the real uid
		{"room123", "1", "1"}, // any uid, CRCs rewritten
	} {
		tok := tokentest.Retarget006(room1, tc.channel, tc.crcUID)
		_, err := v.Verify(tok, Expect{AppID: app, Channel: tc.channel, UID: tc.uid})
		var amb *Ambiguous006Error
		if !errors.As(err, &amb) {
			t.Errorf("room1/23 presented as %s/%s (uid CRC of %q): %v, want an Ambiguous006Error", tc.channel, tc.uid, tc.crcUID, err)
		}
	}
	// The one split of "room123" that can be accepted is room/123; a token made for it cannot be moved to any
	// other channel or uid.
	room := tokentest.Build006(cert, app, "room", "123", 7, ts)
	if _, err := v.Verify(room, Expect{AppID: app, Channel: "room", UID: "123"}); err != nil {
		t.Fatalf("room/123 as issued: %v", err)
	}
	for _, tc := range []struct {
		channel, uid string
		want         error
	}{
		{"room1", "23", ErrAmbiguous006},
		{"room12", "3", ErrAmbiguous006},
		{"room123", "", ErrAmbiguous006},
		{"roo", "m123", ErrAmbiguous006}, // not a number
		{"room", "0123", ErrAmbiguous006},
		{"room", "1234", ErrSignature}, // an honest split of other bytes: the signature fails
	} {
		tok := tokentest.Retarget006(room, tc.channel, tc.uid)
		if _, err := v.Verify(tok, Expect{AppID: app, Channel: tc.channel, UID: tc.uid}); !errors.Is(err, tc.want) {
			t.Errorf("room/123 presented as %s/%s: %v, want %v", tc.channel, tc.uid, err, tc.want)
		}
	}
	// A token presented with its CRCs intact for another channel or uid fails on them.
	if _, err := v.Verify(room, Expect{AppID: app, Channel: "roam", UID: "123"}); !errors.Is(err, ErrChannelMismatch) {
		t.Errorf("room/123 for roam/123: %v, want ErrChannelMismatch", err)
	}
	if _, err := v.Verify(room, Expect{AppID: app, Channel: "room", UID: "124"}); !errors.Is(err, ErrUIDMismatch) {
		t.Errorf("room/123 for uid 124: %v, want ErrUIDMismatch", err)
	}
	// uid 0 as issued, and a token claiming more than 48 hours of life.
	for name, tok := range map[string]string{
		"uid 0":     tokentest.Build006(cert, app, "room", "", 7, ts),
		"long life": tokentest.Build006(cert, app, "room", "123", 7, ts+3*86400),
	} {
		if _, err := v.Verify(tok, Expect{AppID: app, Channel: "room", UID: "5"}); !errors.Is(err, ErrAmbiguous006) {
			t.Errorf("%s: %v, want ErrAmbiguous006", name, err)
		}
	}
}

func TestVerifierConcurrent(t *testing.T) {
	v := NewVerifier(WithClock(func() time.Time { return time.Unix(refIssue+1, 0) }))
	v.SetCertificates(refAppID, refCert)
	tok := buildRef(t, refCert, nil)
	want := Expect{AppID: refAppID, Channel: refChannel, UID: refUID}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				if i == 0 && j%50 == 0 {
					v.SetCertificates(refAppID, refCert, secondCert)
				}
				if _, err := v.Verify(tok, want); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestVerifyCachedDoesNotAllocate(t *testing.T) {
	v := NewVerifier(WithClock(func() time.Time { return time.Unix(refIssue+1, 0) }))
	v.SetCertificates(refAppID, refCert)
	tok := buildRef(t, refCert, nil)
	want := Expect{AppID: refAppID, Channel: refChannel, UID: refUID}
	if _, err := v.Verify(tok, want); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { v.Verify(tok, want) }); n != 0 {
		t.Errorf("cached Verify allocates %v times", n)
	}
}

// The recorder role grants joining and joining hidden; the publisher role does not grant joining hidden.
func TestRecorderRoleGrantsJoinHidden(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v := NewVerifier(WithClock(func() time.Time { return now }))
	v.SetCertificates(refAppID, refCert)
	for _, tc := range []struct {
		role   Role
		hidden bool
	}{{RoleRecorder, true}, {RolePublisher, false}, {RoleSubscriber, false}} {
		tok, err := BuildRTC(refCert, RTCOptions{AppID: refAppID, Channel: "c", UID: "9", Role: tc.role,
			Expire: time.Hour, IssuedAt: now})
		if err != nil {
			t.Fatal(err)
		}
		g, err := v.Verify(tok, Expect{AppID: refAppID, Channel: "c", UID: "9"})
		if err != nil {
			t.Fatal(err)
		}
		if got := g.Allows(PrivilegeJoinHidden, now); got != tc.hidden {
			t.Errorf("role %d: join hidden = %v, want %v", tc.role, got, tc.hidden)
		}
		if at, ok := g.PrivilegeExpiresAt(PrivilegeJoinHidden); ok && !at.Equal(now.Add(time.Hour)) {
			t.Errorf("role %d: join hidden expires at %v", tc.role, at)
		}
		if tc.role == RoleRecorder && g.Allows(PrivilegePublishAudio, now) {
			t.Error("a recorder may publish")
		}
	}
}
