package sdk

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dispatcher "github.com/stoa-rtc/stoa/internal/dispatch"
	"github.com/stoa-rtc/stoa/internal/edge"
	"github.com/stoa-rtc/stoa/internal/ticket"
	"github.com/stoa-rtc/stoa/sframe"
	"github.com/stoa-rtc/stoa/sframe/media"
	"github.com/stoa-rtc/stoa/token"
)

// Integration tests: a real edge in process (its HTTP handler on an httptest server, its ICE port on loopback)
// behind the real dispatch handler with signed edge tickets, and real clients.

const testCert = "fedcba9876543210fedcba9876543210"

type testEnv struct {
	edge  *edge.Server
	entry *httptest.Server // POST /v1/dispatch and GET /v1/signal
	stop  func()

	mu    sync.Mutex
	conns []net.Conn // hijacked (WebSocket) connections, to cut them
}

func startEnv(t *testing.T) *testEnv {
	t.Helper()
	v := token.NewVerifier()
	v.SetCertificates(testAppID, testCert)
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	keys := &ticket.Keys{}
	keys.Set("d1", pub)
	srv, err := edge.New(edge.Config{ID: "edge-1", Region: "local", RTCAddr: "127.0.0.1:0", Verifier: v,
		Tickets: keys, Logger: testLogger(t).With("side", "edge")})
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{edge: srv}
	mux := http.NewServeMux()
	mux.Handle("GET /v1/signal", srv.Handler())
	mux.Handle("POST /v1/dispatch", &dispatcher.Handler{Verifier: v, Signer: &dispatcher.Signer{KID: "d1", Key: priv},
		Edges: func(dispatcher.Request) (string, []dispatcher.Edge, error) {
			return "local", []dispatcher.Edge{{ID: "edge-1", Region: "local", URL: "ws" + strings.TrimPrefix(env.entry.URL, "http") + "/v1/signal"}}, nil
		}})
	env.entry = httptest.NewUnstartedServer(mux)
	env.entry.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateHijacked {
			env.mu.Lock()
			env.conns = append(env.conns, c)
			env.mu.Unlock()
		}
	}
	env.entry.Start()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	env.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("edge Run: %v", err)
		}
		env.entry.Close()
	}
	return env
}

// cut closes every signaling connection on the server side: a network blip for every client.
func (env *testEnv) cut() {
	env.mu.Lock()
	conns := env.conns
	env.conns = nil
	env.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (env *testEnv) join(t *testing.T, ctx context.Context, uid string, secret *sframe.Key) *Client {
	t.Helper()
	tok, err := token.BuildRTC(testCert, token.RTCOptions{AppID: testAppID, Channel: testChannel, UID: uid,
		Role: token.RolePublisher, Expire: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Join(ctx, Config{URL: env.entry.URL, AppID: testAppID, Channel: testChannel, UID: uid, Token: tok,
		Secret: secret, Logger: testLogger(t).With("side", uid)})
	if err != nil {
		t.Fatalf("%s: Join: %v", uid, err)
	}
	return c
}

// Test frames carry a sequence number and end with the CRC-32 of the rest, so that a receiver can tell that what it
// decrypted is exactly what was written.
func sealedTestFrame(head []byte, n int, seq uint32) []byte {
	f := make([]byte, 0, n)
	f = append(f, head...)
	f = binary.BigEndian.AppendUint32(f, seq)
	for len(f) < n-4 {
		f = append(f, byte(len(f)))
	}
	return binary.BigEndian.AppendUint32(f, crc32.ChecksumIEEE(f))
}

func frameIntact(f []byte) bool {
	return len(f) >= 8 && crc32.ChecksumIEEE(f[:len(f)-4]) == binary.BigEndian.Uint32(f[len(f)-4:])
}

// publisher writes audio every 20 ms, video every 40 ms (a key frame first, every 25 frames and on request) and a
// data message every 100 ms, until stop.
func publisher(t *testing.T, ctx context.Context, c *Client, stop <-chan struct{}, wg *sync.WaitGroup) (audio, video *LocalTrack, data *DataTrack) {
	t.Helper()
	var err error
	if audio, err = c.PublishAudio(ctx); err != nil {
		t.Fatal(err)
	}
	if video, err = c.PublishVideo(ctx); err != nil {
		t.Fatal(err)
	}
	if data, err = c.PublishData(ctx); err != nil {
		t.Fatal(err)
	}
	// Writes may find the client reconnecting, or a track the test unpublished.
	failed := func(err error) bool {
		return err != nil && !errors.Is(err, ErrReconnecting) && !errors.Is(err, ErrUnpublished)
	}
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := uint32(0); ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if err := audio.WriteFrame(sealedTestFrame([]byte{0xfc}, 80, i), 20*time.Millisecond); failed(err) {
				t.Errorf("audio: %v", err)
			}
			if i%2 == 0 {
				key := i%50 == 0
				select {
				case <-video.KeyframeRequests():
					key = true
				default:
				}
				head := []byte{0x31, 0, 0}
				if key {
					head = []byte{0x10, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01}
				}
				if err := video.WriteFrame(sealedTestFrame(head, 2500+int(i%7)*300, i), 40*time.Millisecond); failed(err) {
					t.Errorf("video: %v", err)
				}
			}
			if i%5 == 0 {
				if err := data.Send(sealedTestFrame([]byte("msg"), 64, i)); failed(err) {
					t.Errorf("data: %v", err)
				}
			}
		}
	})
	return audio, video, data
}

