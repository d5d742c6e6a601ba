// Package busauth authenticates Stoa's nodes on the NATS cluster bus and gives each its identity.
//
// It uses NATS decentralized JWT authentication ("operator mode"): an operator key signs two accounts, the system
// account and the Stoa account (JetStream enabled), and the Stoa account key signs one user per node, whose JWT
// lists the exact subjects the node may publish (its own heartbeat key, its placements, its region's blocks and
// events, the JetStream API calls it needs; see Permissions) and names the node (role, regions and id; see
// Identity). A node's credentials are a standard NATS .creds file: the user JWT and the user's NKey seed, usable by
// nats.UserCredentials and the nats CLI. The NATS servers trust only the operator key (ServerOptions for an
// embedded server, ServerConfig for nats-server), so a connection without credentials signed that way is refused.
//
// The same NKey is the node's signing key: a node signs its heartbeats, dispatcher keys and blocks with it and
// attaches its user JWT (Credentials.Sign), and every reader checks that the JWT was issued by the Stoa account, that it
// names the role, region and id the record claims, and that the signature verifies (Verifier). A process that can
// write to the bus therefore cannot add an edge, mint tickets or block an address unless it holds the credentials
// of a node that may.
package busauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// Authority holds the operator, system account and Stoa account keys: what issues every node's credentials and
// what the NATS servers are configured to trust. Its seeds are secrets: keep the file Save writes offline in
// production (only ServerConfig's output and the issued .creds files need to leave it).
type Authority struct {
	operator, system, account nkeys.KeyPair
}

// seeds is the on-disk form of an Authority.
type seeds struct {
	Operator string `json:"operator"`
	System   string `json:"system"`
	Account  string `json:"account"`
}

// New generates a fresh Authority from crypto/rand.
func New() (*Authority, error) {
	var a Authority
	var err error
	if a.operator, err = nkeys.CreateOperator(); err != nil {
		return nil, fmt.Errorf("busauth: %w", err)
	}
	if a.system, err = nkeys.CreateAccount(); err != nil {
		return nil, fmt.Errorf("busauth: %w", err)
	}
	if a.account, err = nkeys.CreateAccount(); err != nil {
		return nil, fmt.Errorf("busauth: %w", err)
	}
	return &a, nil
}

// Load reads an Authority saved by Save.
func Load(path string) (*Authority, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("busauth: %w", err)
	}
	var s seeds
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("busauth: %s: %w", path, err)
	}
	var a Authority
	for _, k := range []struct {
		seed   string
		prefix nkeys.PrefixByte
		dst    *nkeys.KeyPair
	}{{s.Operator, nkeys.PrefixByteOperator, &a.operator}, {s.System, nkeys.PrefixByteAccount, &a.system},
		{s.Account, nkeys.PrefixByteAccount, &a.account}} {
		kp, err := nkeys.FromSeed([]byte(k.seed))
		if err != nil {
			return nil, fmt.Errorf("busauth: %s: bad seed: %w", path, err)
		}
		if p, _ := kp.PublicKey(); !nkeys.IsValidPublicKey(p) || nkeys.Prefix(p) != k.prefix {
			return nil, fmt.Errorf("busauth: %s: seed of the wrong kind", path)
		}
		*k.dst = kp
	}
	return &a, nil
}

// LoadOrCreate loads the Authority at path, or creates one there (mode 0600) if there is none.
func LoadOrCreate(path string) (*Authority, error) {
	a, err := Load(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return a, err
	}
	if a, err = New(); err != nil {
		return nil, err
	}
	return a, a.Save(path)
}

