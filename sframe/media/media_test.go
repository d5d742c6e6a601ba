package media

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stoa-rtc/stoa/sframe"
)

var allSuites = []sframe.Suite{
	sframe.AES_128_CTR_HMAC_SHA256_80, sframe.AES_128_CTR_HMAC_SHA256_64, sframe.AES_128_CTR_HMAC_SHA256_32,
	sframe.AES_128_GCM_SHA256_128, sframe.AES_256_GCM_SHA512_128,
}

func TestClearPrefixLen(t *testing.T) {
	key := append([]byte{0x10}, make([]byte, 9)...) // P bit (bit 0) clear: key frame
	for _, tc := range []struct {
		c     Codec
		frame []byte
		n     int
		ok    bool
	}{
		{Data, nil, 0, true},
		{Data, []byte{1, 2}, 0, true},
		{Opus, nil, 1, false},
		{Opus, []byte{0x78}, 1, true},
		{Opus, []byte{0x78, 1, 2}, 1, true},
		{VP8, nil, 3, false},
		{VP8, key, 10, true},
		{VP8, append(key, 0xaa), 10, true},
		{VP8, key[:9], 10, false},
		{VP8, key[:3], 10, false},
		{VP8, []byte{0x31, 0, 0}, 3, true},
		{VP8, []byte{0x31, 0, 0, 5, 6, 7, 8, 9, 10, 11, 12}, 3, true},
		{VP8, []byte{0x31, 0}, 3, false},
		{VP8, []byte{0xff}, 3, false},
		{Codec(3), []byte{1, 2, 3}, 0, false},
	} {
		n, ok := tc.c.ClearPrefixLen(tc.frame)
		if n != tc.n || ok != tc.ok {
			t.Errorf("%v.ClearPrefixLen(%x) = %d, %v; want %d, %v", tc.c, tc.frame, n, ok, tc.n, tc.ok)
		}
	}
	if fmt.Sprint(Data, Opus, VP8, Codec(9)) != "data opus vp8 Codec(9)" {
		t.Error("Codec.String")
	}
}

func TestKID(t *testing.T) {
	a, b := NewKID(7), NewKID(7)
	if Generation(a) != 7 || Generation(b) != 7 || a == b || Generation(NewKID(255)) != 255 {
		t.Errorf("NewKID: %#x %#x", a, b)
	}
	if Generation(0x01ffffffffffffff) != 1 {
		t.Error("Generation")
	}
}

func TestSecretAndKeyErrors(t *testing.T) {
	s1, s2 := GenerateSecret(), GenerateSecret()
	if s1.Len() != SecretSize || s1.Equal(s2) {
		t.Error("GenerateSecret")
	}
	if _, err := SenderKey(sframe.DefaultSuite, sframe.NewKey(make([]byte, 16)), 1); err == nil {
		t.Error("short secret accepted")
	}
	if _, err := SenderKey(9, s1, 1); !errors.Is(err, sframe.ErrUnsupportedSuite) {
		t.Errorf("suite 9: %v", err)
	}
	if _, err := NewSender(sframe.DefaultSuite, nil, 1); err == nil {
		t.Error("nil secret accepted")
	}
	r, _ := NewReceiver(sframe.DefaultSuite)
	if r.AddSecret(1, sframe.NewKey([]byte{1})) == nil || r.AddSecret(1, s1) != nil || r.AddSecret(1, s2) == nil {
		t.Error("AddSecret checks")
	}
	if _, err := NewReceiver(0); err == nil {
		t.Error("suite 0 accepted")
	}
}

func TestSealShortFrame(t *testing.T) {
	s, _ := NewSender(sframe.DefaultSuite, GenerateSecret(), NewKID(0))
	for _, tc := range []struct {
		c     Codec
		frame []byte
	}{{Opus, nil}, {VP8, nil}, {VP8, []byte{0x10, 0, 0}}, {VP8, []byte{0x11, 0}}} {
		out, err := s.Seal([]byte{9}, tc.c, tc.frame)
		if err != ErrShortFrame || !bytes.Equal(out, []byte{9}) {
			t.Errorf("Seal(%v, %x) = %x, %v; want ErrShortFrame", tc.c, tc.frame, out, err)
		}
	}
	if _, err := s.Seal(nil, Codec(5), []byte{1, 2, 3}); err == nil || errors.Is(err, ErrShortFrame) {
		t.Errorf("unknown codec: %v", err)
	}
	want := s.s.Overhead() // header and tag only
	if out, err := s.Seal(nil, Data, nil); err != nil || len(out) != want {
		t.Errorf("empty data message: %x, %v", out, err)
	}
}

