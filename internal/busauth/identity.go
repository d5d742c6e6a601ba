package busauth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// Role is what a node does on the bus.
type Role string

// The roles. The console administers the bus (creates and updates the buckets and the event stream, writes
// projects and drain requests, consumes events); edges and dispatchers write only their own records.
const (
	RoleConsole  Role = "console"
	RoleEdge     Role = "edge"
	RoleDispatch Role = "dispatch"
)

// Identity names a node: its role, the regions it serves and its id. It is written in the name of the node's
// user JWT as "stoa:<role>:<regions, comma-separated>:<id as base64url, or * for any>".
type Identity struct {
	Role Role
	// Regions are the regions the node may write to (its heartbeat, blocks, events); empty for the console.
	Regions []string
	// ID is the node's id (an edge's or dispatcher's); ignored with AnyID.
	ID string
	// AnyID lets the holder act as any node of its role in its regions, except the reserved ids it was issued
	// with: for shared credentials such as the edge.creds of `stoa dev`.
	AnyID bool
}

const namePrefix = "stoa:"

// Validate reports what is wrong with id.
func (id Identity) Validate() error {
	switch id.Role {
	case RoleConsole:
		if len(id.Regions) > 0 || id.ID != "" || id.AnyID {
			return errors.New("busauth: a console identity has no regions and no id")
		}
		return nil
	case RoleEdge, RoleDispatch:
	default:
		return fmt.Errorf("busauth: unknown role %q", id.Role)
	}
	if len(id.Regions) == 0 {
		return fmt.Errorf("busauth: %s identity without a region", id.Role)
	}
	for _, r := range id.Regions {
		if !validName(r, 32) {
			return fmt.Errorf("busauth: region %q: want 1-32 characters of [A-Za-z0-9_-]", r)
		}
	}
	if !id.AnyID && (id.ID == "" || len(id.ID) > 256) {
		return errors.New("busauth: id must have 1-256 bytes")
	}
	return nil
}

// String is the identity as written in a JWT name.
func (id Identity) String() string {
	t := ""
	switch {
	case id.AnyID:
		t = "*"
	case id.ID != "":
		t = token(id.ID)
	}
	return namePrefix + string(id.Role) + ":" + strings.Join(id.Regions, ",") + ":" + t
}

// ParseIdentity reads an identity written by String.
func ParseIdentity(s string) (Identity, error) {
	rest, ok := strings.CutPrefix(s, namePrefix)
	parts := strings.Split(rest, ":")
	if !ok || len(parts) != 3 {
		return Identity{}, errors.New("busauth: not a Stoa identity")
	}
	id := Identity{Role: Role(parts[0])}
	if parts[1] != "" {
		id.Regions = strings.Split(parts[1], ",")
	}
	switch t := parts[2]; t {
	case "*":
		id.AnyID = true
	case "":
	default:
		b, err := base64.RawURLEncoding.Strict().DecodeString(t)
		if err != nil {
			return Identity{}, errors.New("busauth: identity: bad id")
		}
		id.ID = string(b)
	}
	if err := id.Validate(); err != nil {
		return Identity{}, err
	}
	if id.String() != s {
		return Identity{}, errors.New("busauth: identity not in canonical form")
	}
	return id, nil
}

// Allows reports whether the identity may write the records of node id with role in region.
func (id Identity) Allows(role Role, region, nodeID string) bool {
	return id.Role == role && slices.Contains(id.Regions, region) && (id.AnyID || id.ID == nodeID)
}

