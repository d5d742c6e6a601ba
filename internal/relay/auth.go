package relay

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/stoa-rtc/stoa/internal/busauth"
)

// Authentication. TLS provides the encryption and a key that only the two ends of this connection share; the
// certificates are throwaway (fresh self-signed Ed25519, contents ignored) because an edge's identity is its bus
// credentials, not a certificate. Right after the handshake the dialler opens the connection stream and both ends
// send a hello frame:
//
//	jwt, region, edge_id, sig = Credentials.Sign(helloDomain, exporter || role || u16 len || region || u16 len || edge_id)
//	media_id: the id this end chose for the connection, which the peer puts in the media packets it sends here
//
// where exporter is the connection's TLS exporter (RFC 8446 §7.5, label exporterLabel, 32 bytes) and role is
// roleClient or roleServer, the sender's. The exporter binds the proof to this TLS session (a proof cannot be
// replayed on another connection, nor relayed by a machine in the middle, whose two sessions have different
// exporters); the role stops a server from returning the client's proof as its own. The receiver checks it with
// Config.Trust and requires an edge identity that allows the claimed region and id; the dialler also requires
// that they are the peer it dialled. The dialler sends first; the server answers with its own hello only once the
// dialler's is accepted, or closes the connection with codeUnauthenticated and the reason. The media id needs no
// signature: TLS protects it, and it is no secret (it travels in clear in every media packet).

const (
	alpn          = "stoa-relay/2" // 2: media packets beside QUIC instead of QUIC datagrams
	exporterLabel = "EXPORTER-stoa-relay-v1"
	helloDomain   = "relay-link"
	roleClient    = 'c'
	roleServer    = 's'
)

// newCertificate returns a fresh self-signed Ed25519 certificate. Nothing in it is checked by the peer, so its
// validity period only has to outlast the process.
func newCertificate() (tls.Certificate, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(100, 0, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// tlsConfigs returns the server and client TLS configurations of a transport presenting cert.
func tlsConfigs(cert tls.Certificate) (server, client *tls.Config) {
	server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert, // a client certificate, whatever it says: see above
		NextProtos:   []string{alpn},
	}
	client = &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, // the hello authenticates the server, bound to this session
		ServerName:         "stoa-relay",
		NextProtos:         []string{alpn},
	}
	return server, client
}

// helloMessage is what a hello signs.
func helloMessage(exporter []byte, role byte, region, edgeID string) []byte {
	b := make([]byte, 0, len(exporter)+1+4+len(region)+len(edgeID))
	b = append(b, exporter...)
	b = append(b, role)
	b = binary.BigEndian.AppendUint16(b, uint16(len(region)))
	b = append(b, region...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(edgeID)))
	return append(b, edgeID...)
}

// exporter returns the connection's TLS exporter for the hello.
func exporter(cs *tls.ConnectionState) ([]byte, error) {
	return cs.ExportKeyingMaterial(exporterLabel, nil, 32)
}

// newHello returns this end's hello.
func newHello(creds *busauth.Credentials, exp []byte, role byte, region, edgeID string, mediaID uint64) *frame {
	return &frame{typ: frameHello, jwt: creds.JWT(), region: region, edgeID: edgeID,
		sig: creds.Sign(helloDomain, helloMessage(exp, role, region, edgeID)), mediaID: mediaID}
}

// Reasons for refusing a peer at the handshake: the label values of stoa_relay_refused_total.
const (
	reasonUntrusted = "untrusted"  // credentials not issued by a trusted account, expired, or a bad signature
	reasonNotEdge   = "not_edge"   // trusted credentials, but not of an edge allowed that region and id
	reasonWrongPeer = "wrong_peer" // a genuine edge, but not the one dialled
	reasonProtocol  = "protocol"   // no hello, a malformed one, or a timeout
	reasonRefused   = "refused"    // the peer refused this end (dialler side)
)

// authError is a failed handshake: reason is the metric label, err the explanation.
type authError struct {
	reason string
	err    error
}

func (e *authError) Error() string { return e.err.Error() }
func (e *authError) Unwrap() error { return e.err }

// checkHello verifies a peer's hello received on a connection with exporter exp; want, if not nil, is the peer
// that was dialled. It returns the proven peer (without an address).
func checkHello(trust *busauth.Verifier, f *frame, exp []byte, role byte, want *Peer, now time.Time) (Peer, error) {
	msg := helloMessage(exp, role, f.region, f.edgeID)
	id, err := trust.Verify(f.jwt, helloDomain, msg, f.sig, now.Unix())
	if err != nil {
		return Peer{}, &authError{reasonUntrusted, fmt.Errorf("%w: peer is not an edge of this network: %w", ErrUntrusted, err)}
	}
	if !id.Allows(busauth.RoleEdge, f.region, f.edgeID) {
		return Peer{}, &authError{reasonNotEdge, fmt.Errorf("%w: peer's credentials (%s) do not make it edge %q of region %q",
			ErrUntrusted, id, f.edgeID, f.region)}
	}
	if want != nil && (want.Region != f.region || want.EdgeID != f.edgeID) {
		return Peer{}, &authError{reasonWrongPeer, fmt.Errorf("%w: dialled edge %s/%s, reached edge %s/%s",
			ErrUntrusted, want.Region, want.EdgeID, f.region, f.edgeID)}
	}
	return Peer{Region: f.region, EdgeID: f.edgeID}, nil
}

// errNoHello is a connection stream that did not start with a valid hello.
var errNoHello = errors.New("relay: the peer sent no valid hello")
