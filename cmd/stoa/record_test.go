package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
)

func ivfFrames(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, _, err := ivfreader.NewWith(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var frames [][]byte
	for {
		fr, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			return frames
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		frames = append(frames, fr)
	}
}

// The contract's command lines: stoa join --input publishes a real VP8 file, stoa record records it as a hidden
// participant, every recorded frame is one of the file's, and stoa record verify says ok — and names the file it
// finds changed.
func TestRecordCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a network")
	}
	d := startDev(t)
	input := "../../internal/recorder/testdata/bars.ivf"
	secret := strings.Repeat("3c", 32)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pubDone := make(chan int, 1)
	go func() {
		var out, errOut syncBuffer
		pubDone <- runMain(ctx, []string{"join", "--url", d.url, "--app-id", d.appID, "--app-cert", d.appCert, "--channel", "rec",
			"--e2ee-secret", secret, "--uid", "pub", "--publish", "video", "--input", input, "--duration", "60s"}, &out, &errOut)
	}()
	dir, keyFile := t.TempDir(), filepath.Join(t.TempDir(), "rec.pem")
	code, out, errOut := stoa(t, "record", "--url", d.url, "--app-id", d.appID, "--app-cert", d.appCert, "--channel", "rec",
		"--e2ee-secret", secret, "--out", dir, "--duration", "4s", "--key", keyFile)
	if code != 0 {
		t.Fatalf("stoa record exited %d: %s", code, errOut)
	}
	manifest := strings.TrimSpace(out)
	want := ivfFrames(t, input)
	got := ivfFrames(t, filepath.Join(filepath.Dir(manifest), "pub-video.ivf"))
	if len(got) < 15 {
		t.Errorf("%d frames recorded in 4 s of 15 frames/s", len(got))
	}
	// The recording starts at some frame of the looping file (a key frame): from there it follows the file.
	off := slices.IndexFunc(want, func(f []byte) bool { return len(got) > 0 && bytes.Equal(f, got[0]) })
	for i, f := range got {
		if off < 0 || !bytes.Equal(f, want[(i+off)%len(want)]) {
			t.Fatalf("recorded frame %d is not the file's next frame (first at %d)", i, off)
		}
	}
	if code, out, errOut := stoa(t, "record", "verify", "--public-key", keyFile+".pub", manifest); code != 0 || out != "ok\n" {
		t.Errorf("verify: exit %d, %q %q", code, out, errOut)
	}
	os.WriteFile(filepath.Join(filepath.Dir(manifest), "pub-video.ivf"), []byte("DKIF"), 0o600)
	if code, _, errOut := stoa(t, "record", "verify", manifest); code != 1 || !strings.Contains(errOut, "pub-video.ivf") {
		t.Errorf("verify of a changed file: exit %d, %q", code, errOut)
	}
	cancel()
	<-pubDone
}

func TestRecordUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"record", "--url", "http://127.0.0.1:1", "--channel", "c", "--out", "x"}, 2, "channel secret"},
		{[]string{"record", "--url", "http://127.0.0.1:1", "--channel", "c", "--out", "x", "--s3-bucket", "b"}, 2, "planned"},
		{[]string{"record", "--channel", "c"}, 2, "required"},
		{[]string{"record", "verify"}, 2, "one manifest"},
		{[]string{"record", "verify", filepath.Join(t.TempDir(), "missing.json")}, 1, "no such file"},
	} {
		code, _, errOut := stoa(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}
