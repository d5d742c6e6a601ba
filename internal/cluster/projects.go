package cluster

import (
	"cmp"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/stoa-rtc/stoa/token"
)

// Project is what edges and dispatchers need to know of a project to verify its tokens: written by the console,
// read from the local copy everywhere else.
//
// Records of one App ID are ordered by Version: a node keeps the highest version it has seen and refuses a record
// with a lower one, or with the same one and other content, so that a writer on the bus cannot bring back an older
// record (a disabled project enabled again, a retired certificate, a deleted project). Deletion writes a signed
// tombstone (Deleted, a higher version) rather than removing the key; with Config.ProjectKeys, a key removed from
// the bucket by other means is ignored and the node keeps its copy. See docs/deploy.md for what this does not
// cover (a node that starts after a writer replaced the newest record with an older one).
type Project struct {
	// AppID identifies the project in tokens.
	AppID string `json:"app_id"`
	// Version orders the records of one App ID; every new record must have a higher one. Zero in PutProject
	// and DeleteProject means one more than the highest this node knows.
	Version uint64 `json:"version"`
	// Deleted marks a tombstone: the project was deleted, and no record with a lower version is taken again.
	Deleted bool `json:"deleted,omitempty"`
	// Certificates are the App Certificates that sign the project's tokens, primary first; one or two (two while
	// a certificate is being rotated). On the bus they are in Sealed instead when the writer has a
	// Config.ProjectSealKey; a node without the matching Config.ProjectOpenKey then holds none.
	Certificates []string `json:"certificates,omitempty"`
	// Sealed holds the certificates sealed to the nodes' key (see seal.go); never set by callers.
	Sealed []byte `json:"sealed_certificates,omitempty"`
	// Enabled false refuses every token of the project.
	Enabled bool `json:"enabled"`
	// Accept006 admits the project's legacy "006" tokens, which are weaker than AccessToken2 (docs/tokens.md).
	Accept006 bool `json:"accept_006,omitempty"`
	// Updated is when the console last changed the project.
	Updated time.Time `json:"updated"`
	// Signature is the writer's Ed25519 signature of the fields above (see signedBytes), when it has a
	// Config.ProjectSigner; nodes with Config.ProjectKeys accept only projects signed by one of those keys.
	Signature []byte `json:"signature,omitempty"`
}

