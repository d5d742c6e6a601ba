package token

import (
	"testing"
	"time"
)

// Targets on one core (see docs/tokens.md): uncached verify ≥ 50,000/s (≤ 20 µs/op), cached ≥ 2,000,000/s
// (≤ 500 ns/op), 0 allocations cached.

func BenchmarkBuild(b *testing.B) {
	o := RTCOptions{AppID: refAppID, Channel: refChannel, UID: refUID, Expire: time.Hour,
		IssuedAt: time.Unix(refIssue, 0), Salt: 1}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildRTC(refCert, o); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseVerifyUncached(b *testing.B) {
	v := NewVerifier(WithClock(func() time.Time { return time.Unix(refIssue+1, 0) }), WithCacheSize(0))
	v.SetCertificates(refAppID, refCert)
	tok := buildRef(b, refCert, nil)
	want := Expect{AppID: refAppID, Channel: refChannel, UID: refUID}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok, want); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	v := NewVerifier(WithClock(func() time.Time { return time.Unix(refIssue+1, 0) }))
	v.SetCertificates(refAppID, refCert)
	tok := buildRef(b, refCert, nil)
	want := Expect{AppID: refAppID, Channel: refChannel, UID: refUID}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok, want); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyBadSignature is the cost of a forged token, which an attacker can send at will.
func BenchmarkVerifyBadSignature(b *testing.B) {
	v := NewVerifier(WithClock(func() time.Time { return time.Unix(refIssue+1, 0) }))
	v.SetCertificates(refAppID, refCert)
	tok := buildRef(b, secondCert, nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok, Expect{}); err != ErrSignature {
			b.Fatal(err)
		}
	}
}
