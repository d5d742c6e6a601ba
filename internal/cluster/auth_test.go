package cluster

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/stoa-rtc/stoa/internal/busauth"
	"github.com/stoa-rtc/stoa/internal/clustertest"
)

// authBus is a NATS server that trusts only one busauth.Authority, as `stoa dev` and docs/deploy.md run it.
type authBus struct {
	auth   *busauth.Authority
	srv    *clustertest.Server
	prefix string
}

func newAuthBus(t *testing.T) authBus {
	t.Helper()
	auth, err := busauth.New()
	must(t, err)
	srv := clustertest.NewServer(t, func(o *server.Options) {
		if err := auth.ServerOptions(o); err != nil {
			t.Fatal(err)
		}
	})
	return authBus{auth: auth, srv: srv, prefix: clustertest.Prefix(t)}
}

func (b authBus) creds(t testing.TB, id busauth.Identity, reserved ...string) []byte {
	t.Helper()
	c, err := b.auth.Issue(id, b.prefix, reserved...)
	must(t, err)
	return c
}

// node starts a Cluster on the bus with the credentials of id.
func (b authBus) node(t testing.TB, region, name string, id busauth.Identity, reserved ...string) *Cluster {
	t.Helper()
	cfg := Default()
	cfg.URLs, cfg.Region, cfg.Node, cfg.Prefix = []string{b.srv.URL()}, region, name, b.prefix
	cfg.Credentials = b.creds(t, id, reserved...)
	cfg.EventMaxBytes = 8 << 20
	cfg.Logger = testLogger(t)
	return start(t, cfg)
}

// denials is a raw connection with some credentials.
type denials struct{ nc *nats.Conn }

func (b authBus) raw(t *testing.T, creds []byte) *denials {
	t.Helper()
	c, err := busauth.ParseCredentials(creds)
	must(t, err)
	nc, err := nats.Connect(b.srv.URL(), nats.UserJWT(func() (string, error) { return c.JWT(), nil }, c.SignNonce),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	must(t, err)
	t.Cleanup(nc.Close)
	return &denials{nc}
}

// refused publishes data to subj and reports whether the server refused it: the server reports a violation
// before it answers the flush's PING, and the client records it as its last error before the flush returns.
func (d *denials) refused(t *testing.T, subj string, data []byte) bool {
	t.Helper()
	must(t, d.nc.Publish(subj, data))
	must(t, d.nc.Flush())
	err := d.nc.LastError()
	return errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subj+`"`)
}

// TestBusRefusesUnauthenticated (finding 9): a process without credentials issued by the authority cannot connect,
// nor can one with credentials of another authority.
func TestBusRefusesUnauthenticated(t *testing.T) {
	b := newAuthBus(t)
	if nc, err := nats.Connect(b.srv.URL()); err == nil {
		nc.Close()
		t.Fatal("an unauthenticated connection was accepted")
	}
	other, err := busauth.New()
	must(t, err)
	creds, err := other.Issue(busauth.Identity{Role: busauth.RoleConsole}, b.prefix)
	must(t, err)
	c, _ := busauth.ParseCredentials(creds)
	if nc, err := nats.Connect(b.srv.URL(), nats.UserJWT(func() (string, error) { return c.JWT(), nil }, c.SignNonce)); err == nil {
		nc.Close()
		t.Fatal("credentials of another authority were accepted")
	}
}

