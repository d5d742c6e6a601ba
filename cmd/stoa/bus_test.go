package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/tlsutil"
	"github.com/stoa-rtc/stoa/token"
)

// TestBusInitProduction (finding 9): the production set-up of docs/deploy.md. `stoa bus init` writes the
// nats-server configuration, a real NATS server runs with the documentation's stoa-common.conf including it, and an
// edge and a dispatcher with credentials from `stoa bus issue` schedule a client; a connection without credentials
// is refused and the edge's credentials cannot write a project.
func TestBusInitProduction(t *testing.T) {
	dir := t.TempDir()
	if code, out, errOut := stoa(t, "bus", "init", "--dir", dir); code != 0 || !strings.Contains(out, "nats-server.conf") {
		t.Fatalf("bus init: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := stoa(t, "bus", "init", "--dir", dir); code == 0 {
		t.Error("bus init replaced an existing authority")
	} else if regexp.MustCompile(`S[OAU][A-Z2-7]{50}`).MatchString(errOut) {
		t.Errorf("the error shows a seed: %s", errOut)
	}
	url, ca := startDocumentedNATS(t, dir)

	if nc, err := nats.Connect(url, nats.RootCAs(ca)); err == nil {
		nc.Close()
		t.Fatal("the server accepted a connection without credentials")
	}
	for _, n := range []struct{ role, id string }{{"edge", "edge-eu-1"}, {"dispatch", "d-eu-1"}} {
		if code, _, errOut := stoa(t, "bus", "issue", "--dir", dir, "--role", n.role, "--region", "eu", "--id", n.id,
			"--out", filepath.Join(dir, n.role+".creds")); code != 0 {
			t.Fatalf("bus issue %s: %d %s", n.role, code, errOut)
		}
	}

	// The console publishes a project.
	ccfg := cluster.Default()
	ccfg.URLs, ccfg.Region, ccfg.Node, ccfg.CredentialsFile = []string{url}, "eu", "console", filepath.Join(dir, "console.creds")
	ccfg.TLSCAFile = ca
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	console, err := cluster.Start(ctx, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer console.Close()
	appID, cert := strings.Repeat("a", 32), strings.Repeat("b", 32)
	if err := console.PutProject(ctx, cluster.Project{AppID: appID, Certificates: []string{cert}, Enabled: true}); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) *syncBuffer {
		rctx, rcancel := context.WithCancel(context.Background())
		out, errOut := &syncBuffer{}, &syncBuffer{}
		done := make(chan int, 1)
		go func() { done <- runMain(rctx, args, out, errOut) }()
		t.Cleanup(func() { rcancel(); <-done })
		for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out.String(), "ready"); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%v not ready: %s", args[:1], errOut.String())
			}
		}
		return out
	}
	// An --id the credentials do not name is refused; without --id, the node takes the credentials' id.
	if code, _, errOut := stoa(t, "edge", "--nats", url, "--nats-ca", ca, "--nats-creds", filepath.Join(dir, "edge.creds"),
		"--region", "eu", "--id", "edge-eu-2", "--listen", "127.0.0.1:0", "--data", t.TempDir()); code != 2 || !strings.Contains(errOut, "issued for") {
		t.Errorf("edge with another id: %d %s", code, errOut)
	}
	eout := run("edge", "--nats", url, "--nats-ca", ca, "--nats-creds", filepath.Join(dir, "edge.creds"), "--region", "eu",
		"--listen", "127.0.0.1:0", "--data", t.TempDir(), "--log-level", "error")
	if !strings.Contains(eout.String(), "id=edge-eu-1") {
		t.Errorf("edge: %s", eout.String())
	}
	dout := run("dispatch", "--nats", url, "--nats-ca", ca, "--nats-creds", filepath.Join(dir, "dispatch.creds"), "--region", "eu", "--id", "d-eu-1",
		"--listen", "127.0.0.1:0", "--data", t.TempDir(), "--log-level", "error")
	durl := regexp.MustCompile(`url=(\S+)`).FindStringSubmatch(dout.String())[1]

	tok, err := token.BuildRTC(cert, token.RTCOptions{AppID: appID, Channel: "c", UID: "1", Expire: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"app_id": appID, "channel": "c", "uid": "1", "token": tok})
	var got struct{ Edges []struct{ ID string } }
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Post(durl+"/v1/dispatch", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && len(got.Edges) == 1 && got.Edges[0].ID == "edge-eu-1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dispatch: %d %+v", resp.StatusCode, got)
		}
	}

	nc, err := nats.Connect(url, nats.RootCAs(ca), nats.UserCredentials(filepath.Join(dir, "edge.creds")), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subj := "$KV.stoa_projects.x"
	nc.Publish(subj, []byte(`{}`))
	nc.Flush()
	if err := nc.LastError(); err == nil || !strings.Contains(err.Error(), subj) {
		t.Errorf("the edge's credentials wrote a project (last error %v)", err)
	}
}

// startDocumentedNATS runs a NATS server with docs/deploy.md's stoa-common.conf, its certificate, key and store
// paths pointed into dir and the bus configuration `stoa bus init` wrote to dir included as stoa-bus.conf. It
// returns the server's URL and the CA file that verifies it.
func startDocumentedNATS(t *testing.T, dir string) (url, ca string) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)`/etc/nats/stoa-common.conf`:\\s*```\\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no stoa-common.conf in docs/deploy.md")
	}
	_, certFile, err := tlsutil.SelfSigned(filepath.Join(dir, "tls"), nil)
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer(
		"listen: 0.0.0.0:4222", "listen: 127.0.0.1:-1",
		"http: 127.0.0.1:8222", "",
		"/etc/nats/tls/server.pem", certFile,
		"/etc/nats/tls/server-key.pem", filepath.Join(dir, "tls", "key.pem"),
		"/etc/nats/tls/ca.pem", certFile,
		"/var/lib/nats", filepath.Join(dir, "js"),
	).Replace(string(m[1]))
	bus, err := os.ReadFile(filepath.Join(dir, "nats-server.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"stoa-common.conf": []byte(conf), "stoa-bus.conf": bus} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "stoa-common.conf"))
	if err != nil {
		t.Fatalf("the documented configuration: %v", err)
	}
	opts.NoLog, opts.NoSigs = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return "tls://" + srv.Addr().String(), certFile
}
