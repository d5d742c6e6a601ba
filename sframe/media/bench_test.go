package media

import (
	"testing"

	"github.com/stoa-rtc/stoa/sframe"
)

// BenchmarkSealOpenVP8 seals and opens 1,200-byte VP8 delta frames of a known sender: the media profile's hot path.
func BenchmarkSealOpenVP8(b *testing.B) {
	secret, r := channel(b, sframe.DefaultSuite, 1)
	s := newSender(b, sframe.DefaultSuite, secret, NewKID(1))
	frame := append([]byte{0x31, 1, 0}, make([]byte, 1197)...)
	dst := make([]byte, 0, 2048)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	var wire []byte
	for b.Loop() {
		wire, _ = s.Seal(wire[:0], VP8, frame)
		if _, err := r.Open(dst, VP8, wire); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenForgedNewKID measures what a forged frame with a new KID of a known generation costs: one key
// derivation, then rejection.
func BenchmarkOpenForgedNewKID(b *testing.B) {
	_, r := channel(b, sframe.DefaultSuite, 1)
	forged, _ := newSender(b, sframe.DefaultSuite, GenerateSecret(), NewKID(1)).Seal(nil, Opus, []byte{0x78, 1, 2})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Open(nil, Opus, forged); err != sframe.ErrAuth {
			b.Fatal(err)
		}
	}
}