// signedBytes is the message a project's signature covers: a domain tag, then each field length-prefixed, so that
// no two projects share one. A sealed record is signed over its sealed certificates, which bind the App ID and the
// version themselves.
func (p Project) signedBytes() []byte {
	b := []byte("stoa project v2")
	field := func(s []byte) { b = append(binary.AppendUvarint(b, uint64(len(s))), s...) }
	flag := func(v bool) {
		if v {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	field([]byte(p.AppID))
	b = binary.AppendUvarint(b, p.Version)
	flag(p.Deleted)
	if len(p.Sealed) > 0 {
		b = append(b, 's')
		field(p.Sealed)
	} else {
		b = append(b, 'c')
		b = binary.AppendUvarint(b, uint64(len(p.Certificates)))
		for _, c := range p.Certificates {
			field([]byte(c))
		}
	}
	flag(p.Enabled)
	flag(p.Accept006)
	return binary.AppendVarint(b, p.Updated.UnixNano())
}

// signedBy reports whether p carries a valid signature by one of keys.
func (p Project) signedBy(keys []ed25519.PublicKey) bool {
	if len(p.Signature) != ed25519.SignatureSize {
		return false
	}
	msg := p.signedBytes()
	for _, k := range keys {
		if ed25519.Verify(k, msg, p.Signature) {
			return true
		}
	}
	return false
}

// LogValue keeps the certificates out of logs.
func (p Project) LogValue() slog.Value {
	return slog.GroupValue(slog.String("app_id", p.AppID), slog.Uint64("version", p.Version),
		slog.Bool("deleted", p.Deleted), slog.Int("certificates", len(p.Certificates)),
		slog.Bool("enabled", p.Enabled), slog.Bool("accept_006", p.Accept006))
}

func (p Project) validate() error {
	var errs []error
	// JSON carries only valid UTF-8: another App ID would be stored under the wrong key, and the signature broken.
	if p.AppID == "" || len(p.AppID) > 256 || !utf8.ValidString(p.AppID) {
		errs = append(errs, errors.New("cluster: project: app_id must have 1-256 bytes of UTF-8"))
	}
	if n := len(p.Certificates); p.Deleted && n != 0 {
		errs = append(errs, fmt.Errorf("cluster: project %q: a deleted project has no certificates", p.AppID))
	} else if !p.Deleted && (n < 1 || n > 2) {
		errs = append(errs, fmt.Errorf("cluster: project %q: %d certificates, want 1 or 2", p.AppID, n))
	}
	for i, c := range p.Certificates {
		if c == "" || len(c) > 256 || !utf8.ValidString(c) {
			errs = append(errs, fmt.Errorf("cluster: project %q: certificate %d must have 1-256 bytes of UTF-8", p.AppID, i))
		}
	}
	return errors.Join(errs...)
}

// decodeProject reads the project stored under appID, refusing it unless it is signed by one of keys (when any),
// and opens its sealed certificates with open (when it has them). A node without open keeps a sealed project
// with no certificates: it knows the version, and verifies none of its tokens.
func decodeProject(keys []ed25519.PublicKey, open *ecdh.PrivateKey) func(appID string, data []byte) (Project, error) {
	return func(appID string, data []byte) (Project, error) {
		var p Project
		if err := json.Unmarshal(data, &p); err != nil {
			return p, err
		}
		if p.AppID != appID {
			return p, fmt.Errorf("app_id %q stored under %q", p.AppID, appID)
		}
		if p.Version == 0 {
			return p, fmt.Errorf("project %q has no version", appID)
		}
		if len(keys) > 0 && !p.signedBy(keys) {
			return p, fmt.Errorf("project %q is not signed by a trusted console key", appID)
		}
		if len(p.Sealed) > 0 {
			if len(p.Certificates) > 0 {
				return p, fmt.Errorf("project %q has certificates both sealed and in clear", appID)
			}
			certs, err := openCertificates(open, appID, p.Version, p.Sealed)
			if errors.Is(err, errNoOpenKey) {
				return p, nil
			}
			if err != nil {
				return p, err
			}
			p.Certificates = certs
		} else if open != nil && !p.Deleted {
			// A node that can open sealed certificates takes no clear ones: they were on the bus for all to read.
			return p, fmt.Errorf("project %q has its certificates in clear", appID)
		}
		if err := p.validate(); err != nil {
			return p, err
		}
		return p, nil
	}
}

// newerProject reports whether record b may replace a, which the node holds: its version is higher.
func newerProject(a, b Project) bool { return b.Version > a.Version }

// ErrStaleVersion: PutProject or DeleteProject was given a version that is not above the highest the node knows.
var ErrStaleVersion = errors.New("cluster: project version not above the current one")

// ProjectVersion returns the highest version of appID that this node has seen or written, tombstones included;
// 0 if none. A writer's next record must have a higher one.
func (c *Cluster) ProjectVersion(appID string) uint64 {
	c.vmu.Lock()
	defer c.vmu.Unlock()
	return c.heldVersion(appID)
}

// heldVersion is ProjectVersion with c.vmu held.
func (c *Cluster) heldVersion(appID string) uint64 {
	p, _ := c.projects.get(appID)
	return max(c.written[appID], p.Version)
}

// writeProject signs, seals and writes p under the next version: p.Version if given (which must be above
// ProjectVersion), else one more than ProjectVersion.
func (c *Cluster) writeProject(ctx context.Context, p Project) error {
	c.vmu.Lock()
	defer c.vmu.Unlock() // serialises the writes of this node, so that two never take the same version
	held := c.heldVersion(p.AppID)
	switch {
	case p.Version == 0:
		p.Version = held + 1
	case p.Version <= held:
		return fmt.Errorf("%w: %d, the node knows %d", ErrStaleVersion, p.Version, held)
	}
	if p.Updated.IsZero() {
		p.Updated = time.Now().UTC()
	}
	p.Sealed = nil
	if c.cfg.ProjectSealKey != nil && len(p.Certificates) > 0 {
		sealed, err := sealCertificates(c.cfg.ProjectSealKey, p.AppID, p.Version, p.Certificates)
		if err != nil {
			return err
		}
		p.Sealed, p.Certificates = sealed, nil
	}
	p.Signature = nil
	if c.cfg.ProjectSigner != nil {
		p.Signature = ed25519.Sign(c.cfg.ProjectSigner, p.signedBytes())
	}
	if err := c.put(ctx, c.projectsBucket, encodeToken(p.AppID), p, 0); err != nil {
		return err
	}
	c.written[p.AppID] = p.Version
	return nil
}

// PutProject creates or replaces a project (see Project.Version for the version it takes). Updated is set to now
// when zero. The certificates are sealed when the node has a Config.ProjectSealKey.
func (c *Cluster) PutProject(ctx context.Context, p Project) error {
	p.Deleted = false
	if err := p.validate(); err != nil {
		return err
	}
	return c.writeProject(ctx, p)
}

// DeleteProject writes a tombstone for appID under version (0: the next one): its tokens stop verifying
// everywhere, and no older record of it is taken again.
func (c *Cluster) DeleteProject(ctx context.Context, appID string, version uint64) error {
	p := Project{AppID: appID, Version: version, Deleted: true}
	if err := p.validate(); err != nil {
		return err
	}
	return c.writeProject(ctx, p)
}

// Project returns the local copy of a project; a deleted one is not found.
func (c *Cluster) Project(appID string) (Project, bool) {
	p, ok := c.projects.get(appID)
	return p, ok && !p.Deleted
}

// Projects returns the local copies of all projects, ordered by App ID.
func (c *Cluster) Projects() []Project {
	var out []Project
	c.projects.each(func(_ string, p Project) bool {
		if !p.Deleted {
			out = append(out, p)
		}
		return true
	})
	slices.SortFunc(out, func(a, b Project) int { return cmp.Compare(a.AppID, b.AppID) })
	return out
}

// OnProject calls fn with every project the node holds, then whenever a project is put (removed false) or
// deleted (removed true, p its tombstone or last value), until stop is called. Calls are serial, from one
// goroutine at a time; fn must not block for long nor call OnProject, and may call stop. The local copy outlives
// the bus: while the bus is down, fn is simply not called.
func (c *Cluster) OnProject(fn func(p Project, removed bool)) (stop func()) {
	return c.projects.listen(func(_ string, p Project, ok bool) { fn(p, !ok || p.Deleted) })
}

// SyncVerifier keeps v's apps equal to the projects bucket: every enabled project's certificates, primary first,
// and whether it accepts 006 tokens; a disabled or deleted project, or one whose certificates this node cannot
// open, is removed. It returns once v holds the current projects.
func (c *Cluster) SyncVerifier(v *token.Verifier) (stop func()) {
	return c.OnProject(func(p Project, removed bool) {
		if removed || !p.Enabled {
			v.SetApp(p.AppID, token.App{})
			return
		}
		v.SetApp(p.AppID, token.App{Certificates: p.Certificates, Accept006: p.Accept006})
	})
}
