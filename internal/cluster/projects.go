package cluster

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/stoa-rtc/stoa/token"
)

// Project is what edges and dispatchers need to know of a project to verify its tokens: written by the console,
// read from the local copy everywhere else.
type Project struct {
	// AppID identifies the project in tokens.
	AppID string `json:"app_id"`
	// Certificates are the App Certificates that sign the project's tokens, primary first; one or two (two while
	// a certificate is being rotated).
	Certificates []string `json:"certificates"`
	// Enabled false refuses every token of the project.
	Enabled bool `json:"enabled"`
	// Updated is when the console last changed the project.
	Updated time.Time `json:"updated"`
	// Signature is the writer's Ed25519 signature of the fields above (see signedBytes), when it has a
	// Config.ProjectSigner; nodes with Config.ProjectKeys accept only projects signed by one of those keys.
	Signature []byte `json:"signature,omitempty"`
}

// signedBytes is the message a project's signature covers: a domain tag, then each field length-prefixed, so that
// no two projects share one.
func (p Project) signedBytes() []byte {
	b := []byte("stoa project v1")
	field := func(s string) { b = append(binary.AppendUvarint(b, uint64(len(s))), s...) }
	field(p.AppID)
	b = binary.AppendUvarint(b, uint64(len(p.Certificates)))
	for _, c := range p.Certificates {
		field(c)
	}
	enabled := "0"
	if p.Enabled {
		enabled = "1"
	}
	field(enabled)
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
	return slog.GroupValue(slog.String("app_id", p.AppID), slog.Int("certificates", len(p.Certificates)),
		slog.Bool("enabled", p.Enabled))
}

func (p Project) validate() error {
	var errs []error
	if p.AppID == "" || len(p.AppID) > 256 {
		errs = append(errs, errors.New("cluster: project: app_id must have 1-256 bytes"))
	}
	if n := len(p.Certificates); n < 1 || n > 2 {
		errs = append(errs, fmt.Errorf("cluster: project %q: %d certificates, want 1 or 2", p.AppID, n))
	}
	for i, c := range p.Certificates {
		if c == "" || len(c) > 256 {
			errs = append(errs, fmt.Errorf("cluster: project %q: certificate %d must have 1-256 bytes", p.AppID, i))
		}
	}
	return errors.Join(errs...)
}

// decodeProject reads the project stored under appID, refusing it unless it is signed by one of keys (when any).
func decodeProject(keys []ed25519.PublicKey) func(appID string, data []byte) (Project, error) {
	return func(appID string, data []byte) (Project, error) {
		var p Project
		if err := json.Unmarshal(data, &p); err != nil {
			return p, err
		}
		if p.AppID != appID {
			return p, fmt.Errorf("app_id %q stored under %q", p.AppID, appID)
		}
		if err := p.validate(); err != nil {
			return p, err
		}
		if len(keys) > 0 && !p.signedBy(keys) {
			return p, fmt.Errorf("project %q is not signed by a trusted console key", appID)
		}
		return p, nil
	}
}

// PutProject creates or replaces a project. Updated is set to now when zero.
func (c *Cluster) PutProject(ctx context.Context, p Project) error {
	if err := p.validate(); err != nil {
		return err
	}
	if p.Updated.IsZero() {
		p.Updated = time.Now().UTC()
	}
	p.Signature = nil
	if c.cfg.ProjectSigner != nil {
		p.Signature = ed25519.Sign(c.cfg.ProjectSigner, p.signedBytes())
	}
	return c.put(ctx, c.projectsBucket, encodeToken(p.AppID), p, 0)
}

// DeleteProject removes a project; its tokens stop verifying everywhere.
func (c *Cluster) DeleteProject(ctx context.Context, appID string) error {
	return c.remove(ctx, c.projectsBucket, encodeToken(appID), false)
}

// Project returns the local copy of a project.
func (c *Cluster) Project(appID string) (Project, bool) { return c.projects.get(appID) }

// Projects returns the local copies of all projects, ordered by App ID.
func (c *Cluster) Projects() []Project {
	var out []Project
	c.projects.each(func(_ string, p Project) bool { out = append(out, p); return true })
	slices.SortFunc(out, func(a, b Project) int { return cmp.Compare(a.AppID, b.AppID) })
	return out
}

// OnProject calls fn with every project the node holds, then whenever a project is put (removed false) or
// deleted (removed true, p its last value), until stop is called. Calls are serial, from one goroutine at a time;
// fn must not block for long nor call OnProject, and may call stop. The local copy outlives the bus: while the
// bus is down, fn is simply not called.
func (c *Cluster) OnProject(fn func(p Project, removed bool)) (stop func()) {
	return c.projects.listen(func(_ string, p Project, ok bool) { fn(p, !ok) })
}

// SyncVerifier keeps v's certificates equal to the projects bucket: every enabled project's certificates, primary
// first; a disabled or deleted project is removed. It returns once v holds the current projects.
func (c *Cluster) SyncVerifier(v *token.Verifier) (stop func()) {
	return c.OnProject(func(p Project, removed bool) {
		if removed || !p.Enabled {
			v.SetCertificates(p.AppID)
			return
		}
		v.SetCertificates(p.AppID, p.Certificates...)
	})
}
