// Package clustertest runs real NATS servers with JetStream inside a test process, on random loopback ports, for
// the integration tests of the cluster layer and of everything built on it (dispatcher, edges, guard, console).
//
// It follows the NATS server's own test harness: servers start in process with port -1 and are waited for with
// ReadyForConnections, and conditions are polled with a deadline (Eventually) instead of slept for. Everything a
// helper starts is stopped by t.Cleanup.
//
// Tests that should also run against a machine's NATS server (external, possibly an older version) take its URL
// from STOA_TEST_NATS with External, and isolate themselves with a unique Prefix whose buckets and streams
// DeletePrefix removes.
package clustertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// EnvNATS names the environment variable that points tests at an external NATS server with JetStream.
const EnvNATS = "STOA_TEST_NATS"

// EnvNATSLog, set to "1" (or "debug"), makes the in-process servers log to stderr.
const EnvNATSLog = "STOA_TEST_NATS_LOG"

// Server is a NATS server with JetStream running in the test process.
type Server struct {
	t    testing.TB
	mu   sync.Mutex
	opts server.Options // as first started; Restart reuses the port and the store
	srv  *server.Server
	url  string
}

// Option changes a Server's options before it starts.
type Option func(*server.Options)

// NewServer starts a standalone NATS server with JetStream on a random loopback port and a temporary store
// directory; t.Cleanup shuts it down.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	o := server.Options{
		ServerName: "stoa-test-" + randomHex(4),
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoLog:      true,
		NoSigs:     true,
	}
	for _, f := range opts {
		f(&o)
	}
	s := &Server{t: t, opts: o}
	s.start()
	t.Cleanup(s.Shutdown)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	o := s.opts // NewServer keeps a pointer to the options it is given: give each run its own copy
	if os.Getenv(EnvNATSLog) != "" {
		o.NoLog, o.Debug = false, os.Getenv(EnvNATSLog) == "debug"
	}
	srv, err := server.NewServer(&o)
	if err != nil {
		s.t.Fatalf("clustertest: NATS server: %v", err)
	}
	if !o.NoLog {
		srv.ConfigureLogger()
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		s.t.Fatalf("clustertest: NATS server not ready")
	}
	s.mu.Lock()
	s.srv = srv
	s.url = srv.ClientURL()
	if s.opts.Port <= 0 { // keep the port that was picked, for Restart
		_, p, _ := net.SplitHostPort(srv.Addr().String())
		s.opts.Port, _ = strconv.Atoi(p)
	}
	s.mu.Unlock()
}

// URL returns the client URL, nats://127.0.0.1:PORT; it stays the same across Restart.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// NATS returns the running server.
func (s *Server) NATS() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// Shutdown stops the server (the bus goes down) and waits until it has stopped. Stopping a stopped server does
// nothing.
func (s *Server) Shutdown() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart starts the server again, after Shutdown, on the same port with the same store: clients reconnect and
// find their streams and buckets (file storage).
func (s *Server) Restart() {
	s.t.Helper()
	s.Shutdown()
	s.start()
}

// Connect returns a client connection to the server, closed by t.Cleanup.
func (s *Server) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.URL())
	if err != nil {
		t.Fatalf("clustertest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// SuperCluster is one NATS cluster per region, joined by gateways, with JetStream spanning them: the production
// topology in miniature (one server per cluster instead of three).
type SuperCluster struct {
	// Regions maps each region's name to its cluster's server; the NATS cluster is named after the region.
	Regions map[string]*Server
}

// NewSuperCluster starts a supercluster of one single-server cluster per region (at least two) and waits until
// the gateways are connected both ways and JetStream answers through every server. t.Cleanup shuts it down.
func NewSuperCluster(t testing.TB, regions ...string) *SuperCluster {
	t.Helper()
	if len(regions) < 2 {
		t.Fatalf("clustertest: a supercluster needs at least two regions")
	}
	sc := &SuperCluster{Regions: map[string]*Server{}}
	var seed *url.URL
	for i, r := range regions {
		r := r
		// A clustered JetStream server needs configured routes, even alone in its cluster: it gets one to itself
		// (which the server recognises and drops), so its route port has to be known before it starts.
		rp := freePort(t)
		s := NewServer(t, func(o *server.Options) {
			o.ServerName = r + "-1"
			o.Cluster.Name = r
			o.Cluster.Host = "127.0.0.1"
			o.Cluster.Port = rp
			o.Routes = []*url.URL{{Scheme: "nats-route", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(rp))}}
			o.Gateway.Name = r
			o.Gateway.Host = "127.0.0.1"
			o.Gateway.Port = -1
			if i > 0 {
				// Gateways gossip: joining the first cluster is enough to learn of all the others.
				o.Gateway.Gateways = []*server.RemoteGatewayOpts{{Name: regions[0], URLs: []*url.URL{seed}}}
			}
		})
		if i == 0 {
			a := s.NATS().GatewayAddr()
			seed = &url.URL{Scheme: "nats", Host: a.String()}
			// Restart must reuse the gateway port that the others know.
			s.opts.Gateway.Port = a.Port
		}
		sc.Regions[r] = s
	}
	want := len(regions) - 1
	Eventually(t, 20*time.Second, func() error {
		for r, s := range sc.Regions {
			if n := s.NATS().NumOutboundGateways(); n != want {
				return fmt.Errorf("%s: %d outbound gateways, want %d", r, n, want)
			}
		}
		return nil
	})
	for r, s := range sc.Regions {
		nc := s.Connect(t)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		Eventually(t, 30*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if _, err := js.AccountInfo(ctx); err != nil {
				return fmt.Errorf("%s: JetStream: %w", r, err)
			}
			return nil
		})
	}
	return sc
}