// received counts what a client got, by publisher uid and kind.
type received struct {
	mu        sync.Mutex
	frames    map[string]int // uid/kind
	keyframes map[string]int
	broken    int // decrypted frames that are not what was written
	tracks    []*RemoteTrack
}

func (r *received) count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.frames[key]
}

// consume reads every track and data message of c until c closes its channels.
func consume(c *Client, wg *sync.WaitGroup) *received {
	r := &received{frames: map[string]int{}, keyframes: map[string]int{}}
	add := func(key string, data []byte, keyframe bool) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if !frameIntact(data) {
			r.broken++
			return
		}
		r.frames[key]++
		if keyframe {
			r.keyframes[key]++
		}
	}
	wg.Go(func() {
		tracks, data := c.Tracks(), c.Data()
		for tracks != nil || data != nil {
			select {
			case t, ok := <-tracks:
				if !ok {
					tracks = nil
					continue
				}
				r.mu.Lock()
				r.tracks = append(r.tracks, t)
				r.mu.Unlock()
				wg.Go(func() {
					for {
						f, err := t.ReadFrame(context.Background())
						if err == io.EOF {
							return
						}
						add(f.UID+"/"+string(f.Kind), f.Data, f.Keyframe)
					}
				})
			case m, ok := <-data:
				if !ok {
					data = nil
					continue
				}
				add(m.UID+"/data", m.Data, false)
			}
		}
	})
	return r
}

func TestEdgeEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an edge and three WebRTC clients")
	}
	leaks := checkLeaks(t)
	env := startEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	secret := media.GenerateSecret()
	alice := env.join(t, ctx, "alice", secret)
	bob := env.join(t, ctx, "bob", secret)
	eve := env.join(t, ctx, "eve", media.GenerateSecret()) // in the channel, without the channel secret

	var readers, writers sync.WaitGroup
	got := map[string]*received{"alice": consume(alice, &readers), "bob": consume(bob, &readers), "eve": consume(eve, &readers)}
	stop := make(chan struct{})
	_, aliceVideo, aliceData := publisher(t, ctx, alice, stop, &writers)
	publisher(t, ctx, bob, stop, &writers)

	enough := func(r *received, from string) bool {
		return r.count(from+"/audio") >= 25 && r.count(from+"/video") >= 10 && r.count(from+"/data") >= 3
	}
	waitFor(t, 30*time.Second, "alice and bob to receive each other's audio, video and data", func() bool {
		return enough(got["alice"], "bob") && enough(got["bob"], "alice")
	})
	waitFor(t, 30*time.Second, "eve to fail on every kind", func() bool {
		st := eve.Stats()
		kinds := map[Kind]bool{}
		for _, ts := range st.Tracks {
			if ts.DecryptFailed > 0 {
				kinds[ts.Kind] = true
			}
		}
		return len(kinds) == 3 && st.DecryptFailed >= 50
	})
	// Unpublishing reaches the others: bob's remote video track of alice ends.
	var bobsVideo *RemoteTrack
	got["bob"].mu.Lock()
	for _, rt := range got["bob"].tracks {
		if rt.UID() == "alice" && rt.Kind() == KindVideo {
			bobsVideo = rt
		}
	}
	got["bob"].mu.Unlock()
	if err := aliceVideo.Unpublish(ctx); err != nil {
		t.Fatal(err)
	}
	if err := aliceData.Unpublish(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-bobsVideo.Done():
	case <-ctx.Done():
		t.Fatal("bob's track of alice's video did not end after Unpublish")
	}
	close(stop)
	writers.Wait()

	for _, name := range []string{"alice", "bob"} {
		r, from := got[name], map[string]string{"alice": "bob", "bob": "alice"}[name]
		r.mu.Lock()
		if r.broken != 0 || r.keyframes[from+"/video"] == 0 || r.keyframes[from+"/audio"] != r.frames[from+"/audio"] {
			t.Errorf("%s: %d broken frames, %d video key frames, %d/%d audio frames flagged key", name, r.broken,
				r.keyframes[from+"/video"], r.keyframes[from+"/audio"], r.frames[from+"/audio"])
		}
		r.mu.Unlock()
	}
	// The publishers have stopped; wait for the frames in flight, until every client's counters add up and hold
	// still between two looks.
	last := map[string]int{}
	waitFor(t, 10*time.Second, "the frames in flight to be counted", func() bool {
		settled := true
		for _, c := range []*Client{alice, bob, eve} {
			st := c.Stats()
			n := int(st.FramesReceived)
			settled = settled && st.DecryptOK+st.DecryptFailed == st.FramesReceived && last[c.cfg.UID] == n
			last[c.cfg.UID] = n
		}
		return settled
	})
	for _, c := range []*Client{alice, bob} {
		st := c.Stats()
		if st.DecryptFailed != 0 || st.DecryptOK == 0 || st.FramesSent == 0 || st.DecryptOK+st.DecryptFailed != st.FramesReceived {
			t.Errorf("%s stats: %+v", c.cfg.UID, st)
		}
		for _, ts := range st.Tracks {
			if !ts.Local && ts.UID == c.cfg.UID {
				t.Errorf("%s receives its own track %+v", c.cfg.UID, ts)
			}
		}
	}
	// Eve decrypted nothing, and every frame she received is counted as a failure.
	st := eve.Stats()
	if st.DecryptOK != 0 || st.DecryptFailed != st.FramesReceived || st.FramesSent != 0 {
		t.Errorf("eve stats: %+v", st)
	}
	if r := got["eve"]; r.count("alice/audio")+r.count("bob/audio")+r.count("alice/data") != 0 {
		t.Errorf("eve got frames: %v", r.frames)
	}

	for _, c := range []*Client{alice, bob, eve} {
		if err := c.Leave(ctx); err != nil {
			t.Error(err)
		}
	}
	waitFor(t, 10*time.Second, "the edge to drop every session", func() bool { return env.edge.Sessions() == 0 })
	readers.Wait() // every RemoteTrack ended and every channel closed
	env.stop()
	leaks()
}

func TestEdgeReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an edge and two WebRTC clients")
	}
	leaks := checkLeaks(t)
	env := startEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	secret := media.GenerateSecret()
	alice := env.join(t, ctx, "alice", secret)
	bob := env.join(t, ctx, "bob", secret)
	var readers, writers sync.WaitGroup
	got := consume(bob, &readers)
	stop := make(chan struct{})
	publisher(t, ctx, alice, stop, &writers)
	waitFor(t, 30*time.Second, "bob to receive alice", func() bool { return got.count("alice/audio") >= 10 })
	got.mu.Lock()
	first := got.tracks[0]
	got.mu.Unlock()

	// A blip on both signaling connections: both clients reconnect, alice publishes again, bob subscribes again.
	env.cut()
	for _, c := range []*Client{alice, bob} {
		expectEvent[Reconnecting](t, c, 20*time.Second)
		expectEvent[Reconnected](t, c, 20*time.Second)
	}
	select {
	case <-first.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the remote track from before the blip did not end")
	}
	before := got.count("alice/audio")
	waitFor(t, 30*time.Second, "bob to receive alice again", func() bool {
		return got.count("alice/audio") >= before+10 && got.count("alice/video") >= 5 && got.count("alice/data") >= 2
	})
	close(stop)
	writers.Wait()
	if st := bob.Stats(); st.DecryptFailed != 0 || st.Reconnects != 1 {
		t.Errorf("bob stats after reconnecting: %+v", st)
	}
	alice.Close()
	bob.Close()
	waitFor(t, 10*time.Second, "the edge to drop every session", func() bool { return env.edge.Sessions() == 0 })
	readers.Wait()
	env.stop()
	leaks()
}
