package recorder

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// VerifyOptions say what Verify trusts and accepts.
type VerifyOptions struct {
	// PublicKey, if set, is the recorder key the manifest must be signed with. Without it Verify checks the
	// signature against the key the manifest names, which proves only that manifest and files agree: anyone can
	// sign a manifest of their own.
	PublicKey ed25519.PublicKey
	// AllowIncomplete accepts a manifest written while recording (the recorder was stopped before the end): each
	// file must then start with the bytes the manifest describes, and may be longer.
	AllowIncomplete bool
}

// Verify checks the manifest at path and the files it lists: the signature, the key if pinned, and every file's
// size and SHA-256. It returns the first problem, or nil; the returned key is the one that signed.
func Verify(path string, o VerifyOptions) (ed25519.PublicKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxManifestSize+1))
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	m, pub, err := ParseManifest(b)
	if err != nil {
		return nil, err
	}
	if o.PublicKey != nil && !bytes.Equal(pub, o.PublicKey) {
		return pub, fmt.Errorf("recorder: the manifest is signed by key %s, not by the expected key %s", KeyID(pub), KeyID(o.PublicKey))
	}
	if !m.Complete && !o.AllowIncomplete {
		return pub, fmt.Errorf("recorder: the recording is incomplete (the recorder stopped before its end); " +
			"verify the part the last manifest describes with --allow-incomplete")
	}
	root, err := os.OpenRoot(filepath.Dir(path))
	if err != nil {
		return pub, fmt.Errorf("recorder: %w", err)
	}
	defer root.Close()
	listed := map[string]bool{ManifestName: true}
	for _, mf := range m.Files {
		listed[mf.Name] = true
		if err := verifyFile(root, mf, m.Complete); err != nil {
			return pub, err
		}
	}
	if m.Complete {
		entries, err := os.ReadDir(filepath.Dir(path))
		if err != nil {
			return pub, fmt.Errorf("recorder: %w", err)
		}
		for _, e := range entries {
			if !listed[e.Name()] {
				return pub, fmt.Errorf("recorder: %s is in the recording's directory but not in the manifest", e.Name())
			}
		}
	}
	return pub, nil
}

// verifyFile checks one file: exactly the size and digest of the manifest or, for a manifest written while
// recording, a prefix of that size with that digest.
func verifyFile(root *os.Root, mf File, exact bool) error {
	f, err := root.Open(mf.Name)
	if err != nil {
		return fmt.Errorf("recorder: %s: %w", mf.Name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("recorder: %s: %w", mf.Name, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("recorder: %s is not a regular file", mf.Name)
	}
	if st.Size() < mf.Size || exact && st.Size() != mf.Size {
		return fmt.Errorf("recorder: %s is %d bytes, the manifest says %d", mf.Name, st.Size(), mf.Size)
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, mf.Size); err != nil {
		return fmt.Errorf("recorder: %s: %w", mf.Name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(mf.SHA256) {
		return fmt.Errorf("recorder: %s has SHA-256 %s, the manifest says %s (the file was changed)", mf.Name, got, mf.SHA256)
	}
	return nil
}
