package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stoa-rtc/stoa/internal/busauth"
	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/tokentest"
	"github.com/stoa-rtc/stoa/token"
)

// dispatch006 posts a dispatch request for channel and uid with tok, and returns the status and error code.
func dispatch006(t *testing.T, d devNet, tok, channel, uid string) (int, string) {
	t.Helper()
	return postDispatch(t, d.url, map[string]string{"app_id": d.appID, "channel": channel, "uid": uid, "token": tok})
}

// connectAs connects to stoa dev's bus with the credentials it wrote for role, replies going to the inbox that
// the credentials allow.
func connectAs(t *testing.T, d devNet, role string) (*nats.Conn, error) {
	t.Helper()
	b, err := os.ReadFile(d.creds(role))
	if err != nil {
		t.Fatal(err)
	}
	c, err := busauth.ParseCredentials(b)
	if err != nil {
		t.Fatal(err)
	}
	return nats.Connect(d.nats, nats.UserCredentials(d.creds(role)), nats.CustomInboxPrefix(c.InboxPrefix()))
}

// TestDev006 covers finding 1 against a real dispatcher: the demo project of stoa dev refuses 006 tokens
// (token_006_refused) unless --accept-006 is given, and even then the re-targeting attacks of the finding (a token
// for room1/23 with its unsigned CRCs rewritten for room12/3 or for room123 and the wildcard uid) are refused
// with token_006_ambiguous, as is a token for room/123 moved to room1/23 or room12/3.
func TestDev006(t *testing.T) {
	ts := uint32(time.Now().Add(24 * time.Hour).Unix())
	d := startDev(t)
	tok := tokentest.Build006(d.appCert, d.appID, "demo", "1", 1, ts)
	if status, code := dispatch006(t, d, tok, "demo", "1"); status != http.StatusForbidden || code != "token_006_refused" {
		t.Errorf("006 token without --accept-006: %d %q, want 403 token_006_refused", status, code)
	}

	d = startDev(t, "--accept-006")
	tok = tokentest.Build006(d.appCert, d.appID, "demo", "1", 1, ts)
	if status, code := dispatch006(t, d, tok, "demo", "1"); status != http.StatusOK {
		t.Fatalf("006 token with --accept-006: %d %q", status, code)
	}
	room1 := tokentest.Build006(d.appCert, d.appID, "room1", "23", 2, ts)
	room := tokentest.Build006(d.appCert, d.appID, "room", "123", 3, ts)
	for _, tc := range []struct{ name, tok, channel, uid string }{
		{"room1/23 as issued", room1, "room1", "23"},
		{"room1/23 as room12/3", tokentest.Retarget006(room1, "room12", "3"), "room12", "3"},
		{"room1/23 as room123, any uid", tokentest.Retarget006(room1, "room123", ""), "room123", "77"},
		{"room1/23 as room123/1", tokentest.Retarget006(room1, "room123", "1"), "room123", "1"},
		{"room/123 as room1/23", tokentest.Retarget006(room, "room1", "23"), "room1", "23"},
		{"room/123 as room12/3", tokentest.Retarget006(room, "room12", "3"), "room12", "3"},
		{"room/123 as room123, any uid", tokentest.Retarget006(room, "room123", ""), "room123", "1"},
	} {
		if status, code := dispatch006(t, d, tc.tok, tc.channel, tc.uid); status != http.StatusForbidden || code != "token_006_ambiguous" {
			t.Errorf("%s: %d %q, want 403 token_006_ambiguous", tc.name, status, code)
		}
	}
	if status, code := dispatch006(t, d, room, "room", "123"); status != http.StatusOK {
		t.Errorf("room/123 as issued: %d %q", status, code)
	}
}

// TestDevSealsCertificates covers finding 9: the App Certificate is never in clear on the bus nor in the
// JetStream files that stoa dev keeps in its data directory, and edges and the dispatcher still verify tokens
// (TestDevServesDispatch).
func TestDevSealsCertificates(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, "--data", dir)
	cert := []byte(d.appCert)

	// An edge's credentials read the projects bucket, as every edge must.
	nc, err := connectAs(t, d, "edge")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "stoa_projects")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil || len(keys) == 0 {
		t.Fatalf("projects bucket: %v %v", keys, err)
	}
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(e.Value(), cert) || !bytes.Contains(e.Value(), []byte(`"sealed_certificates"`)) {
			t.Errorf("record %s on the bus holds the certificate in clear, or nothing sealed: %s", k, e.Value())
		}
	}
	files := 0
	err = filepath.WalkDir(filepath.Join(dir, "nats"), func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		if bytes.Contains(b, cert) {
			t.Errorf("%s holds the App Certificate in clear", path)
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("walk %s: %d files, %v", dir, files, err)
	}
}

// TestDevReplayedProjectStaysDeleted covers finding 9 against a real dispatcher: a process on stoa dev's bus
// replays a deleted project's signed record (raw, and after deleting the tombstone); the project's tokens stay
// refused. The test plays the console with stoa dev's own keys from its data directory.
func TestDevReplayedProjectStaysDeleted(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, "--data", dir)
	signer, err := projectSigner(dir)
	if err != nil {
		t.Fatal(err)
	}
	open, _, err := loadOpenKey(filepath.Join(dir, "nats", sealKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := cluster.Default()
	// The attacker holds the console's bus credentials (the only ones allowed to write projects), not its key.
	cfg.URLs, cfg.Region, cfg.Node, cfg.CredentialsFile = []string{d.nats}, d.region, "test-console", d.creds("console")
	cfg.ProjectSigner, cfg.ProjectKeys = signer, []ed25519.PublicKey{signer.Public().(ed25519.PublicKey)}
	cfg.ProjectSealKey = open.PublicKey()
	console, err := cluster.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer console.Close()
	nc, err := connectAs(t, d, "console")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, "stoa_projects")
	if err != nil {
		t.Fatal(err)
	}

	const app, cert = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	key := base64.RawURLEncoding.EncodeToString([]byte(app))
	status := func(app, cert string) int {
		tok, err := token.BuildRTC(cert, token.RTCOptions{AppID: app, Channel: "demo", UID: "1", Expire: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		d := d
		d.appID = app
		code, _ := dispatch006(t, d, tok, "demo", "1")
		return code
	}
	waitStatus := func(app, cert string, want int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); status(app, cert) != want; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("dispatch for %s never answered %d", app, want)
			}
		}
	}
	if err := console.PutProject(ctx, cluster.Project{AppID: app, Certificates: []string{cert}, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	waitStatus(app, cert, http.StatusOK)
	old, err := kv.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := console.DeleteProject(ctx, app, 0); err != nil {
		t.Fatal(err)
	}
	waitStatus(app, cert, http.StatusForbidden)

	// The replays, then a marker project written after them: once the dispatcher takes the marker, it has read
	// past the replays.
	if _, err := kv.Put(ctx, key, old.Value()); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, key, old.Value()); err != nil {
		t.Fatal(err)
	}
	const marker = "fffffffffffffffffffffffffffffff0"
	if err := console.PutProject(ctx, cluster.Project{AppID: marker, Certificates: []string{cert}, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	waitStatus(marker, cert, http.StatusOK)
	if code := status(app, cert); code != http.StatusForbidden {
		t.Errorf("after the replays, the deleted project's token: %d, want 403", code)
	}
}