// Eventually calls cond every 10ms until it returns nil, and fails the test with cond's last error if that has not
// happened within d.
func Eventually(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", d, err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// External returns the URL of the external NATS server named by STOA_TEST_NATS, or skips the test when it is not
// set.
func External(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvNATS)
	if u == "" {
		t.Skipf("%s not set: no external NATS server", EnvNATS)
	}
	return u
}

// Prefix returns a name prefix unique to this run of t, for buckets and streams on a shared server.
func Prefix(t testing.TB) string {
	return "t" + randomHex(6)
}

// DeletePrefix registers a cleanup that deletes every stream (buckets are streams "KV_<bucket>") whose name starts
// with prefix on the server at url.
func DeletePrefix(t testing.TB, url, prefix string) {
	t.Cleanup(func() {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Errorf("clustertest: cleanup connect: %v", err)
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Errorf("clustertest: cleanup: %v", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		names := js.StreamNames(ctx)
		var doomed []string
		for n := range names.Name() {
			if strings.HasPrefix(n, prefix) || strings.HasPrefix(n, "KV_"+prefix) {
				doomed = append(doomed, n)
			}
		}
		for _, n := range doomed {
			if err := js.DeleteStream(ctx, n); err != nil {
				t.Errorf("clustertest: delete stream %s: %v", n, err)
			}
		}
	})
}

// Goroutines records the goroutines running now; the returned function fails the test if others are still running
// after a grace period of a few seconds (to let stopped goroutines finish). Tests that use it must not run in
// parallel with others.
func Goroutines(t testing.TB) (check func()) {
	before := goroutineIDs()
	return func() {
		t.Helper()
		var extra []string
		deadline := time.Now().Add(5 * time.Second)
		for {
			extra = extra[:0]
			for id, stack := range goroutineStacks() {
				if _, ok := before[id]; !ok && !ignorable(stack) {
					extra = append(extra, stack)
				}
			}
			if len(extra) == 0 {
				return
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond) // polling interval
		}
		slices.Sort(extra)
		t.Errorf("%d goroutines leaked:\n%s", len(extra), strings.Join(extra, "\n\n"))
	}
}

func ignorable(stack string) bool {
	for _, s := range []string{
		"testing.(*T).Run", "testing.tRunner", "runtime.goexit0", "signal.signal_recv", "os/signal.loop",
		"testing.runFuzzing", "runtime.ensureSigM",
	} {
		if strings.Contains(stack, s) && !strings.Contains(stack, "clustertest") && strings.Count(stack, "\n") < 12 {
			return true
		}
	}
	return false
}

func goroutineIDs() map[string]struct{} {
	out := map[string]struct{}{}
	for id := range goroutineStacks() {
		out[id] = struct{}{}
	}
	return out
}

func goroutineStacks() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	self := ""
	for i, g := range strings.Split(string(buf), "\n\n") {
		head, _, _ := strings.Cut(g, "\n")
		f := strings.Fields(head) // "goroutine 18 [running]:"
		if len(f) < 2 {
			continue
		}
		if i == 0 {
			self = f[1]
		}
		out[f[1]] = g
	}
	delete(out, self)
	return out
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("clustertest: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