// token is a name as one NATS subject token, as the cluster package writes it in keys: base64url without padding,
// "=" for the empty string.
func token(s string) string {
	if s == "" {
		return "="
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// validName reports whether s is 1-max characters of [A-Za-z0-9_-], as region names and the prefix are.
func validName(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// Credentials are a node's NATS credentials: its user JWT and NKey, and the identity the JWT names.
type Credentials struct {
	jwt      string
	key      nkeys.KeyPair
	pub      string
	account  string
	identity Identity
	stoa     bool // the JWT names a Stoa identity
}

// ParseCredentials reads a .creds file's content.
func ParseCredentials(b []byte) (*Credentials, error) {
	tok, err := jwt.ParseDecoratedJWT(b)
	if err != nil {
		return nil, fmt.Errorf("busauth: credentials: %w", err)
	}
	kp, err := jwt.ParseDecoratedUserNKey(b)
	if err != nil {
		return nil, fmt.Errorf("busauth: credentials: %w", err)
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return nil, fmt.Errorf("busauth: credentials: %w", err)
	}
	pub, _ := kp.PublicKey()
	if pub != uc.Subject {
		return nil, errors.New("busauth: credentials: the key is not the JWT's")
	}
	c := &Credentials{jwt: tok, key: kp, pub: pub, account: uc.Issuer}
	if uc.IssuerAccount != "" {
		c.account = uc.IssuerAccount
	}
	if id, err := ParseIdentity(uc.Name); err == nil {
		c.identity, c.stoa = id, true
	}
	return c, nil
}

// JWT returns the user JWT (public).
func (c *Credentials) JWT() string { return c.jwt }

// SignNonce signs the server's nonce at connection (the NATS user challenge).
func (c *Credentials) SignNonce(nonce []byte) ([]byte, error) { return c.key.Sign(nonce) }

// Identity returns the Stoa identity the credentials name, if they name one.
func (c *Credentials) Identity() (Identity, bool) { return c.identity, c.stoa }

// Account is the public key of the account that issued the credentials.
func (c *Credentials) Account() string { return c.account }

// InboxPrefix is the prefix of the node's reply subjects, which only it may subscribe to (see Permissions).
func (c *Credentials) InboxPrefix() string { return InboxPrefix(c.pub) }

// InboxPrefix is the reply subject prefix of the user with public key pub.
func InboxPrefix(pub string) string { return "_INBOX_" + pub }

// Sign signs a record: domain separates the kinds of record, and msg is the exact bytes stored.
func (c *Credentials) Sign(domain string, msg []byte) []byte {
	sig, _ := c.key.Sign(signedMessage(domain, msg)) // a user key from a seed always signs
	return sig
}

// LogValue keeps the key out of logs.
func (c *Credentials) LogValue() slog.Value { return slog.StringValue(c.identity.String()) }

func signedMessage(domain string, msg []byte) []byte {
	b := make([]byte, 0, len("stoa bus record v1\x00")+len(domain)+1+len(msg))
	b = append(b, "stoa bus record v1\x00"...)
	b = append(b, domain...)
	b = append(b, 0)
	return append(b, msg...)
}

// Verifier checks signed records: that the signer's JWT was issued by a trusted account and the signature is the
// signer's. It remembers the JWTs it has checked (a node signs every heartbeat with the same one). Safe for
// concurrent use.
type Verifier struct {
	accounts []string

	mu    sync.Mutex
	known map[string]signer // JWT → its checked claims
}

type signer struct {
	id  Identity
	key nkeys.KeyPair // public only
	exp int64
}

// maxKnown bounds the Verifier's memory of checked JWTs; it starts over when full.
const maxKnown = 4096

// NewVerifier trusts the JWTs issued by the given accounts ("A..." public keys).
func NewVerifier(accounts ...string) *Verifier {
	return &Verifier{accounts: accounts, known: map[string]signer{}}
}

// ErrUntrusted is wrapped by every Verify failure.
var ErrUntrusted = errors.New("busauth: untrusted record")

// Verify checks that sig is the signature of (domain, msg) by the holder of the user JWT tok, issued by a trusted
// account and unexpired, and returns the identity it names.
func (v *Verifier) Verify(tok, domain string, msg, sig []byte, now int64) (Identity, error) {
	s, err := v.signer(tok, now)
	if err != nil {
		return Identity{}, err
	}
	if err := s.key.Verify(signedMessage(domain, msg), sig); err != nil {
		return Identity{}, fmt.Errorf("%w: bad signature", ErrUntrusted)
	}
	return s.id, nil
}

func (v *Verifier) signer(tok string, now int64) (signer, error) {
	v.mu.Lock()
	s, ok := v.known[tok]
	v.mu.Unlock()
	if ok {
		if s.exp != 0 && now >= s.exp {
			return signer{}, fmt.Errorf("%w: expired credentials", ErrUntrusted)
		}
		return s, nil
	}
	uc, err := jwt.DecodeUserClaims(tok) // checks the JWT's signature by its issuer
	if err != nil {
		return signer{}, fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	if uc.IssuerAccount != "" || !slices.Contains(v.accounts, uc.Issuer) {
		return signer{}, fmt.Errorf("%w: credentials not issued by the Stoa account", ErrUntrusted)
	}
	if uc.Expires != 0 && now >= uc.Expires {
		return signer{}, fmt.Errorf("%w: expired credentials", ErrUntrusted)
	}
	id, err := ParseIdentity(uc.Name)
	if err != nil {
		return signer{}, fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	key, err := nkeys.FromPublicKey(uc.Subject)
	if err != nil {
		return signer{}, fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	s = signer{id: id, key: key, exp: uc.Expires}
	v.mu.Lock()
	if len(v.known) >= maxKnown {
		clear(v.known)
	}
	v.known[tok] = s
	v.mu.Unlock()
	return s, nil
}
