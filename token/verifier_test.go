package token

import (
	"errors"
	"sync"
	"testing"
	"time"
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
	v.SetCertificates(refAppID, secondCert, refCert)
	g, err := v.Verify(v006, Expect{AppID: refAppID, Channel: refChannel, UID: refUID})
	if err != nil {
		t.Fatal(err)
	}
	if g.Channel != refChannel || g.UID != refUID || !g.Allows(PrivilegeJoinChannel, time.Unix(1000000, 0)) {
		t.Errorf("grant %+v", g)
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
