package sframe

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"testing"
)

var benchSizes = []int{100, 1200, 10000}

// BenchmarkSeal measures Sender.Seal per suite and frame size (4 bytes of metadata, as a media clear prefix would
// add). Compare the GCM suites with BenchmarkRawGCM, which runs crypto/cipher alone on the same sizes.
func BenchmarkSeal(b *testing.B) {
	for _, suite := range allSuites {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", suite, size), func(b *testing.B) {
				s, _ := pair(b, suite, 0x0123456789abcdef)
				md, pt := []byte{1, 2, 3, 4}, make([]byte, size)
				dst := make([]byte, 0, size+64)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.Seal(dst, md, pt); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkOpen measures Receiver.Open per suite and frame size. Every iteration opens the same frame; the replay
// window is reset in between (a few nanoseconds) so that it is not rejected as a replay.
func BenchmarkOpen(b *testing.B) {
	for _, suite := range allSuites {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", suite, size), func(b *testing.B) {
				const kid = 0x0123456789abcdef
				s, r := pair(b, suite, kid)
				md := []byte{1, 2, 3, 4}
				frame, _ := s.Seal(nil, md, make([]byte, size))
				window := &r.keys[kid].window
				dst := make([]byte, 0, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					window.Reset()
					if _, err := r.Open(dst, md, frame); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkRawGCM is the baseline: crypto/cipher AES-GCM sealing the same sizes, with no SFrame work at all.
func BenchmarkRawGCM(b *testing.B) {
	for _, keySize := range []int{16, 32} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("AES-%d/%d", keySize*8, size), func(b *testing.B) {
				block, _ := aes.NewCipher(make([]byte, keySize))
				gcm, _ := cipher.NewGCM(block)
				nonce, pt := make([]byte, 12), make([]byte, size)
				dst := make([]byte, 0, size+16)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					gcm.Seal(dst, nonce, pt, nil)
				}
			})
		}
	}
}
