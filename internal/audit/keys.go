package audit

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"
)

// keyring holds the public keys a verifier trusts, by [KeyID]. A signature is checked only with the trusted key
// whose id it names: the public key stored next to a checkpoint is never trusted, and an id copied from a
// trusted key does not make an attacker's signature verify.
type keyring map[string]ed25519.PublicKey

var errNoTrustedKey = errors.New("no trusted key")

func newKeyring(keys []ed25519.PublicKey) (keyring, error) {
	if len(keys) == 0 {
		return nil, errNoTrustedKey
	}
	r := keyring{}
	for _, k := range keys {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("a trusted key holds %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
		r[KeyID(k)] = k
	}
	return r, nil
}

// check returns why sig is not a signature of (domain, seq, h, t, keyID) by the trusted key named keyID, or ""
// if it is.
func (r keyring) check(domain string, seq uint64, h Hash, t time.Time, keyID string, sig []byte) string {
	k, ok := r[keyID]
	switch {
	case !ok:
		return fmt.Sprintf("signed by untrusted key %q", keyID)
	case !ed25519.Verify(k, signedMessage(domain, seq, h, t, keyID), sig):
		return fmt.Sprintf("its signature does not verify with trusted key %q", keyID)
	}
	return ""
}
