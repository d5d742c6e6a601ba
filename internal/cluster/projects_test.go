package cluster

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stoa-rtc/stoa/internal/clustertest"
	"github.com/stoa-rtc/stoa/token"
)

// projectKeys are a console's signing key and the nodes' sealing key pair.
type projectKeys struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
	open *ecdh.PrivateKey
}

func newProjectKeys(t *testing.T) projectKeys {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	open, err := ecdh.X25519().GenerateKey(rand.Reader)
	must(t, err)
	return projectKeys{pub, priv, open}
}

func (k projectKeys) console(c *Config) {
	c.ProjectSigner, c.ProjectSealKey = k.priv, k.open.PublicKey()
}
func (k projectKeys) node(c *Config) {
	c.ProjectKeys, c.ProjectOpenKey = []ed25519.PublicKey{k.pub}, k.open
}

// rawBucket is what any process on the bus can do to the projects bucket.
func rawBucket(t *testing.T, b bus) jetstream.KeyValue {
	nc, err := nats.Connect(b.url)
	must(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	must(t, err)
	kv, err := js.KeyValue(ctxT(t), b.prefix+"_projects")
	must(t, err)
	return kv
}

// marker writes a fresh project through console and waits until node holds it: node has then read every change
// written before.
func marker(t *testing.T, console, node *Cluster, name string) {
	t.Helper()
	must(t, console.PutProject(ctxT(t), Project{AppID: name, Certificates: []string{"m"}, Enabled: true}))
	clustertest.Eventually(t, 3*time.Second, func() error {
		_, ok := node.Project(name)
		return errorf(ok, "no marker %s", name)
	})
}

// TestProjectReplay covers finding 9: a process on the bus replayed a deleted project's signed record so that its
// tokens worked again. Deletion now writes a signed tombstone with a higher version, and nodes refuse any record
// whose version is not above the one they hold, a raw delete of the tombstone included.
func TestProjectReplay(t *testing.T) {
	buses(t, func(t *testing.T, b bus) {
		ctx := ctxT(t)
		k := newProjectKeys(t)
		console := b.node(t, "eu", "console", k.console)
		edge := b.node(t, "eu", "edge", k.node)
		kv := rawBucket(t, b)
		v := token.NewVerifier()
		defer edge.SyncVerifier(v)()
		tok := rtcToken(t, certA, appA, "c")

		must(t, console.PutProject(ctx, Project{AppID: appA, Certificates: []string{certA}, Enabled: true}))
		clustertest.Eventually(t, 3*time.Second, func() error { return errorf(verifies(v, tok, appA), "not synced") })
		live, err := kv.Get(ctx, encodeToken(appA))
		must(t, err)
		old := live.Value() // a genuine signed record, version 1

		// A lower version while the project lives: disabled at version 2, version 1 replayed.
		must(t, console.PutProject(ctx, Project{AppID: appA, Certificates: []string{certA}, Enabled: false}))
		clustertest.Eventually(t, 3*time.Second, func() error { return errorf(!verifies(v, tok, appA), "still enabled") })
		_, err = kv.Put(ctx, encodeToken(appA), old)
		must(t, err)
		marker(t, console, edge, "m1")
		if p, _ := edge.Project(appA); p.Enabled || p.Version != 2 || verifies(v, tok, appA) {
			t.Fatalf("an older record replaced version 2: %+v", p)
		}

		// Deleted: a tombstone at version 3. Then the old record is replayed, raw and after a raw delete.
		must(t, console.DeleteProject(ctx, appA, 0))
		clustertest.Eventually(t, 3*time.Second, func() error {
			_, ok := edge.Project(appA)
			return errorf(!ok, "not deleted")
		})
		_, err = kv.Put(ctx, encodeToken(appA), old)
		must(t, err)
		marker(t, console, edge, "m2")
		must(t, kv.Delete(ctx, encodeToken(appA)))
		_, err = kv.Put(ctx, encodeToken(appA), old)
		must(t, err)
		marker(t, console, edge, "m3")
		if p, ok := edge.Project(appA); ok || verifies(v, tok, appA) {
			t.Fatalf("a replayed record revived the deleted project: %+v", p)
		}
		if p, _ := edge.projects.get(appA); !p.Deleted || p.Version != 3 {
			t.Errorf("edge holds %+v, want the tombstone", p)
		}

		// The writer refuses to go backwards itself.
		if err := console.PutProject(ctx, Project{AppID: appA, Version: 3, Certificates: []string{certA}, Enabled: true}); !errors.Is(err, ErrStaleVersion) {
			t.Errorf("PutProject at the tombstone's version: %v, want ErrStaleVersion", err)
		}
	})
}

// TestProjectSealed covers finding 9's second half: App Certificates are never in clear on the bus. The bucket
// holds only sealed certificates, which open on nodes with the key and nowhere else, and a sealed blob moved to
// another project or version does not open.
func TestProjectSealed(t *testing.T) {
	buses(t, func(t *testing.T, b bus) {
		ctx := ctxT(t)
		k := newProjectKeys(t)
		console := b.node(t, "eu", "console", k.console)
		edge := b.node(t, "eu", "edge", k.node)
		blind := b.node(t, "eu", "blind", func(c *Config) { c.ProjectKeys = []ed25519.PublicKey{k.pub} })
		kv := rawBucket(t, b)

		must(t, console.PutProject(ctx, Project{AppID: appA, Certificates: []string{certA, certB}, Enabled: true, Accept006: true}))
		clustertest.Eventually(t, 3*time.Second, func() error {
			p, ok := edge.Project(appA)
			return errorf(ok && len(p.Certificates) == 2 && p.Certificates[1] == certB && p.Accept006, "edge holds %+v", p)
		})
		raw, err := kv.Get(ctx, encodeToken(appA))
		must(t, err)
		for _, cert := range []string{certA, certB} {
			if bytes.Contains(raw.Value(), []byte(cert)) {
				t.Errorf("the bucket holds certificate %s in clear: %s", cert, raw.Value())
			}
		}
		clustertest.Eventually(t, 3*time.Second, func() error {
			p, ok := blind.Project(appA)
			return errorf(ok && len(p.Certificates) == 0, "a node without the open key holds %+v %v", p, ok)
		})
		v := token.NewVerifier()
		defer blind.SyncVerifier(v)()
		if v.Apps() != 0 {
			t.Error("a node that cannot open the certificates verifies the project's tokens")
		}

		// The sealed certificates are bound to their App ID and version.
		var p Project
		must(t, json.Unmarshal(raw.Value(), &p))
		if _, err := openCertificates(k.open, appA, p.Version, p.Sealed); err != nil {
			t.Fatalf("open: %v", err)
		}
		for _, tc := range []struct {
			app     string
			version uint64
		}{{appB, p.Version}, {appA, p.Version + 1}} {
			if _, err := openCertificates(k.open, tc.app, tc.version, p.Sealed); err == nil {
				t.Errorf("sealed certificates of %s v%d open as %s v%d", appA, p.Version, tc.app, tc.version)
			}
		}
		other, _ := ecdh.X25519().GenerateKey(rand.Reader)
		if _, err := openCertificates(other, appA, p.Version, p.Sealed); err == nil {
			t.Error("sealed certificates open with another key")
		}

		// A node with the open key takes no certificates in clear, even signed (a console without a seal key).
		clear := b.node(t, "eu", "clear", func(c *Config) { c.ProjectSigner = k.priv })
		must(t, clear.PutProject(ctx, Project{AppID: appB, Certificates: []string{certA}, Enabled: true}))
		marker(t, console, edge, "m1")
		if _, ok := edge.Project(appB); ok {
			t.Error("a node with the open key took certificates in clear")
		}
	})
}

// FuzzOpenCertificates: the opened plaintext is parsed; any bytes give certificates or an error, and what seals
// opens to the same certificates.
func FuzzOpenCertificates(f *testing.F) {
	key, _ := ecdh.X25519().GenerateKey(rand.Reader)
	f.Add("a", "b", []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, c1, c2 string, junk []byte) {
		sealed, err := sealCertificates(key.PublicKey(), "app", 7, []string{c1, c2})
		if err != nil {
			t.Fatal(err)
		}
		got, err := openCertificates(key, "app", 7, sealed)
		if err != nil || len(got) != 2 || got[0] != c1 || got[1] != c2 {
			t.Fatalf("round trip: %q %v", got, err)
		}
		if _, err := openCertificates(key, "app", 7, junk); err == nil {
			t.Fatal("junk opened")
		}
		if _, err := decodeProject(nil, key)("app", junk); err == nil && len(junk) > 0 && junk[0] != '{' {
			t.Fatal("non-JSON decoded")
		}
	})
}
