package recorder

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/stoa-rtc/stoa/internal/clustertest"
	dispatcher "github.com/stoa-rtc/stoa/internal/dispatch"
	"github.com/stoa-rtc/stoa/internal/edge"
	"github.com/stoa-rtc/stoa/internal/ticket"
	"github.com/stoa-rtc/stoa/sdk"
	"github.com/stoa-rtc/stoa/sframe"
	"github.com/stoa-rtc/stoa/sframe/media"
	"github.com/stoa-rtc/stoa/token"
)

const (
	testApp     = "0123456789abcdef0123456789abcdef"
	testCert    = "fedcba9876543210fedcba9876543210"
	testChannel = "meeting"
)

// startNetwork runs an edge behind the real dispatch handler (signed tickets), on loopback; it stops when the test
// ends. It returns the entry URL.
func startNetwork(t *testing.T) string {
	t.Helper()
	v := token.NewVerifier()
	v.SetCertificates(testApp, testCert)
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	keys := &ticket.Keys{}
	keys.Set("d1", pub)
	srv, err := edge.New(edge.Config{ID: "edge-1", Region: "local", RTCAddr: "127.0.0.1:0", Verifier: v,
		Tickets: keys, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	entry := httptest.NewUnstartedServer(mux)
	mux.Handle("GET /v1/signal", srv.Handler())
	mux.Handle("POST /v1/dispatch", &dispatcher.Handler{Verifier: v, Signer: &dispatcher.Signer{KID: "d1", Key: priv},
		Edges: func(dispatcher.Request) (string, []dispatcher.Edge, error) {
			return "local", []dispatcher.Edge{{ID: "edge-1", Region: "local", URL: "ws" + strings.TrimPrefix(entry.URL, "http") + "/v1/signal"}}, nil
		}})
	entry.Start()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("edge: %v", err)
		}
		entry.Close()
	})
	return entry.URL
}

