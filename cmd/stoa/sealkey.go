package main

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// The nodes' sealing key: an X25519 key pair whose public half the console seals App Certificates to
// (--project-seal-key) and whose private half edges and dispatchers open them with (--project-open-key FILE).
// The file holds the private key as 64 hexadecimal digits.

// loadOpenKey reads the private sealing key from path, creating the file with a fresh key if it is missing
// (created true).
func loadOpenKey(path string) (key *ecdh.PrivateKey, created bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if key, err = ecdh.X25519().GenerateKey(rand.Reader); err != nil {
			return nil, false, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, err
		}
		_, werr := f.WriteString(hex.EncodeToString(key.Bytes()) + "\n")
		if err := errors.Join(werr, f.Close()); err != nil {
			return nil, false, err
		}
		return key, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err == nil {
		key, err = ecdh.X25519().NewPrivateKey(raw)
	}
	if err != nil {
		// The error names the file, never its content.
		return nil, false, fmt.Errorf("%s: not an X25519 private key in hex (64 digits)", path)
	}
	return key, false, nil
}

// parseSealKey reads --project-seal-key: the X25519 public key in hex.
func parseSealKey(s string) (*ecdh.PublicKey, error) {
	raw, err := hex.DecodeString(strings.TrimSpace(s))
	var key *ecdh.PublicKey
	if err == nil {
		key, err = ecdh.X25519().NewPublicKey(raw)
	}
	if err != nil {
		return nil, usagef("--project-seal-key: %q is not an X25519 public key in hex (64 digits)", s)
	}
	return key, nil
}