// Save writes the Authority's seeds to path, readable by the owner only. It refuses to replace an existing file.
func (a *Authority) Save(path string) error {
	var s seeds
	for _, k := range []struct {
		kp  nkeys.KeyPair
		dst *string
	}{{a.operator, &s.Operator}, {a.system, &s.System}, {a.account, &s.Account}} {
		seed, err := k.kp.Seed()
		if err != nil {
			return fmt.Errorf("busauth: %w", err)
		}
		*k.dst = string(seed)
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("busauth: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("busauth: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Account returns the Stoa account's public key ("A..."): the issuer of every node's credentials, which readers
// of signed records trust.
func (a *Authority) Account() string { p, _ := a.account.PublicKey(); return p }

// jwts returns the operator's JWT and the system and Stoa accounts' JWTs, signed by the operator.
func (a *Authority) jwts() (op, sys, acc string, err error) {
	opPub, _ := a.operator.PublicKey()
	sysPub, _ := a.system.PublicKey()
	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "stoa"
	oc.SystemAccount = sysPub
	if op, err = oc.Encode(a.operator); err != nil {
		return "", "", "", fmt.Errorf("busauth: operator: %w", err)
	}
	sc := jwt.NewAccountClaims(sysPub)
	sc.Name = "SYS"
	if sys, err = sc.Encode(a.operator); err != nil {
		return "", "", "", fmt.Errorf("busauth: system account: %w", err)
	}
	ac := jwt.NewAccountClaims(a.Account())
	ac.Name = "STOA"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit,
		Streams: jwt.NoLimit, Consumer: jwt.NoLimit}
	if acc, err = ac.Encode(a.operator); err != nil {
		return "", "", "", fmt.Errorf("busauth: account: %w", err)
	}
	return op, sys, acc, nil
}

// ServerOptions configures an embedded NATS server to trust only this Authority: operator mode with the system
// and Stoa accounts in a memory resolver.
func (a *Authority) ServerOptions(o *server.Options) error {
	op, sys, acc, err := a.jwts()
	if err != nil {
		return err
	}
	oc, err := jwt.DecodeOperatorClaims(op)
	if err != nil {
		return fmt.Errorf("busauth: %w", err)
	}
	r := &server.MemAccResolver{}
	sysPub, _ := a.system.PublicKey()
	if err := r.Store(sysPub, sys); err != nil {
		return fmt.Errorf("busauth: %w", err)
	}
	if err := r.Store(a.Account(), acc); err != nil {
		return fmt.Errorf("busauth: %w", err)
	}
	o.TrustedOperators = []*jwt.OperatorClaims{oc}
	o.AccountResolver = r
	o.SystemAccount = sysPub
	return nil
}

// ServerConfig returns the nats-server configuration that makes a server trust only this Authority, to include
// in every server's configuration (docs/deploy.md). It holds no secret.
func (a *Authority) ServerConfig() (string, error) {
	op, sys, acc, err := a.jwts()
	if err != nil {
		return "", err
	}
	sysPub, _ := a.system.PublicKey()
	var b strings.Builder
	b.WriteString("# Stoa bus authentication (stoa bus init): trust only the Stoa operator.\n")
	fmt.Fprintf(&b, "operator: %q\n", op)
	fmt.Fprintf(&b, "system_account: %s\n", sysPub)
	b.WriteString("resolver: MEMORY\n")
	b.WriteString("resolver_preload: {\n")
	fmt.Fprintf(&b, "  %s: %q\n", sysPub, sys)
	fmt.Fprintf(&b, "  %s: %q\n", a.Account(), acc)
	b.WriteString("}\n")
	return b.String(), nil
}

// Issue returns the credentials (.creds file content) of a node with identity id, which may publish what
// Permissions(id, prefix, reserved) allows.
func (a *Authority) Issue(id Identity, prefix string, reserved ...string) ([]byte, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	if !validName(prefix, 32) {
		return nil, fmt.Errorf("busauth: prefix %q: want 1-32 characters of [A-Za-z0-9_-]", prefix)
	}
	user, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("busauth: %w", err)
	}
	pub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.Name = id.String()
	uc.Permissions = Permissions(id, prefix, pub, reserved...)
	tok, err := uc.Encode(a.account)
	if err != nil {
		return nil, fmt.Errorf("busauth: %w", err)
	}
	seed, _ := user.Seed()
	creds, err := jwt.FormatUserConfig(tok, seed)
	if err != nil {
		return nil, fmt.Errorf("busauth: %w", err)
	}
	return creds, nil
}
