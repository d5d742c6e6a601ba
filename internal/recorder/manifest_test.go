package recorder

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

func testManifest() *Manifest {
	at := time.Date(2026, 12, 4, 19, 0, 0, 0, time.UTC)
	return &Manifest{Version: manifestVersion, RecordingID: "20261204T190000Z-00000000", AppID: testApp, Channel: "c",
		RecorderUID: "rec", StartedAt: at, EndedAt: &at, Complete: true, Files: []File{{
			Name: "7-audio.ogg", UID: "7", Kind: "audio", Codec: "opus", TrackID: "TR_1", Segment: 1, Channels: 1,
			ClockRate: 48000, FirstAt: at, LastAt: at, Frames: 3, Size: 4,
			SHA256: "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589"}}}
}

func TestManifestParseRefuses(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	sign := func(mod func(m *Manifest)) string {
		m := testManifest()
		mod(m)
		b, err := marshalSigned(m, key)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	good := sign(func(*Manifest) {})
	if _, pub, err := ParseManifest([]byte(good)); err != nil || !bytes.Equal(pub, key.Public().(ed25519.PublicKey)) {
		t.Fatalf("good manifest: %v", err)
	}
	for name, tc := range map[string]struct{ in, want string }{
		"not json":        {"{", "manifest"},
		"unknown field":   {strings.Replace(good, `"signature"`, `"extra":1,"signature"`, 1), "unknown field"},
		"trailing data":   {good + "{}", "after"},
		"bad key":         {strings.Replace(good, `"public_key":"`, `"public_key":"AA`, 1), "public_key"},
		"changed body":    {strings.Replace(good, `"frames":3`, `"frames":4`, 1), "bad signature"},
		"path":            {sign(func(m *Manifest) { m.Files[0].Name = "../x.ogg" }), "invalid name"},
		"absolute":        {sign(func(m *Manifest) { m.Files[0].Name = "/etc/passwd" }), "invalid name"},
		"the manifest":    {sign(func(m *Manifest) { m.Files[0].Name = ManifestName }), "invalid name"},
		"twice":           {sign(func(m *Manifest) { m.Files = append(m.Files, m.Files[0]) }), "twice"},
		"kind":            {sign(func(m *Manifest) { m.Files[0].Kind = "data" }), "kind"},
		"digest":          {sign(func(m *Manifest) { m.Files[0].SHA256 = "00" }), "sha256"},
		"negative size":   {sign(func(m *Manifest) { m.Files[0].Size = -1 }), "negative"},
		"later version":   {sign(func(m *Manifest) { m.Version = 2 }), "version"},
		"unknown in body": {strings.Replace(sign(func(*Manifest) {}), `"version":1`, `"version":1,"x":2`, 1), "signature"},
	} {
		if _, _, err := ParseManifest([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", name, err, tc.want)
		}
	}
	if _, _, err := ParseManifest(make([]byte, MaxManifestSize+1)); err == nil {
		t.Error("an oversized manifest was read")
	}
}

// FuzzParseManifest: hostile manifests never panic, and one that parses signs and parses again to the same
// content, with file names that stay in the recording's directory.
func FuzzParseManifest(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(nil)
	good, _ := marshalSigned(testManifest(), key)
	f.Add(good)
	f.Add([]byte(`{"manifest":{},"public_key":"","signature":""}`))
	f.Add([]byte(`{"manifest":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _, err := ParseManifest(b)
		if err != nil {
			return
		}
		for _, file := range m.Files {
			if !validFileName(file.Name) || filepath.Base(file.Name) != file.Name {
				t.Fatalf("name %q accepted", file.Name)
			}
		}
		again, err := marshalSigned(m, key)
		if err != nil {
			t.Fatal(err)
		}
		m2, _, err := ParseManifest(again)
		if err != nil {
			t.Fatalf("re-signed manifest: %v", err)
		}
		j1, _ := json.Marshal(m)
		j2, _ := json.Marshal(m2)
		if !bytes.Equal(j1, j2) {
			t.Fatalf("round trip changed the manifest:\n%s\n%s", j1, j2)
		}
	})
}

// The key file is created once (mode 0600, with a .pub that ParsePublicKey reads) and read back the same.
func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "recorder.pem")
	k1, created, err := LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v", st.Mode(), err)
	}
	k2, created, err := LoadOrCreateKey(path)
	if err != nil || created || !k1.Equal(k2) {
		t.Fatalf("load: created %v, same %v, %v", created, k1.Equal(k2), err)
	}
	pem, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(string(pem))
	if err != nil || !pub.Equal(k1.Public()) {
		t.Fatalf("public key: %v", err)
	}
	os.WriteFile(path, []byte("not a key"), 0o600)
	if _, _, err := LoadOrCreateKey(path); err == nil {
		t.Error("a broken key file was read")
	}
	if _, err := ParsePublicKey("AAAA"); err == nil {
		t.Error("a short public key was read")
	}
}

// What a SIGKILL leaves of an encrypted file: age authenticates each 64 KiB chunk, so decrypting a cut file yields
// every whole chunk, then an error. docs/recording.md relies on this.
func TestTruncatedAgeFileKeepsWholeChunks(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	var enc bytes.Buffer
	w, err := age.Encrypt(&enc, id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	plain := bytes.Repeat([]byte("0123456789abcdef"), 3<<12) // 192 KiB: three chunks
	w.Write(plain)
	w.Close()
	cut := enc.Bytes()[:enc.Len()-40000] // inside the third chunk
	r, err := age.Decrypt(bytes.NewReader(cut), id)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err == nil {
		t.Error("a cut file decrypted without an error")
	}
	if len(got) != 2<<16 || !bytes.Equal(got, plain[:len(got)]) {
		t.Errorf("got %d bytes before the error, want the two whole chunks (%d bytes)", len(got), 2<<16)
	}
}