// TestEdgeCredentialsWriteOnlyTheirOwn (finding 9): an edge's credentials, its own or the role-wide ones of
// `stoa dev` (any id but the reserved ones), cannot write a project, another edge's heartbeat, a dispatcher key,
// another region's events or change a bucket; they can write the edge's own heartbeat. Only an edge's own
// credentials may publish blocks.
func TestEdgeCredentialsWriteOnlyTheirOwn(t *testing.T) {
	b := newAuthBus(t)
	console := b.node(t, "eu", "console", busauth.Identity{Role: busauth.RoleConsole})
	must(t, console.PutProject(ctxT(t), Project{AppID: "app", Certificates: []string{"secret"}, Enabled: true}))
	p := b.prefix
	for name, id := range map[string]busauth.Identity{
		"own":       {Role: busauth.RoleEdge, Regions: []string{"eu"}, ID: "edge-a"},
		"role-wide": {Role: busauth.RoleEdge, Regions: []string{"eu"}, AnyID: true},
	} {
		t.Run(name, func(t *testing.T) {
			d := b.raw(t, b.creds(t, id, "edge-b"))
			for _, subj := range []string{
				"$KV." + p + "_projects." + encodeToken("app"),
				"$KV." + p + "_edges_eu." + encodeToken("edge-b"),
				"$KV." + p + "_channels_eu." + joinKey("app", "ch", "edge-b"),
				"$KV." + p + "_dispatchers." + encodeToken("d1"),
				"$KV." + p + "_edges_us." + encodeToken("edge-a"),
				"$KV." + p + "_control_eu.drain." + encodeToken("edge-a"),
				p + ".events.us.join",
				"$JS.API.STREAM.UPDATE.KV_" + p + "_projects",
				"$JS.API.STREAM.PURGE.KV_" + p + "_projects",
				"$JS.API.STREAM.DELETE.KV_" + p + "_edges_eu",
				"$JS.API.CONSUMER.CREATE." + p + "_events.x.>",
			} {
				if !d.refused(t, subj, []byte(`{}`)) {
					t.Errorf("publishing to %s was allowed", subj)
				}
			}
			if blocks := "$KV." + p + "_blocks_eu." + ipKey(netip.MustParseAddr("192.0.2.9")); d.refused(t, blocks, []byte(`{}`)) != id.AnyID {
				t.Errorf("publishing a block: refused %v, want %v", !id.AnyID, id.AnyID)
			}
			if d.refused(t, "$KV."+p+"_edges_eu."+encodeToken("edge-a"), []byte(`{}`)) {
				t.Error("the edge could not write its own heartbeat")
			}
		})
	}
	if pr, ok := console.Project("app"); !ok || pr.Certificates[0] != "secret" {
		t.Errorf("the project changed: %+v", pr)
	}
}

