package sframe

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
)

var allSuites = []Suite{
	AES_128_CTR_HMAC_SHA256_80, AES_128_CTR_HMAC_SHA256_64, AES_128_CTR_HMAC_SHA256_32,
	AES_128_GCM_SHA256_128, AES_256_GCM_SHA512_128,
}

func testKey(seed byte) *Key {
	b := make([]byte, 32)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return NewKey(b)
}

// pair returns a Sender for kid and a Receiver holding its key.
func pair(t testing.TB, suite Suite, kid uint64) (*Sender, *Receiver) {
	t.Helper()
	s, err := NewSender(suite, kid, testKey(byte(kid)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReceiver(suite)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddKey(kid, testKey(byte(kid))); err != nil {
		t.Fatal(err)
	}
	return s, r
}

func TestSealOpenRoundTrip(t *testing.T) {
	for _, suite := range allSuites {
		s, r := pair(t, suite, 0x1234)
		for i, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 100, 1200, 5000} {
			pt := bytes.Repeat([]byte{byte(n)}, n)
			md := []byte(fmt.Sprint("metadata", i))
			if i%2 == 0 {
				md = nil
			}
			frame, err := s.Seal([]byte("keep"), md, pt)
			if err != nil {
				t.Fatal(err)
			}
			frame = frame[4:]
			if want := HeaderLen(0x1234, uint64(i)) + n + suite.TagSize(); len(frame) != want {
				t.Errorf("%v: frame of %d bytes, want %d", suite, len(frame), want)
			}
			got, err := r.Open([]byte("kept"), md, frame)
			if err != nil || !bytes.Equal(got, append([]byte("kept"), pt...)) {
				t.Fatalf("%v: Open(%d bytes) = %v", suite, n, err)
			}
		}
	}
}

// TestTamperedFramesRejected flips every bit of a sealed frame (header, ciphertext, tag) and of its metadata, and
// cuts the frame at every length: every variant is rejected with ErrAuth, and the untouched frame still opens
// afterwards (forgeries do not move the replay window).
func TestTamperedFramesRejected(t *testing.T) {
	for _, suite := range allSuites {
		t.Run(suite.String(), func(t *testing.T) {
			s, r := pair(t, suite, 300)
			s.next = 70000 // a 3-byte counter, so the header has extended KID and CTR fields
			md := []byte{0x90, 0x80, 0x00}
			frame, err := s.Seal(nil, md, []byte("a frame of media, long enough to span blocks"))
			if err != nil {
				t.Fatal(err)
			}
			reject := func(what string, md, frame []byte) {
				t.Helper()
				out, err := r.Open([]byte{1}, md, frame)
				if !errors.Is(err, ErrAuth) || errors.Is(err, ErrReplay) || !bytes.Equal(out, []byte{1}) {
					t.Fatalf("%s: Open = %x, %v; want dst unchanged and ErrAuth", what, out, err)
				}
			}
			for i := range 8 * len(frame) {
				bad := bytes.Clone(frame)
				bad[i/8] ^= 1 << (i % 8)
				reject(fmt.Sprintf("frame bit %d", i), md, bad)
			}
			for i := range 8 * len(md) {
				bad := bytes.Clone(md)
				bad[i/8] ^= 1 << (i % 8)
				reject(fmt.Sprintf("metadata bit %d", i), bad, frame)
			}
			reject("no metadata", nil, frame)
			reject("extra metadata", append(bytes.Clone(md), 0), frame)
			for n := range len(frame) {
				reject(fmt.Sprintf("truncated to %d", n), md, frame[:n])
			}
			reject("extended", md, append(bytes.Clone(frame), 0))
			if _, err := r.Open(nil, md, frame); err != nil {
				t.Fatalf("genuine frame rejected after forgeries: %v", err)
			}
		})
	}
}

func TestReplayRejected(t *testing.T) {
	s, r := pair(t, DefaultSuite, 7)
	var frames [][]byte
	for range 3 {
		f, _ := s.Seal(nil, nil, []byte("x"))
		frames = append(frames, f)
	}
	for _, i := range []int{2, 0} { // out of order is fine
		if _, err := r.Open(nil, nil, frames[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{2, 0} {
		_, err := r.Open(nil, nil, frames[i])
		if err != ErrReplay || !errors.Is(err, ErrAuth) || !errors.Is(err, ErrReplay) {
			t.Errorf("replay of frame %d: %v, want ErrReplay", i, err)
		}
	}
	// A forgery carrying an already accepted counter is a forgery, not a replay.
	forged := bytes.Clone(frames[0])
	forged[len(forged)-1] ^= 1
	if _, err := r.Open(nil, nil, forged); err != ErrAuth {
		t.Errorf("forged frame with a used counter: %v, want ErrAuth", err)
	}
	if _, err := r.Open(nil, nil, frames[1]); err != nil {
		t.Error(err)
	}
	if ErrReplay.Error() != "sframe: replayed frame" || errors.Is(ErrAuth, ErrReplay) {
		t.Error("ErrReplay")
	}
}

// TestUnknownKIDNoAllocation checks that frames of a KID without key are rejected without allocating or growing the
// receiver, and that genuine frames and Seal allocate nothing once buffers are warm.
func TestUnknownKIDNoAllocation(t *testing.T) {
	for _, suite := range allSuites {
		s, r := pair(t, suite, 1)
		stranger, _ := pair(t, suite, 99)
		forged, _ := stranger.Seal(nil, nil, make([]byte, 1200))
		dst := make([]byte, 0, 2048)
		if n := testing.AllocsPerRun(1000, func() {
			if _, err := r.Open(dst, nil, forged); err != ErrAuth {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%v: unknown KID: %v allocs per frame", suite, n)
		}
		if r.Len() != 1 || len(r.keys) != 1 {
			t.Errorf("%v: receiver grew to %d keys", suite, r.Len())
		}

		md, pt := []byte{1, 2, 3}, make([]byte, 1200)
		if n := testing.AllocsPerRun(1000, func() {
			if _, err := s.Seal(dst[:0], md, pt); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%v: Seal: %v allocs per frame", suite, n)
		}
		const runs = 1000
		frames := make([][]byte, runs+1) // AllocsPerRun makes one warm-up call
		for i := range frames {
			frames[i], _ = s.Seal(nil, md, pt)
		}
		i := 0
		if n := testing.AllocsPerRun(runs, func() {
			if _, err := r.Open(dst[:0], md, frames[i]); err != nil {
				t.Fatal(err)
			}
			i++
		}); n != 0 {
			t.Errorf("%v: Open: %v allocs per frame", suite, n)
		}
	}
}

func TestCounterExhaustion(t *testing.T) {
	for _, kid := range []uint64{0, math.MaxUint64} {
		s, r := pair(t, DefaultSuite, kid)
		s.next = math.MaxUint64 - 1
		var frames [][]byte
		for range 2 {
			f, err := s.Seal(nil, nil, []byte("last frames"))
			if err != nil {
				t.Fatal(err)
			}
			frames = append(frames, f)
		}
		last := frames[1]
		if _, ctr, _, _ := ParseHeader(last); ctr != math.MaxUint64 {
			t.Errorf("last counter %d", ctr)
		}
		if kid == math.MaxUint64 && !bytes.Equal(last[:MaxHeaderLen], bytes.Repeat([]byte{0xff}, MaxHeaderLen)) {
			t.Errorf("header of (2^64-1, 2^64-1) = %x", last[:MaxHeaderLen])
		}
		for range 2 {
			if out, err := s.Seal([]byte{5}, nil, []byte("one more")); err != ErrCounterExhausted || !bytes.Equal(out, []byte{5}) {
				t.Errorf("Seal after 2^64-1 = %x, %v; want ErrCounterExhausted", out, err)
			}
		}
		for _, f := range frames {
			if _, err := r.Open(nil, nil, f); err != nil {
				t.Error(err)
			}
		}
		if _, err := r.Open(nil, nil, last); err != ErrReplay {
			t.Errorf("replay at 2^64-1: %v", err)
		}
	}
}

func TestKeyRing(t *testing.T) {
	old, r := pair(t, DefaultSuite, 1<<56|1)
	next, err := NewSender(DefaultSuite, 2<<56|1, testKey(2))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddKey(2<<56|1, testKey(2)); err != nil {
		t.Fatal(err)
	}
	if err := r.AddKey(1<<56|1, testKey(3)); err == nil || !r.HasKey(1<<56|1) {
		t.Error("AddKey replaced a key")
	}
	open := func(s *Sender) error {
		f, _ := s.Seal(nil, nil, []byte("x"))
		_, err := r.Open(nil, nil, f)
		return err
	}
	if open(old) != nil || open(next) != nil {
		t.Fatal("both generations should open during rotation")
	}
	if !r.RemoveKey(1<<56|1) || r.RemoveKey(1<<56|1) || r.Len() != 1 {
		t.Error("RemoveKey")
	}
	if open(old) != ErrAuth || open(next) != nil {
		t.Error("removed key still opens, or the other one stopped")
	}
	// A key re-added under the same KID after removal starts a fresh window: the caller's deliberate choice.
	if err := r.AddKey(1<<56|1, testKey(1)); err != nil || open(old) != nil {
		t.Error("re-adding a key")
	}
	r.Wipe()
	if r.Len() != 0 || open(next) != ErrAuth {
		t.Error("Wipe")
	}
	if s := fmt.Sprint(r, old); s != "sframe.Receiver{suite: AES_128_GCM_SHA256_128, keys: 0} sframe.Sender{suite: AES_128_GCM_SHA256_128, kid: 72057594037927937}" {
		t.Errorf("String = %s", s)
	}
}

func TestConstructorErrors(t *testing.T) {
	if _, err := NewSender(9, 1, testKey(1)); !errors.Is(err, ErrUnsupportedSuite) {
		t.Errorf("NewSender(9): %v", err)
	}
	if _, err := NewReceiver(0); !errors.Is(err, ErrUnsupportedSuite) {
		t.Errorf("NewReceiver(0): %v", err)
	}
	if _, err := NewSender(DefaultSuite, 1, nil); err == nil {
		t.Error("nil key accepted")
	}
	r, _ := NewReceiver(DefaultSuite)
	if err := r.AddKey(1, NewKey(nil)); err == nil {
		t.Error("empty key accepted")
	}
	s, _ := NewSender(DefaultSuite, 1, testKey(1))
	s.Wipe()
	s.Wipe()
	if _, err := s.Seal(nil, nil, nil); err == nil {
		t.Error("wiped sender sealed")
	}
}

// TestConcurrentUse seals in one goroutine, opens in another and rotates keys in a third; run with -race.
func TestConcurrentUse(t *testing.T) {
	s, r := pair(t, DefaultSuite, 1)
	frames := make(chan []byte, 16)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(frames)
		var buf []byte
		for range 500 {
			f, err := s.Seal(buf[:0], nil, []byte("concurrent"))
			if err != nil {
				t.Error(err)
				return
			}
			frames <- bytes.Clone(f)
			buf = f
		}
	})
	wg.Go(func() {
		var buf []byte
		for f := range frames {
			var err error
			if buf, err = r.Open(buf[:0], nil, f); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Go(func() {
		for i := range 200 {
			kid := uint64(1000 + i%3)
			if err := r.AddKey(kid, testKey(byte(i))); err != nil {
				t.Error(err)
			}
			_ = r.HasKey(kid)
			r.RemoveKey(kid)
		}
	})
	wg.Wait()
}