// channel is a channel secret of generation gen with a receiver holding it.
func channel(t testing.TB, suite sframe.Suite, gen uint8) (*sframe.Key, *Receiver) {
	t.Helper()
	secret := GenerateSecret()
	r, err := NewReceiver(suite)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddSecret(gen, secret); err != nil {
		t.Fatal(err)
	}
	return secret, r
}

func newSender(t testing.TB, suite sframe.Suite, secret *sframe.Key, kid uint64) *Sender {
	t.Helper()
	s, err := NewSender(suite, secret, kid)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var testFrames = []struct {
	c     Codec
	frame []byte
}{
	{Opus, []byte{0x78, 1, 2, 3, 4, 5}},
	{Opus, []byte{0x78}},
	{VP8, []byte{0x10, 2, 0, 0x9d, 1, 0x2a, 0x80, 2, 0xe0, 1, 0xaa, 0xbb}},
	{VP8, []byte{0x10, 2, 0, 0x9d, 1, 0x2a, 0x80, 2, 0xe0, 1}},
	{VP8, []byte{0x31, 1, 0, 0x11, 0x22}},
	{Data, []byte("hello")},
	{Data, nil},
}

// TestReceiverLearnsSenders: frames of every codec from two senders of one generation open; a sender of a
// generation without secret is rejected and leaves no state; every bit flip of the wire frame, including the clear
// prefix, is rejected; replays are ErrReplay.
func TestReceiverLearnsSenders(t *testing.T) {
	for _, suite := range allSuites {
		t.Run(suite.String(), func(t *testing.T) {
			secret, r := channel(t, suite, 1)
			senders := []*Sender{newSender(t, suite, secret, NewKID(1)), newSender(t, suite, secret, NewKID(1))}
			var flips uint64
			for _, s := range senders {
				for _, f := range testFrames {
					wire, err := s.Seal(nil, f.c, f.frame)
					if err != nil {
						t.Fatal(err)
					}
					p, _ := f.c.ClearPrefixLen(f.frame)
					if !bytes.Equal(wire[:p], f.frame[:p]) {
						t.Fatalf("%v: clear prefix not in the clear", f.c)
					}
					flips += 8 * uint64(len(wire))
					for i := range 8 * len(wire) {
						bad := bytes.Clone(wire)
						bad[i/8] ^= 1 << (i % 8)
						if out, err := r.Open([]byte{7}, f.c, bad); err == nil || !errors.Is(err, sframe.ErrAuth) || !bytes.Equal(out, []byte{7}) {
							t.Fatalf("%v frame with bit %d flipped: %x, %v", f.c, i, out, err)
						}
					}
					got, err := r.Open([]byte{7}, f.c, wire)
					if err != nil || !bytes.Equal(got, append([]byte{7}, f.frame...)) {
						t.Fatalf("%v: Open = %x, %v; want %x", f.c, got, err, f.frame)
					}
					if _, err := r.Open(nil, f.c, wire); err != sframe.ErrReplay {
						t.Fatalf("%v: replay: %v", f.c, err)
					}
				}
			}
			stranger := newSender(t, suite, GenerateSecret(), NewKID(2))
			wire, _ := stranger.Seal(nil, Opus, []byte{0x78, 1})
			if _, err := r.Open(nil, Opus, wire); err != sframe.ErrAuth {
				t.Errorf("unknown generation: %v", err)
			}
			if len(r.learned) != 2 || r.ring.Len() != 2 {
				t.Errorf("learned %d keys, ring %d; want 2", len(r.learned), r.ring.Len())
			}
			n := 2 * uint64(len(testFrames))
			if st := r.Stats(); st != (Stats{Opened: n, Replayed: n, Rejected: flips + 1}) {
				t.Errorf("Stats = %+v; want %d opened, %d replayed, %d rejected", st, n, n, flips+1)
			}
		})
	}
}

// TestForgedFrameLeavesNoState: a frame with a new KID of a known generation that does not authenticate (wrong
// secret, or garbage) is rejected and the receiver learns nothing.
func TestForgedFrameLeavesNoState(t *testing.T) {
	_, r := channel(t, sframe.DefaultSuite, 3)
	forger := newSender(t, sframe.DefaultSuite, GenerateSecret(), NewKID(3))
	forged, _ := forger.Seal(nil, VP8, []byte{0x31, 1, 0, 5})
	garbage := append(sframe.AppendHeader([]byte{0x31, 1, 0}, NewKID(3), 0), make([]byte, 40)...)
	for _, wire := range [][]byte{forged, garbage, garbage[:5], garbage[:3], nil} {
		if _, err := r.Open(nil, VP8, wire); err != sframe.ErrAuth {
			t.Errorf("forged %x: %v", wire, err)
		}
	}
	if len(r.learned) != 0 || r.ring.Len() != 0 {
		t.Errorf("forgeries left %d learned keys", len(r.learned))
	}
}

func TestRemoveSecret(t *testing.T) {
	secret, r := channel(t, sframe.DefaultSuite, 1)
	next := GenerateSecret()
	if err := r.AddSecret(2, next); err != nil {
		t.Fatal(err)
	}
	old, cur := newSender(t, sframe.DefaultSuite, secret, NewKID(1)), newSender(t, sframe.DefaultSuite, next, NewKID(2))
	open := func(s *Sender) error {
		wire, _ := s.Seal(nil, Opus, []byte{0x78, 1})
		_, err := r.Open(nil, Opus, wire)
		return err
	}
	if open(old) != nil || open(cur) != nil {
		t.Fatal("both generations must open during rotation")
	}
	secret.Wipe() // the receiver keeps its own copy
	if open(old) != nil {
		t.Error("receiver depends on the caller's copy of the secret")
	}
	if !r.RemoveSecret(1) || r.RemoveSecret(1) {
		t.Error("RemoveSecret result")
	}
	if open(old) != sframe.ErrAuth || open(cur) != nil || r.ring.Len() != 1 {
		t.Error("removing generation 1 must drop its keys only")
	}
	r.Wipe()
	if open(cur) != sframe.ErrAuth || r.ring.Len() != 0 {
		t.Error("Wipe")
	}
	if s := fmt.Sprint(r); s != "media.Receiver{suite: AES_128_GCM_SHA256_128, generations: 0, senders: 0}" {
		t.Errorf("String = %s", s)
	}
}

func TestMaxKIDs(t *testing.T) {
	secret, r := channel(t, sframe.DefaultSuite, 0)
	for i := range MaxKIDs + 1 {
		s := newSender(t, sframe.DefaultSuite, secret, uint64(i))
		wire, _ := s.Seal(nil, Data, []byte{1})
		_, err := r.Open(nil, Data, wire)
		if (i < MaxKIDs) != (err == nil) {
			t.Fatalf("sender %d: %v", i, err)
		}
	}
}

func TestNoAllocations(t *testing.T) {
	secret, r := channel(t, sframe.DefaultSuite, 1)
	s := newSender(t, sframe.DefaultSuite, secret, NewKID(1))
	frame := append([]byte{0x10, 2, 0, 0x9d, 1, 0x2a, 0x80, 2, 0xe0, 1}, make([]byte, 1200)...)
	dst := make([]byte, 0, 2048)
	if n := testing.AllocsPerRun(100, func() { s.Seal(dst, VP8, frame) }); n != 0 {
		t.Errorf("Seal: %v allocs", n)
	}
	wires := make([][]byte, 101)
	for i := range wires {
		wires[i], _ = s.Seal(nil, VP8, frame)
	}
	r.Open(nil, VP8, wires[0]) // learn the sender
	i := 1
	if n := testing.AllocsPerRun(99, func() {
		if _, err := r.Open(dst, VP8, wires[i]); err != nil {
			t.Fatal(err)
		}
		i++
	}); n != 0 {
		t.Errorf("Open: %v allocs", n)
	}
}

// TestConcurrentReceiver opens in two goroutines while a third rotates secrets; run with -race.
func TestConcurrentReceiver(t *testing.T) {
	secret, r := channel(t, sframe.DefaultSuite, 1)
	var wg sync.WaitGroup
	for range 2 {
		s := newSender(t, sframe.DefaultSuite, secret, NewKID(1))
		wg.Go(func() {
			for range 300 {
				wire, _ := s.Seal(nil, Opus, []byte{0x78, 1, 2})
				if _, err := r.Open(nil, Opus, wire); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			r.AddSecret(9, GenerateSecret())
			r.RemoveSecret(9)
		}
	})
	wg.Wait()
}

// FuzzOpenFrame: Receiver.Open of arbitrary wire bytes, for any codec, never panics and fails only with ErrAuth.
func FuzzOpenFrame(f *testing.F) {
	secret := sframe.NewKey(bytes.Repeat([]byte{1}, SecretSize))
	s, _ := NewSender(sframe.AES_128_CTR_HMAC_SHA256_32, secret, 0x0100000000000005)
	for _, tf := range testFrames {
		wire, _ := s.Seal(nil, tf.c, tf.frame)
		f.Add(uint8(tf.c), wire)
	}
	f.Fuzz(func(t *testing.T, codec uint8, wire []byte) {
		r, _ := NewReceiver(sframe.AES_128_CTR_HMAC_SHA256_32)
		r.AddSecret(1, secret)
		out, err := r.Open(nil, Codec(codec%4), wire)
		if err != nil && !errors.Is(err, sframe.ErrAuth) || err != nil && out != nil {
			t.Fatalf("Open: %x, %v", out, err)
		}
	})
}