// TestForgedRecordsIgnored (finding 9): heartbeats, dispatcher keys and blocks written by a bus client that may
// write there but is not the node the record names — the console, an edge of another region, a copied JWT with
// the wrong key, or no signature at all — are ignored: the dispatcher does not list the edge, edges do not take the
// key for tickets, the guard does not block the address. The genuine records, written after them, are accepted.
func TestForgedRecordsIgnored(t *testing.T) {
	b := newAuthBus(t)
	console := b.node(t, "eu", "console", busauth.Identity{Role: busauth.RoleConsole})
	reader := b.node(t, "eu", "d1", busauth.Identity{Role: busauth.RoleDispatch, Regions: []string{"eu"}, ID: "d1"})
	edge := b.node(t, "eu", "edge-a", busauth.Identity{Role: busauth.RoleEdge, Regions: []string{"eu"}, ID: "edge-a"})
	usEdge := busauth.Identity{Role: busauth.RoleEdge, Regions: []string{"us"}, ID: "evil"}
	ctx := ctxT(t)
	p := b.prefix
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	ip := netip.MustParseAddr("192.0.2.7")

	// A genuine heartbeat, to copy its JWT from.
	must(t, edge.Heartbeat(ctx, EdgeInfo{ID: "edge-a", URL: "wss://a"}))
	clustertest.Eventually(t, 5*time.Second, func() error { return errorf(len(reader.Edges("eu")) == 1, "edge-a not listed") })
	raw, err := edge.js.KeyValue(ctx, p+"_edges_eu")
	must(t, err)
	ent, err := raw.Get(ctx, encodeToken("edge-a"))
	must(t, err)
	var genuine envelope
	must(t, json.Unmarshal(ent.Value(), &genuine))

	envelopeOf := func(v any, identity string, sig []byte) []byte {
		body, _ := json.Marshal(v)
		b, _ := json.Marshal(envelope{Record: body, Identity: identity, Sig: sig})
		return b
	}
	signedBy := func(id busauth.Identity, kind string, v any) []byte {
		c, err := busauth.ParseCredentials(b.creds(t, id))
		must(t, err)
		body, _ := json.Marshal(v)
		out, _ := json.Marshal(envelope{Record: body, Identity: c.JWT(), Sig: c.Sign(kind, body)})
		return out
	}
	now := time.Now().UTC()
	evil := EdgeInfo{ID: "evil", Region: "eu", URL: "wss://evil", Updated: now}
	dkey := DispatcherKey{ID: "mint", Region: "eu", PublicKey: pub, Updated: now}
	block := Block{IP: ip, Region: "eu", Until: now.Add(time.Hour), Reason: "forged", By: "edge-a"}
	consoleID := busauth.Identity{Role: busauth.RoleConsole}
	forgeries := []struct {
		name, bucket, key string
		data              []byte
	}{
		{"plain heartbeat", "_edges_eu", encodeToken("evil"), mustJSON(evil)},
		{"unsigned heartbeat", "_edges_eu", encodeToken("evil"), envelopeOf(evil, "", nil)},
		{"heartbeat by the console", "_edges_eu", encodeToken("evil"), signedBy(consoleID, kindEdge, evil)},
		{"heartbeat by an edge of another region", "_edges_eu", encodeToken("evil"), signedBy(usEdge, kindEdge, evil)},
		{"heartbeat with a copied JWT", "_edges_eu", encodeToken("evil"), envelopeOf(evil, genuine.Identity, genuine.Sig)},
		{"dispatcher key unsigned", "_dispatchers", encodeToken("mint"), envelopeOf(dkey, "", nil)},
		{"dispatcher key by the console", "_dispatchers", encodeToken("mint"), signedBy(consoleID, kindDispatcherKey, dkey)},
		{"dispatcher key by an edge", "_dispatchers", encodeToken("mint"),
			signedBy(busauth.Identity{Role: busauth.RoleEdge, Regions: []string{"eu"}, ID: "mint"}, kindDispatcherKey, dkey)},
		{"block unsigned", "_blocks_eu", ipKey(ip), envelopeOf(block, "", nil)},
		{"block by the console", "_blocks_eu", ipKey(ip), signedBy(consoleID, kindBlock, block)},
		{"block by shared credentials", "_blocks_eu", ipKey(ip),
			signedBy(busauth.Identity{Role: busauth.RoleEdge, Regions: []string{"eu"}, AnyID: true}, kindBlock, block)},
		{"block in another edge's name", "_blocks_eu", ipKey(ip),
			signedBy(busauth.Identity{Role: busauth.RoleEdge, Regions: []string{"eu"}, ID: "edge-z"}, kindBlock, block)},
	}
	for _, f := range forgeries {
		before := reader.RefusedRecords()
		_, err := console.js.Publish(ctx, "$KV."+p+f.bucket+"."+f.key, f.data)
		must(t, err)
		clustertest.Eventually(t, 5*time.Second, func() error {
			return errorf(reader.RefusedRecords() > before, "%s: not refused", f.name)
		})
	}
	// Genuine records after the forgeries: once they are seen, the forgeries have been read (same streams).
	must(t, edge.Heartbeat(ctx, EdgeInfo{ID: "edge-a", URL: "wss://a"}))
	must(t, reader.PutDispatcherKey(ctx, DispatcherKey{ID: "d1", PublicKey: pub}))
	must(t, edge.PutBlock(ctx, Block{IP: netip.MustParseAddr("192.0.2.8"), Until: time.Now().Add(time.Hour), Reason: "real"}))
	clustertest.Eventually(t, 5*time.Second, func() error {
		_, k := reader.DispatcherKey("d1")
		_, bl := reader.Blocked(netip.MustParseAddr("192.0.2.8"))
		return errorf(k && bl, "genuine records not seen")
	})
	if es := reader.Edges("eu"); len(es) != 1 || es[0].ID != "edge-a" {
		t.Errorf("edges listed: %+v", es)
	}
	if _, ok := reader.DispatcherKey("mint"); ok {
		t.Error("a forged dispatcher key was accepted")
	}
	if _, ok := edge.DispatcherKey("mint"); ok {
		t.Error("an edge accepted a forged dispatcher key")
	}
	if bl, ok := reader.Blocked(ip); ok {
		t.Errorf("a forged block was enforced: %+v", bl)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestRoleWideCredentialsJoin: the role-wide credentials of `stoa dev` let a new edge join under an id of its
// choice and be listed, and a dispatcher publish its key; the reserved ids stay out of reach.
func TestRoleWideCredentialsJoin(t *testing.T) {
	b := newAuthBus(t)
	b.node(t, "eu", "console", busauth.Identity{Role: busauth.RoleConsole})
	d := b.node(t, "eu", "extra-d", busauth.Identity{Role: busauth.RoleDispatch, Regions: []string{"eu"}, AnyID: true}, "dev-dispatcher")
	e := b.node(t, "eu", "extra-e", busauth.Identity{Role: busauth.RoleEdge, Regions: []string{"eu"}, AnyID: true}, "edge-1")
	ctx := ctxT(t)
	must(t, e.Heartbeat(ctx, EdgeInfo{ID: "extra-e", URL: "wss://x"}))
	must(t, d.PutDispatcherKey(ctx, DispatcherKey{ID: "extra-d", PublicKey: make([]byte, ed25519.PublicKeySize)}))
	clustertest.Eventually(t, 5*time.Second, func() error {
		_, k := e.DispatcherKey("extra-d")
		return errorf(len(d.Edges("eu")) == 1 && k, "extra edge or key not seen")
	})
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := e.Heartbeat(short, EdgeInfo{ID: "edge-1", URL: "wss://x"}); err == nil {
		t.Error("the role-wide credentials wrote a reserved edge's heartbeat")
	}
}

// TestCredentialsJWTNamesIdentity: the issued JWT carries the permissions and the identity readers check.
func TestCredentialsJWTNamesIdentity(t *testing.T) {
	b := newAuthBus(t)
	creds := b.creds(t, busauth.Identity{Role: busauth.RoleEdge, Regions: []string{"eu"}, ID: "edge-a"})
	tok, err := jwt.ParseDecoratedJWT(creds)
	must(t, err)
	uc, err := jwt.DecodeUserClaims(tok)
	must(t, err)
	if uc.Issuer != b.auth.Account() || !uc.Pub.Allow.Contains("$KV."+b.prefix+"_edges_eu."+encodeToken("edge-a")) {
		t.Errorf("claims: issuer %s, pub %v", uc.Issuer, uc.Pub.Allow)
	}
}

// TestStartFailsWhenRefused: a node whose credentials the bus refuses fails to start with the reason, instead of
// retrying until its context ends.
func TestStartFailsWhenRefused(t *testing.T) {
	b := newAuthBus(t)
	other, err := busauth.New()
	must(t, err)
	cfg := Default()
	cfg.URLs, cfg.Prefix = []string{b.srv.URL()}, b.prefix
	if cfg.Credentials, err = other.Issue(busauth.Identity{Role: busauth.RoleConsole}, b.prefix); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Start(ctx, cfg)
	if err == nil {
		c.Close()
		t.Fatal("started with refused credentials")
	}
	if ctx.Err() != nil || !strings.Contains(err.Error(), "uthoriz") {
		t.Errorf("error %v (context: %v)", err, ctx.Err())
	}
}

// TestWriteRefusedForOtherIdentity: a node asked to write a record its credentials do not allow (another id or
// region) says so at once instead of writing a record every reader ignores.
func TestWriteRefusedForOtherIdentity(t *testing.T) {
	b := newAuthBus(t)
	b.node(t, "eu", "console", busauth.Identity{Role: busauth.RoleConsole})
	e := b.node(t, "eu", "edge-a", busauth.Identity{Role: busauth.RoleEdge, Regions: []string{"eu"}, ID: "edge-a"})
	ctx := ctxT(t)
	for name, err := range map[string]error{
		"other id":           e.Heartbeat(ctx, EdgeInfo{ID: "edge-b", URL: "wss://b"}),
		"other region":       e.Heartbeat(ctx, EdgeInfo{ID: "edge-a", Region: "us", URL: "wss://b"}),
		"a dispatcher key":   e.PutDispatcherKey(ctx, DispatcherKey{ID: "edge-a", PublicKey: make([]byte, ed25519.PublicKeySize)}),
		"a block by another": e.PutBlock(ctx, Block{IP: netip.MustParseAddr("192.0.2.1"), Until: time.Now().Add(time.Minute), By: "edge-b"}),
	} {
		if err == nil || !strings.Contains(err.Error(), "do not allow") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
