package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/console"
	"github.com/stoa-rtc/stoa/internal/edge"
	"github.com/stoa-rtc/stoa/internal/guard"
	"github.com/stoa-rtc/stoa/internal/node"
	"github.com/stoa-rtc/stoa/internal/store"
)

func devCommand() *command {
	var (
		listen, appID, appCert, dataDir, logLevel, natsListen, regions string
		retain                                                         retentionFlags
	)
	return &command{
		name:    "dev",
		summary: "run a whole Stoa network on this machine, with zero configuration",
		usage: `stoa dev [--listen 127.0.0.1:PORT] [--app-id ID --app-cert CERT] [--data DIR] [--regions eu:2,us:2]
         [--nats-listen 127.0.0.1:PORT]

Starts an embedded NATS cluster bus, a dispatcher (POST /v1/dispatch at the printed URL), edges in one or
more regions (each with its own signaling URL and media port) and a demo project. The project's App ID and
App Certificate are generated on the first run and kept in DIR, or taken from the flags. Prints
"stoa dev ready" once everything listens, then the URL, the credentials, the NATS URL (other stoa edge and
stoa dispatch processes may join with --nats) and the edges. Listening off loopback serves HTTPS/WSS with a
self-signed certificate kept in DIR. Ctrl-C drains and stops; a second Ctrl-C exits at once.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&listen, "listen", "127.0.0.1:7880", "HTTP address of the entry point (dispatcher)")
			fs.StringVar(&appID, "app-id", "", "App ID of the demo project (default: generated, kept in --data)")
			fs.StringVar(&appCert, "app-cert", "", "App Certificate of the demo project (with --app-id)")
			fs.StringVar(&dataDir, "data", ".stoa-dev", "directory for the demo project, certificates and the bus's storage")
			fs.StringVar(&regions, "regions", "local:1", "regions and their number of edges, e.g. eu:2,us:2")
			fs.StringVar(&natsListen, "nats-listen", "127.0.0.1:-1", "client address of the embedded NATS server (-1: a free port)")
			fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
			retain.register(fs)
		},
		run: func(ctx context.Context, args []string, env *cmdEnv) error {
			if err := env.parseNoArgs(args); err != nil {
				return err
			}
			retention, err := retain.value()
			if err != nil {
				return err
			}
			log, err := newLogger(env.stderr, logLevel)
			if err != nil {
				return err
			}
			if (appID == "") != (appCert == "") {
				return usagef("give both --app-id and --app-cert, or neither")
			}
			layout, err := parseRegions(regions)
			if err != nil {
				return err
			}
			return runDev(ctx, env, devOptions{listen: listen, appID: appID, appCert: appCert, dataDir: dataDir,
				natsListen: natsListen, regions: layout, retain: retention, log: log})
		},
	}
}

type devOptions struct {
	listen, appID, appCert, dataDir, natsListen string
	regions                                     []devRegion
	retain                                      store.Retention
	log                                         *slog.Logger
}

type devRegion struct {
	name  string
	edges int
}

// parseRegions reads "eu:2,us:2" (a bare name means one edge).
func parseRegions(s string) ([]devRegion, error) {
	var out []devRegion
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		name, n, found := strings.Cut(strings.TrimSpace(part), ":")
		count := 1
		if found {
			var err error
			if count, err = strconv.Atoi(n); err != nil || count < 1 || count > 16 {
				return nil, usagef("--regions: %q: the number of edges must be 1 to 16", part)
			}
		}
		if name == "" || seen[name] {
			return nil, usagef("--regions: %q: each region needs a distinct name", part)
		}
		seen[name] = true
		out = append(out, devRegion{name, count})
	}
	return out, nil
}

// devProject is the demo project kept in the data directory.
type devProject struct {
	AppID   string `json:"app_id"`
	AppCert string `json:"app_cert"`
}

// devGuard is the guard of stoa dev: the production scoring and blocking, with connection limits high enough for
// stoa loadtest's many clients on one address.
func devGuard() guard.Config {
	g := guard.Default()
	g.Dispatch = guard.Limit{Rate: 2000, Burst: 10000}
	g.Connect = guard.Limit{Rate: 2000, Burst: 10000}
	return g
}

func runDev(ctx context.Context, env *cmdEnv, o devOptions) error {
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return err
	}
	proj := devProject{AppID: o.appID, AppCert: o.appCert}
	if proj.AppID == "" {
		var err error
		if proj, err = loadOrCreateProject(filepath.Join(o.dataDir, "project.json")); err != nil {
			return err
		}
	}
	if !isHex32(proj.AppID) || !isHex32(proj.AppCert) {
		return errors.New("the App ID and App Certificate must be 32 hexadecimal characters each")
	}
	names := make([]string, len(o.regions))
	for i, r := range o.regions {
		names[i] = r.name
	}

	// The bus: an embedded NATS server, which the dispatcher's cluster handle runs.
	ccfg := cluster.Default()
	ccfg.Region, ccfg.Regions, ccfg.Node, ccfg.Logger = names[0], names[1:], "dev-dispatcher", o.log
	ccfg.Embedded.Listen = o.natsListen
	ccfg.Embedded.StoreDir = filepath.Join(o.dataDir, "nats")
	// The console's key signs every project, the demo one included; every node accepts only those.
	signer, err := projectSigner(o.dataDir)
	if err != nil {
		return err
	}
	projectKeys := []ed25519.PublicKey{signer.Public().(ed25519.PublicKey)}
	ccfg.ProjectSigner = signer
	ccfg.ProjectKeys = projectKeys
	bus, err := cluster.Start(ctx, ccfg)
	if err != nil {
		return err
	}
	defer bus.Close()
	if err := bus.PutProject(ctx, cluster.Project{AppID: proj.AppID, Certificates: []string{proj.AppCert}, Enabled: true}); err != nil {
		return err
	}

	ln, scheme, err := listen(o.listen, o.dataDir, "", "")
	if err != nil {
		return err
	}
	url := scheme + "://" + publicAddr(ln)
	// The console keeps its SQLite database and keys in the data directory and publishes projects to the bus.
	// There is no mail server: invitation and password-reset mails, links included, go to the log.
	hosts, err := consoleHosts(ln.Addr(), "")
	if err != nil {
		ln.Close()
		return err
	}
	cons, closeConsole, err := openConsole(ctx, consoleOptions{db: filepath.Join(o.dataDir, "console.db"), dataDir: o.dataDir,
		cluster: bus, secure: scheme == "https", retain: o.retain, mailer: console.NewLogMailer(o.log), publicURL: url,
		hosts: hosts, log: o.log})
	if err != nil {
		ln.Close()
		return err
	}
	defer closeConsole()
	d, err := node.NewDispatcher(node.DispatcherConfig{Cluster: bus, ID: "dev-dispatcher", Region: names[0],
		Regions: names, Guard: devGuard(), Logger: o.log})
	if err != nil {
		ln.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/dispatch", d.Handler())
	mux.Handle("/healthz", d.Handler())
	mux.Handle("/", cons.Handler()) // the console's API and web UI
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(o.log.Handler(), slog.LevelDebug)}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	goRun := func(f func() error) {
		wg.Go(func() {
			if err := f(); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, http.ErrServerClosed) {
				errs <- err
				stop()
			}
		})
	}
	dispatcherReady := make(chan struct{})
	goRun(func() error { return d.Run(runCtx, func() { close(dispatcherReady) }) })
	goRun(func() error { return srv.Serve(ln) })
	// Every way out of runDev ends runCtx and then waits for wg: the server must stop then, also when an edge
	// failed to start (that path used to wait for Serve forever).
	wg.Go(func() {
		<-runCtx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})

	// The edges: each its own cluster handle (in its region), listener and media port.
	type started struct{ id, region, url, media string }
	ready := make(chan started, 64)
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	for _, r := range o.regions {
		for i := 1; i <= r.edges; i++ {
			id := fmt.Sprintf("%s-%d", r.name, i)
			if len(o.regions) == 1 && r.name == "local" {
				id = fmt.Sprintf("edge-%d", i)
			}
			ecfg := cluster.Default()
			ecfg.URLs, ecfg.Region, ecfg.Node, ecfg.Logger = []string{bus.ClientURL()}, r.name, id, o.log
			ecfg.ProjectKeys = projectKeys
			ec, err := cluster.Start(runCtx, ecfg)
			if err != nil {
				stop()
				wg.Wait()
				return err
			}
			eln, escheme, err := listen(net.JoinHostPort(host, "0"), o.dataDir, "", "")
			if err != nil {
				ec.Close()
				stop()
				wg.Wait()
				return err
			}
			signal := strings.Replace(escheme, "http", "ws", 1) + "://" + publicAddr(eln) + "/v1/signal"
			region := r.name
			goRun(func() error {
				defer ec.Close()
				return node.RunEdge(runCtx, node.EdgeConfig{Cluster: ec, ID: id, Region: region, Listener: eln,
					SignalURL: signal, RTCAddr: net.JoinHostPort(host, "0"), Guard: devGuard(), Logger: o.log},
					func(e *edge.Server) { ready <- started{id, region, signal, e.RTCAddr().String()} })
			})
		}
	}
	var edges []started
	total := 0
	for _, r := range o.regions {
		total += r.edges
	}
	for len(edges) < total {
		select {
		case e := <-ready:
			edges = append(edges, e)
		case <-runCtx.Done():
			wg.Wait()
			return firstError(errs, runCtx.Err())
		}
	}
	select {
	case <-dispatcherReady:
	case <-runCtx.Done():
		wg.Wait()
		return firstError(errs, runCtx.Err())
	}
	// Wait until the dispatcher sees every edge, so the first client is scheduled onto the whole layout.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		seen := 0
		for _, n := range names {
			seen += len(bus.Edges(n))
		}
		if seen == total {
			break
		}
	}

	fmt.Fprintln(env.stdout, "stoa dev ready")
	fmt.Fprintf(env.stdout, "  url:       %s\n", url)
	fmt.Fprintf(env.stdout, "  app id:    %s\n", proj.AppID)
	fmt.Fprintf(env.stdout, "  app cert:  %s\n", proj.AppCert)
	fmt.Fprintf(env.stdout, "  nats:      %s\n", bus.ClientURL())
	fmt.Fprintf(env.stdout, "  projects:  signed with key %x (more edges on this bus: --project-keys)\n", projectKeys[0])
	fmt.Fprintf(env.stdout, "  console:   %s%s (API: %s/api/v1/openapi.json; database %s)\n", url, console.UIPrefix, url, filepath.Join(o.dataDir, "console.db"))
	slices.SortFunc(edges, func(a, b started) int { return strings.Compare(a.id, b.id) })
	for _, e := range edges {
		fmt.Fprintf(env.stdout, "  edge:      %s (region %s) %s, media %s\n", e.id, e.region, e.url, e.media)
	}
	// An example channel secret for trying things out: it is printed, never kept or used by the network, which
	// only ever sees ciphertext. Every member of a channel must use the same one.
	fmt.Fprintf(env.stdout, "  try:       stoa join --url %s --app-id %s --app-cert %s --channel demo --uid 1 --publish audio,video --subscribe --e2ee-secret %s\n",
		url, proj.AppID, proj.AppCert, randomHex(32))

	<-runCtx.Done()
	o.log.Info("stopping")
	wg.Wait()
	return firstError(errs, nil)
}

// firstError returns the first error reported on errs, or def.
func firstError(errs chan error, def error) error {
	select {
	case err := <-errs:
		return err
	default:
		if errors.Is(def, context.Canceled) {
			return nil
		}
		return def
	}
}

func isHex32(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// loadOrCreateProject reads the demo project from path or creates one with fresh credentials from crypto/rand.
func loadOrCreateProject(path string) (devProject, error) {
	var p devProject
	b, err := os.ReadFile(path)
	if err == nil {
		if err := json.Unmarshal(b, &p); err != nil {
			return p, fmt.Errorf("%s: %w", path, err)
		}
		return p, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return p, err
	}
	p = devProject{AppID: randomHex(16), AppCert: randomHex(16)}
	b, _ = json.MarshalIndent(p, "", "  ")
	return p, os.WriteFile(path, b, 0o600)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newLogger(w interface{ Write([]byte) (int, error) }, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, usagef("--log-level must be debug, info, warn or error")
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
