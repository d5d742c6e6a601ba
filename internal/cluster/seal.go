package cluster

import (
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
)

// App Certificates never travel on the bus in clear when the console has a sealing key: it seals them with HPKE
// (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305) to the nodes' X25519 public
// key (Config.ProjectSealKey), and edges and dispatchers, which hold the private half (Config.ProjectOpenKey), open
// them in memory only. The HPKE info binds the App ID and the record's version, so a sealed blob moved into
// another project's record, or into another version of the same project, does not open:
//
//	info      = "stoa project certificates v1" || uvarint(len(app_id)) || app_id || uvarint(version)
//	plaintext = uvarint(n) || (uvarint(len(cert)) || cert)*n
//	sealed    = enc (32 bytes) || ciphertext (plaintext + 16-byte tag)

const sealInfo = "stoa project certificates v1"

var (
	sealKDF  = hpke.HKDFSHA256()
	sealAEAD = hpke.ChaCha20Poly1305()
)

// errNoOpenKey: the record is sealed and this node holds no key to open it.
var errNoOpenKey = errors.New("cluster: sealed certificates, and this node has no project opening key")

func sealInfoFor(appID string, version uint64) []byte {
	b := []byte(sealInfo)
	b = append(binary.AppendUvarint(b, uint64(len(appID))), appID...)
	return binary.AppendUvarint(b, version)
}

// sealCertificates seals certs for the holders of pub's private half, bound to appID and version.
func sealCertificates(pub *ecdh.PublicKey, appID string, version uint64, certs []string) ([]byte, error) {
	k, err := hpke.NewDHKEMPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("cluster: seal key: %w", err)
	}
	b := binary.AppendUvarint(nil, uint64(len(certs)))
	for _, c := range certs {
		b = append(binary.AppendUvarint(b, uint64(len(c))), c...)
	}
	return hpke.Seal(k, sealKDF, sealAEAD, sealInfoFor(appID, version), b)
}

// openCertificates reverses sealCertificates; any change to sealed, appID or version fails.
func openCertificates(priv *ecdh.PrivateKey, appID string, version uint64, sealed []byte) ([]string, error) {
	if priv == nil {
		return nil, errNoOpenKey
	}
	k, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("cluster: open key: %w", err)
	}
	b, err := hpke.Open(k, sealKDF, sealAEAD, sealInfoFor(appID, version), sealed)
	if err != nil {
		return nil, errors.New("cluster: sealed certificates do not open with this node's key")
	}
	n, used := binary.Uvarint(b)
	if used <= 0 || n > 2 {
		return nil, errors.New("cluster: sealed certificates: bad count")
	}
	b = b[used:]
	certs := make([]string, 0, n)
	for range n {
		l, used := binary.Uvarint(b)
		if used <= 0 || l > uint64(len(b)-used) {
			return nil, errors.New("cluster: sealed certificates: bad length")
		}
		certs = append(certs, string(b[used:used+int(l)]))
		b = b[used+int(l):]
	}
	if len(b) != 0 {
		return nil, errors.New("cluster: sealed certificates: trailing bytes")
	}
	return certs, nil
}