func testToken(t testing.TB, uid string, role token.Role) string {
	t.Helper()
	tok, err := token.BuildRTC(testCert, token.RTCOptions{AppID: testApp, Channel: testChannel, UID: uid, Role: role, Expire: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// publisher sends the test media in real time: the first frame of each file over and over until released, then
// every frame of the file once. Until release, the recorder is still subscribing and may miss frames; after it,
// it must miss none.
type publisher struct {
	c       *sdk.Client
	release chan struct{}
	wg      sync.WaitGroup
}

func publish(t *testing.T, url string, secret *sframe.Key, opus, vp8 [][]byte) *publisher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := sdk.Join(ctx, sdk.Config{URL: url, AppID: testApp, Channel: testChannel, UID: "alice",
		Token: testToken(t, "alice", token.RolePublisher), Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	p := &publisher{c: c, release: make(chan struct{})}
	t.Cleanup(func() {
		c.Close()
		p.wg.Wait()
	})
	audio, err := c.PublishAudio(ctx)
	if err != nil {
		t.Fatal(err)
	}
	video, err := c.PublishVideo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(tr *sdk.LocalTrack, frames [][]byte, every time.Duration) {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; i < len(frames); {
			select {
			case <-c.Done():
				return
			case <-tick.C:
			}
			tr.WriteFrame(frames[i], every)
			select {
			case <-p.release:
				i++
			default: // the first frame again
			}
		}
	}
	p.wg.Go(func() { send(audio, opus, 20*time.Millisecond) })
	p.wg.Go(func() { send(video, vp8, time.Second/15) })
	return p
}

// seen collects the frames the recorder writes, per kind.
type seen struct {
	mu     sync.Mutex
	frames map[sdk.Kind][][]byte
}

func (s *seen) add(f sdk.Frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames[f.Kind] = append(s.frames[f.Kind], bytes.Clone(f.Data))
}

// endsWith reports whether the frames of kind written so far end with want.
func (s *seen) endsWith(kind sdk.Kind, want [][]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := s.frames[kind]
	return len(got) >= len(want) && equalFrames(got[len(got)-len(want):], want)
}

func (s *seen) count(kind sdk.Kind) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames[kind])
}

func equalFrames(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// A recording of a real Opus file and a real VP8 file, in the clear and age-encrypted: every frame is written byte
// for byte as published, in standard files that ffprobe reads, with a manifest that verifies.
func TestRecordsFramesByteForByte(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testRecording(t, false) })
	t.Run("age", func(t *testing.T) { testRecording(t, true) })
}

func testRecording(t *testing.T, encrypt bool) {
	t.Cleanup(clustertest.Goroutines(t)) // runs last: after the network and the publisher stop
	url := startNetwork(t)
	opus, vp8 := testMedia(t)
	secret := media.GenerateSecret()
	_, key, _ := ed25519.GenerateKey(nil)
	var identity *age.X25519Identity
	var recipients []string
	if encrypt {
		var err error
		if identity, err = age.GenerateX25519Identity(); err != nil {
			t.Fatal(err)
		}
		recipients = []string{identity.Recipient().String()}
	}
	out := t.TempDir()
	rec, err := New(Config{Client: sdk.Config{URL: url, AppID: testApp, Channel: testChannel, UID: "rec",
		Token: testToken(t, "rec", token.RoleRecorder), Secret: secret}, Dir: out, Key: key, AgeRecipients: recipients,
		FlushInterval: 100 * time.Millisecond, ManifestInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got := &seen{frames: map[sdk.Kind][][]byte{}}
	rec.written = got.add
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()

	p := publish(t, url, secret, opus, vp8)
	waitFor(t, 20*time.Second, "the recorder's first frames", func() bool {
		return got.count(sdk.KindAudio) > 0 && got.count(sdk.KindVideo) > 0
	})
	close(p.release)
	var snapshot string
	if !encrypt {
		// A copy of the directory mid-recording is what a SIGKILL leaves.
		waitFor(t, 20*time.Second, "half the media", func() bool { return got.count(sdk.KindAudio) > len(opus)/2 })
		snapshot = copyRecording(t, rec.ManifestPath())
	}
	waitFor(t, 20*time.Second, "every frame", func() bool {
		return got.endsWith(sdk.KindAudio, opus) && got.endsWith(sdk.KindVideo, vp8)
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	m, err := readManifest(rec.ManifestPath())
	if err != nil {
		t.Fatal(err)
	}
	if !m.Complete || m.EndedAt == nil || m.Error != "" || m.Channel != testChannel || m.RecorderUID != "rec" {
		t.Errorf("manifest %+v", m)
	}
	if len(m.Files) != 2 {
		t.Fatalf("files %+v, want one audio and one video", m.Files)
	}
	ext := ""
	if encrypt {
		ext = ".age"
	}
	for _, f := range m.Files {
		wantName := "alice-" + f.Kind + map[string]string{"audio": ".ogg", "video": ".ivf"}[f.Kind] + ext
		if f.Name != wantName || f.UID != "alice" || f.Segment != 1 || f.Encrypted != encrypt || !f.Closed || f.Concealed != 0 {
			t.Errorf("file %+v, want %s", f, wantName)
		}
		b, err := os.ReadFile(filepath.Join(filepath.Dir(rec.ManifestPath()), f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if encrypt {
			if bytes.Contains(b, opus[len(opus)/2]) || bytes.Contains(b, vp8[len(vp8)/2]) {
				t.Errorf("%s holds media in the clear", f.Name)
			}
			r, err := age.Decrypt(bytes.NewReader(b), identity)
			if err != nil {
				t.Fatal(err)
			}
			if b, err = io.ReadAll(r); err != nil {
				t.Fatalf("%s: %v", f.Name, err)
			}
		}
		var frames [][]byte
		switch f.Kind {
		case "audio":
			s, err := readOgg(b)
			if err != nil {
				t.Fatalf("%s: %v", f.Name, err)
			}
			frames = s.packets
			var samples int64
			for _, p := range frames {
				samples += int64(opusSamples(p))
			}
			if last := s.granules[len(s.granules)-1]; !s.eos || last != samples {
				t.Errorf("%s: last granule %d (eos %v), want %d", f.Name, last, s.eos, samples)
			}
			checkFrames(t, f.Name, frames, opus)
		case "video":
			var pts []uint64
			var count uint32
			var w, h int
			if frames, pts, count, w, h, err = readIVF(b); err != nil {
				t.Fatalf("%s: %v", f.Name, err)
			}
			wantCount := uint32(len(frames))
			if encrypt {
				wantCount = 0 // an encrypted file is never rewritten
			}
			if count != wantCount || w != 160 || h != 120 || f.Width != 160 || f.Height != 120 {
				t.Errorf("%s: header count %d (want %d), %dx%d, manifest %dx%d", f.Name, count, wantCount, w, h, f.Width, f.Height)
			}
			// Timestamps keep the sender's RTP spacing (the SDK makes 1/15 s 5999 or 6000 ticks).
			for i := 1; i < len(pts); i++ {
				if d := pts[i] - pts[i-1]; d < videoClockRate/15-1 || d > videoClockRate/15 {
					t.Fatalf("%s: frame %d at %d after %d", f.Name, i, pts[i], pts[i-1])
				}
			}
			if span := uint64(f.LastTimestamp - f.FirstTimestamp); pts[0] != 0 || pts[len(pts)-1] != span {
				t.Errorf("%s: timestamps from %d to %d, the manifest spans %d", f.Name, pts[0], pts[len(pts)-1], span)
			}
			checkFrames(t, f.Name, frames, vp8)
		}
		if int64(len(frames)) != f.Frames {
			t.Errorf("%s: %d frames, the manifest says %d", f.Name, len(frames), f.Frames)
		}
		ffprobe(t, f.Name, b, f.Codec, len(frames))
	}
	if _, err := Verify(rec.ManifestPath(), VerifyOptions{PublicKey: key.Public().(ed25519.PublicKey)}); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if snapshot != "" {
		checkKilled(t, snapshot)
		tamper(t, rec.ManifestPath(), key)
	}
}

// checkFrames checks that a file holds the repeated first frame (sent while the recorder subscribed), then every
// frame of the test file, byte for byte.
func checkFrames(t *testing.T, name string, got, want [][]byte) {
	t.Helper()
	if len(got) < len(want) || !equalFrames(got[len(got)-len(want):], want) {
		t.Fatalf("%s: the last %d frames are not the published ones", name, len(want))
	}
	for i, f := range got[:len(got)-len(want)] {
		if !bytes.Equal(f, want[0]) {
			t.Fatalf("%s: frame %d is not the repeated first frame", name, i)
		}
	}
}

func readManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, _, err := ParseManifest(b)
	return m, err
}

// ffprobe has ffprobe read a file (decrypted) and, unless frames is negative, count its packets, when it is
// installed.
func ffprobe(t *testing.T, name string, b []byte, codec string, frames int) {
	t.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Log("ffprobe is not installed: files not checked with it")
		return
	}
	path := filepath.Join(t.TempDir(), strings.TrimSuffix(name, ".age"))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-count_packets", "-show_entries",
		"stream=codec_name,nb_read_packets", "-of", "json", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", name, err, out)
	}
	var res struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
			Packets   string `json:"nb_read_packets"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Streams) != 1 {
		t.Fatalf("ffprobe %s: %s", name, out)
	}
	if s := res.Streams[0]; s.CodecName != codec || frames >= 0 && s.Packets != strconv.Itoa(frames) {
		t.Errorf("ffprobe %s: codec %s, %s packets; want %s, %d", name, s.CodecName, s.Packets, codec, frames)
	}
}

// copyRecording copies a recording's directory as it is on disk, the manifest first (files only grow after it).
func copyRecording(t *testing.T, manifest string) string {
	t.Helper()
	dst := t.TempDir()
	src := filepath.Dir(manifest)
	waitFor(t, 10*time.Second, "a manifest listing both files", func() bool {
		m, err := readManifest(manifest)
		return err == nil && len(m.Files) == 2
	})
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dst, ManifestName), b, 0o600)
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == ManifestName || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600)
	}
	return filepath.Join(dst, ManifestName)
}

// checkKilled checks what a SIGKILL would have left: a manifest that verifies the files' beginnings only with
// AllowIncomplete, and files that read up to their last whole page or frame.
func checkKilled(t *testing.T, manifest string) {
	t.Helper()
	if _, err := Verify(manifest, VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("Verify of a killed recording: %v", err)
	}
	if _, err := Verify(manifest, VerifyOptions{AllowIncomplete: true}); err != nil {
		t.Errorf("Verify with AllowIncomplete of a killed recording: %v", err)
	}
	m, err := readManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(manifest), f.Name))
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if f.Kind == "audio" {
			s, err := cutOgg(b)
			if err != nil {
				t.Fatalf("killed %s: %v", f.Name, err)
			}
			n = len(s.packets)
		} else {
			frames, _, _, _, _, err := readIVF(cutIVF(b))
			if err != nil {
				t.Fatalf("killed %s: %v", f.Name, err)
			}
			n = len(frames)
		}
		if n == 0 {
			t.Errorf("killed %s holds no frame", f.Name)
		}
		ffprobe(t, f.Name, b, f.Codec, -1)
	}
}

// cutOgg reads the whole pages of a file that may end inside one.
func cutOgg(b []byte) (*oggStream, error) {
	for end := len(b); end > 0; end = bytes.LastIndex(b[:end], []byte("OggS")) {
		if s, err := readOgg(b[:end]); err == nil {
			return s, nil
		}
	}
	return nil, errors.New("no whole page")
}

// cutIVF drops a last frame that the file holds only in part.
func cutIVF(b []byte) []byte {
	off := ivfHeaderSize
	for off+ivfFrameHeader <= len(b) {
		n := ivfFrameHeader + int(uint32(b[off])|uint32(b[off+1])<<8|uint32(b[off+2])<<16|uint32(b[off+3])<<24)
		if off+n > len(b) {
			break
		}
		off += n
	}
	return b[:off]
}

// tamper checks that Verify finds a changed file, a changed manifest and a manifest signed by another key.
func tamper(t *testing.T, manifest string, key ed25519.PrivateKey) {
	t.Helper()
	pub := key.Public().(ed25519.PublicKey)
	m, err := readManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(filepath.Dir(manifest), m.Files[1].Name)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Clone(orig)
	changed[len(changed)/2] ^= 1
	os.WriteFile(path, changed, 0o600)
	if _, err := Verify(manifest, VerifyOptions{PublicKey: pub}); err == nil || !strings.Contains(err.Error(), m.Files[1].Name) {
		t.Errorf("Verify of a changed file: %v", err)
	}
	os.WriteFile(path, orig, 0o600)

	mb, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	forged := bytes.Replace(mb, []byte(`"frames":`+strconv.FormatInt(m.Files[0].Frames, 10)), []byte(`"frames":1`), 1)
	if bytes.Equal(forged, mb) {
		t.Fatal("the manifest was not changed")
	}
	os.WriteFile(manifest, forged, 0o600)
	if _, err := Verify(manifest, VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("Verify of a changed manifest: %v", err)
	}
	// Re-signed by another key: consistent, but not the recorder's.
	_, other, _ := ed25519.GenerateKey(nil)
	resigned, err := marshalSigned(m, other)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(manifest, resigned, 0o600)
	if _, err := Verify(manifest, VerifyOptions{PublicKey: pub}); err == nil || !strings.Contains(err.Error(), "not by the expected key") {
		t.Errorf("Verify of a manifest signed by another key: %v", err)
	}
	os.WriteFile(manifest, mb, 0o600)
	os.WriteFile(filepath.Join(filepath.Dir(manifest), "extra.ogg"), []byte("x"), 0o600)
	if _, err := Verify(manifest, VerifyOptions{PublicKey: pub}); err == nil || !strings.Contains(err.Error(), "extra.ogg") {
		t.Errorf("Verify of a recording with an unlisted file: %v", err)
	}
}

// A recorder with another channel secret than the publisher writes no media and stops within seconds, saying that
// frames fail to decrypt.
func TestWrongSecretWritesNothing(t *testing.T) {
	url := startNetwork(t)
	opus, vp8 := testMedia(t)
	p := publish(t, url, media.GenerateSecret(), opus, vp8) // sends its first frames until the test ends
	_, key, _ := ed25519.GenerateKey(nil)
	rec, err := New(Config{Client: sdk.Config{URL: url, AppID: testApp, Channel: testChannel, UID: "rec",
		Token: testToken(t, "rec", token.RoleRecorder), Secret: media.GenerateSecret()}, Dir: t.TempDir(), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	rec.written = func(f sdk.Frame) { t.Errorf("a %s frame was written", f.Kind) }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err = rec.Run(ctx)
	if !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Run = %v, want ErrDecrypt", err)
	}
	t.Logf("stopped after %v: %v", time.Since(start).Round(time.Millisecond), err)
	entries, _ := os.ReadDir(filepath.Dir(rec.ManifestPath()))
	if len(entries) != 1 || entries[0].Name() != ManifestName {
		t.Errorf("the recording's directory holds %v, want only the manifest", entries)
	}
	m, err := readManifest(rec.ManifestPath())
	if err != nil {
		t.Fatal(err)
	}
	if !m.Complete || len(m.Files) != 0 || !strings.Contains(m.Error, "decrypt") {
		t.Errorf("manifest %+v", m)
	}
	close(p.release)
}
