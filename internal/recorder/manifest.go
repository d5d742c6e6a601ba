package recorder

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ManifestName is the manifest's file name in a recording's directory.
const ManifestName = "manifest.json"

// MaxManifestSize bounds what ParseManifest reads.
const MaxManifestSize = 16 << 20

// manifestVersion is the version of the manifest format.
const manifestVersion = 1

// signingContext prefixes the signed bytes, so a manifest signature cannot be taken for any other signature of the
// same key.
const signingContext = "stoa-recording-manifest-v1\n"

// Manifest describes one recording: what was recorded, where and when, and the digest of every file.
type Manifest struct {
	Version     int    `json:"version"`
	RecordingID string `json:"recording_id"`
	AppID       string `json:"app_id"`
	Channel     string `json:"channel"`
	// RecorderUID is the uid the recorder joined with (hidden).
	RecorderUID string    `json:"recorder_uid"`
	StartedAt   time.Time `json:"started_at"`
	// EndedAt is set, and Complete true, once the recording has ended and every file is closed; a manifest
	// without them was written while recording (the recorder stopped before its end, e.g. it was killed).
	EndedAt  *time.Time `json:"ended_at,omitempty"`
	Complete bool       `json:"complete"`
	// Error says why the recording ended early, if it did.
	Error string `json:"error,omitempty"`
	// AgeRecipients are the age recipients every file is encrypted to; none: files are in the clear.
	AgeRecipients []string `json:"age_recipients,omitempty"`
	Files         []File   `json:"files"`
}

// File describes one file of a recording: one segment of one participant's audio or video track.
type File struct {
	// Name is the file's name in the recording's directory: <uid>-<kind>[-<segment>].<ext>[.age].
	Name    string `json:"name"`
	UID     string `json:"uid"`
	Kind    string `json:"kind"`  // audio, video
	Codec   string `json:"codec"` // opus, vp8
	TrackID string `json:"track_id"`
	// Segment numbers the files of one uid and kind from 1.
	Segment   int  `json:"segment"`
	Encrypted bool `json:"encrypted"`
	// Width and Height (video) and Channels (audio) describe the stream.
	Width    int `json:"width,omitempty"`
	Height   int `json:"height,omitempty"`
	Channels int `json:"channels,omitempty"`
	// ClockRate is the rate of the timestamps: 48000 for Opus, 90000 for VP8.
	ClockRate int `json:"clock_rate"`
	// FirstTimestamp and LastTimestamp are the RTP timestamps of the first and last frame written, FirstAt and
	// LastAt when they were received.
	FirstTimestamp uint32    `json:"first_timestamp"`
	LastTimestamp  uint32    `json:"last_timestamp"`
	FirstAt        time.Time `json:"first_at"`
	LastAt         time.Time `json:"last_at"`
	// Frames counts the frames received and written; Concealed the empty Opus frames written to fill gaps.
	Frames    int64 `json:"frames"`
	Concealed int64 `json:"concealed,omitempty"`
	// Size and SHA256 describe the file as stored (the age ciphertext when encrypted).
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Closed is true once the file was closed properly: its size is final.
	Closed bool `json:"closed"`
}

// signedManifest is the file format: the manifest's exact bytes, and an Ed25519 signature over them by the key
// whose public half is given. The manifest is kept as raw bytes so the signature covers exactly what is stored.
type signedManifest struct {
	Manifest  json.RawMessage `json:"manifest"`
	PublicKey string          `json:"public_key"` // base64, 32 bytes
	Signature string          `json:"signature"`  // base64, 64 bytes, over signingContext + Manifest
}

// marshalSigned returns the stored form of m signed with key.
func marshalSigned(m *Manifest, key ed25519.PrivateKey) ([]byte, error) {
	body, err := json.Marshal(m) // compact: json.Marshal of the envelope keeps raw bytes as they are
	if err != nil {
		return nil, err
	}
	sig := ed25519.Sign(key, append([]byte(signingContext), body...))
	out, err := json.Marshal(signedManifest{Manifest: body,
		PublicKey: base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey)),
		Signature: base64.StdEncoding.EncodeToString(sig)})
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// ParseManifest decodes a stored manifest and checks its signature against the key it names; the caller decides
// whether it trusts that key (see [VerifyOptions.PublicKey]). Unknown fields, a bad signature and impossible
// values are errors.
func ParseManifest(b []byte) (*Manifest, ed25519.PublicKey, error) {
	if len(b) > MaxManifestSize {
		return nil, nil, fmt.Errorf("recorder: manifest is %d bytes, more than %d", len(b), MaxManifestSize)
	}
	var s signedManifest
	if err := decodeStrict(b, &s); err != nil {
		return nil, nil, fmt.Errorf("recorder: manifest: %w", err)
	}
	pub, err := base64.StdEncoding.DecodeString(s.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, nil, errors.New("recorder: manifest: public_key is not a base64 Ed25519 public key")
	}
	sig, err := base64.StdEncoding.DecodeString(s.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, nil, errors.New("recorder: manifest: signature is not a base64 Ed25519 signature")
	}
	if !ed25519.Verify(pub, append([]byte(signingContext), s.Manifest...), sig) {
		return nil, nil, errors.New("recorder: manifest: bad signature (the manifest was changed after signing)")
	}
	var m Manifest
	if err := decodeStrict(s.Manifest, &m); err != nil {
		return nil, nil, fmt.Errorf("recorder: manifest: %w", err)
	}
	if err := m.check(); err != nil {
		return nil, nil, err
	}
	return &m, pub, nil
}

func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}

// check reports the first impossible value of a signed manifest.
func (m *Manifest) check() error {
	if m.Version != manifestVersion {
		return fmt.Errorf("recorder: manifest version %d, this program reads %d", m.Version, manifestVersion)
	}
	names := map[string]bool{}
	for i, f := range m.Files {
		switch {
		case !validFileName(f.Name):
			return fmt.Errorf("recorder: manifest: file %d has an invalid name %q", i, f.Name)
		case names[f.Name]:
			return fmt.Errorf("recorder: manifest: %s is listed twice", f.Name)
		case f.Kind != "audio" && f.Kind != "video":
			return fmt.Errorf("recorder: manifest: %s has unknown kind %q", f.Name, f.Kind)
		case f.Size < 0 || f.Frames < 0 || f.Concealed < 0:
			return fmt.Errorf("recorder: manifest: %s has a negative count", f.Name)
		}
		if d, err := hex.DecodeString(f.SHA256); err != nil || len(d) != 32 {
			return fmt.Errorf("recorder: manifest: %s has an invalid sha256", f.Name)
		}
		names[f.Name] = true
	}
	return nil
}

// validFileName accepts the names the recorder gives files: a plain name in the recording's directory, never a
// path, never hidden, never the manifest.
func validFileName(name string) bool {
	if name == "" || len(name) > 255 || name[0] == '.' || name == ManifestName || filepath.Base(name) != name {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// writeManifest replaces dir's manifest atomically: a reader sees the old one or the new one, never a mix.
func writeManifest(root *os.Root, m *Manifest, key ed25519.PrivateKey) error {
	b, err := marshalSigned(m, key)
	if err != nil {
		return err
	}
	var r [6]byte
	rand.Read(r[:])
	tmp := "." + ManifestName + "." + hex.EncodeToString(r[:])
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		root.Remove(tmp)
		return err
	}
	if err := root.Rename(tmp, ManifestName); err != nil {
		root.Remove(tmp)
		return err
	}
	// The rename is durable once the directory is.
	if d, err := root.Open("."); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
