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
	"io"
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

	"github.com/stoa-rtc/stoa/internal/busauth"
	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/connlimit"
	"github.com/stoa-rtc/stoa/internal/console"
	"github.com/stoa-rtc/stoa/internal/dispatch"
	"github.com/stoa-rtc/stoa/internal/edge"
	"github.com/stoa-rtc/stoa/internal/guard"
	"github.com/stoa-rtc/stoa/internal/node"
	"github.com/stoa-rtc/stoa/internal/store"
	"github.com/stoa-rtc/stoa/web"
)

func devCommand() *command {
	var (
		listen, appID, appCert, dataDir, logLevel, natsListen, regions string
		regionMap, allowOrigin                                         string
		maxSessions                                                    int
		retain                                                         retentionFlags
		accept006                                                      bool
		adminListen                                                    string
	)
	return &command{
		name:    "dev",
		summary: "run a whole Stoa network on this machine, with zero configuration",
		usage: `stoa dev [--listen 127.0.0.1:PORT] [--app-id ID --app-cert CERT] [--data DIR] [--regions eu:2,us:2]
         [--max-sessions N] [--region-map FILE] [--nats-listen 127.0.0.1:PORT] [--accept-006]
         [--allow-origin ORIGIN,...]
         [--admin-listen 127.0.0.1:PORT]

Starts an embedded NATS cluster bus, a dispatcher (POST /v1/dispatch at the printed URL), edges in one or
more regions (each with its own signaling URL and media port), the console and a demo project. The project's
App ID and App Certificate are generated on the first run and kept in DIR, or taken from the flags; the
console's owner account dev@stoa.local, whose password is generated on the first run, holds it. When the
--listen address is taken, --listen 127.0.0.1:0 picks a free port. Prints "stoa dev ready" once everything
listens, then the URL, the credentials, the NATS URL (other stoa edge and stoa dispatch processes may join
with --nats and --nats-creds DIR/nats/edge.creds or dispatch.creds; the bus accepts no connection without
credentials), the edges and two join commands to try; and writes DIR/dev.json (mode 0600):
{"url","app_id","app_cert","console":{"url","email","password"}}, and DIR/dev.env: STOA_URL, STOA_APP_ID
and STOA_APP_CERT for a shell. Listening off loopback serves HTTPS/WSS with a self-signed certificate kept in
DIR. The demo project refuses legacy 006 tokens unless --accept-006 is given. The dispatcher serves every
region of --regions: a client that names one gets its edges; one that names none goes to the first region,
or to the region of its address with --region-map (as stoa dispatch). --admin-listen serves Go's profiles
(net/http/pprof) of the whole process at /debug/pprof/ on a loopback address of its own. Pages of the
entry point's own origin (the demo at /demo/, the JavaScript SDK at /sdk/stoa.js) and of the --allow-origin
origins may call the dispatcher and open the edges' WebSockets. Ctrl-C drains and stops; a second Ctrl-C
exits at once.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&listen, "listen", "127.0.0.1:7880", "HTTP address of the entry point (dispatcher)")
			fs.StringVar(&appID, "app-id", "", "App ID of the demo project (default: generated, kept in --data)")
			fs.StringVar(&appCert, "app-cert", "", "App Certificate of the demo project (with --app-id)")
			fs.StringVar(&dataDir, "data", ".stoa-dev", "directory for the demo project, certificates and the bus's storage")
			fs.StringVar(&regions, "regions", "local:1", "regions and their number of edges, e.g. eu:2,us:2")
			registerMaxSessions(fs, &maxSessions)
			fs.StringVar(&regionMap, "region-map", "", "file of \"CIDR REGION\" lines placing clients that name no region by their address (as stoa dispatch)")
			fs.StringVar(&natsListen, "nats-listen", "127.0.0.1:-1", "client address of the embedded NATS server, on loopback (-1: a free port)")
			fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
			fs.BoolVar(&accept006, "accept-006", false, "let the demo project accept legacy 006 tokens (weaker than AccessToken2: docs/tokens.md)")
			fs.StringVar(&allowOrigin, "allow-origin", "", "further browser origins (scheme://host[:port], comma-separated) whose pages may use this network, besides its own")
			registerAdminListen(fs, &adminListen)
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
			if err := checkMaxSessions(maxSessions); err != nil {
				return err
			}
			if adminListen != "" {
				if err := checkAdminListen(adminListen); err != nil {
					return err
				}
			}
			rm, err := loadRegionMap(regionMap)
			if err != nil {
				return err
			}
			origins, err := dispatch.ParseOrigins(allowOrigin)
			if err != nil {
				return usagef("--allow-origin: %v", err)
			}
			return runDev(ctx, env, devOptions{listen: listen, appID: appID, appCert: appCert, dataDir: dataDir,
				natsListen: natsListen, regions: layout, maxSessions: maxSessions, regionMap: rm, retain: retention,
				accept006: accept006, origins: origins, adminListen: adminListen, log: log})
		},
	}
}

type devOptions struct {
	listen, appID, appCert, dataDir, natsListen string
	regions                                     []devRegion
	maxSessions                                 int
	regionMap                                   *dispatch.RegionMap
	retain                                      store.Retention
	accept006                                   bool
	origins                                     dispatch.Origins // --allow-origin, besides dev's own
	adminListen                                 string           // empty: no admin listener
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

// devLimits are the connection cap and timeouts of stoa dev: the production timeouts, with a cap high enough for
// stoa loadtest's many clients on one address.
func devLimits() connlimit.Config {
	c := connlimit.Default()
	c.MaxPerAddr = 10000
	return c
}

func runDev(ctx context.Context, env *cmdEnv, o devOptions) error {
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return err
	}
	// The entry point's address first: when it is taken, say so before anything starts.
	ln, scheme, err := devListen(o.listen, o.dataDir)
	if err != nil {
		return err
	}
	defer ln.Close() // in case of an early return; the server closes it otherwise
	var admin net.Addr
	if o.adminListen != "" {
		var stop func()
		if admin, stop, err = startAdmin(o.adminListen); err != nil {
			return err
		}
		defer stop()
	}
	kept, err := takeDevInfo(o.dataDir)
	if err != nil {
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
	certFile := filepath.Join(o.dataDir, appCertFile)
	if err := writePrivate(certFile, []byte(proj.AppCert+"\n")); err != nil {
		return err
	}
	names := make([]string, len(o.regions))
	for i, r := range o.regions {
		names[i] = r.name
	}

	// The bus: an embedded NATS server, which the console's cluster handle runs. It accepts only credentials issued
	// by the authority kept in DATA/nats; each node of this process gets its own, and edge.creds and
	// dispatch.creds there let more edges and dispatchers join (any id but this process's nodes').
	natsDir := filepath.Join(o.dataDir, "nats")
	var edgeIDs []string
	for _, r := range o.regions {
		for i := 1; i <= r.edges; i++ {
			edgeIDs = append(edgeIDs, devEdgeID(o.regions, r.name, i))
		}
	}
	creds, err := devCredentials(natsDir, names, edgeIDs)
	if err != nil {
		return err
	}
	ccfg := cluster.Default()
	ccfg.Region, ccfg.Regions, ccfg.Node, ccfg.Logger = names[0], names[1:], "dev-console", o.log
	ccfg.Embedded.Listen = o.natsListen
	ccfg.Embedded.StoreDir = natsDir
	ccfg.Embedded.Authority, ccfg.Credentials = creds.auth, creds.console
	// The console's key signs every project, the demo one included; every node accepts only those.
	signer, err := projectSigner(o.dataDir)
	if err != nil {
		return err
	}
	projectKeys := []ed25519.PublicKey{signer.Public().(ed25519.PublicKey)}
	ccfg.ProjectSigner = signer
	ccfg.ProjectKeys = projectKeys
	// App Certificates cross the bus sealed to a key that the edges and the dispatcher hold (DIR/nats/seal.key).
	openKey, _, err := loadOpenKey(filepath.Join(natsDir, sealKeyFile))
	if err != nil {
		return err
	}
	ccfg.ProjectSealKey, ccfg.ProjectOpenKey = openKey.PublicKey(), openKey
	bus, err := cluster.Start(ctx, ccfg)
	if err != nil {
		return err
	}
	defer bus.Close()

	url := scheme + "://" + publicAddr(ln)
	// The console keeps its SQLite database and keys in the data directory and publishes projects to the bus.
	// There is no mail server: invitation and password-reset mails, links included, go to the log.
	hosts, err := consoleHosts(ln.Addr(), "")
	if err != nil {
		return err
	}
	cons, closeConsole, err := openConsole(ctx, consoleOptions{db: filepath.Join(o.dataDir, "console.db"), dataDir: o.dataDir,
		cluster: bus, secure: scheme == "https", retain: o.retain, mailer: console.NewLogMailer(o.log), publicURL: url,
		hosts: hosts, adoptHead: true, log: o.log})
	if err != nil {
		return err
	}
	defer closeConsole()
	// The console holds the demo project, in the organisation of a dev owner account, and publishes it: the
	// console then shows its calls. The account keeps the password of an earlier run (in dev.json).
	owner := console.DevAccount{Email: devOwnerEmail, AppID: proj.AppID, Certificate: proj.AppCert, Accept006: o.accept006}
	if kept.Console.Email == devOwnerEmail {
		owner.Password = kept.Console.Password
	}
	owner, newPassword, err := cons.EnsureDevAccount(ctx, owner)
	if err != nil {
		return err
	}
	// The dispatcher has its own cluster handle and credentials, as every node of a network. It serves every
	// region.
	origins := append(ownOrigins(scheme, ln), o.origins...)
	dspCfg := node.DispatcherConfig{ID: devDispatcherID, Region: names[0], Regions: names, RegionMap: o.regionMap, Guard: devGuard(),
		AllowedOrigins: origins, Logger: o.log}
	dcfg := cluster.Default()
	dcfg.URLs, dcfg.Region, dcfg.Regions, dcfg.Node, dcfg.Logger = []string{bus.ClientURL()}, names[0], dspCfg.Followed(), devDispatcherID, o.log
	dcfg.ProjectKeys, dcfg.ProjectOpenKey = projectKeys, openKey
	if dcfg.Credentials, err = creds.issue(busauth.Identity{Role: busauth.RoleDispatch, Regions: names[:1], ID: devDispatcherID}); err != nil {
		return err
	}
	dbus, err := cluster.Start(ctx, dcfg)
	if err != nil {
		return err
	}
	defer dbus.Close()
	dspCfg.Cluster = dbus
	d, err := node.NewDispatcher(dspCfg)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/dispatch", d.Handler())
	mux.Handle("/healthz", d.Handler())
	mux.Handle("/", cons.Handler()) // the console's API and web UI
	// The JavaScript SDK (/sdk/stoa.js) and the demo app (/demo/), served from the binary: no npm step.
	mux.Handle("/sdk/", web.Handler())
	mux.Handle("/demo/", web.Handler())
	mux.Handle("GET /demo/token", demoToken(proj)) // dev only: tokens of the demo project for this machine
	srv := devLimits().Server(mux, slog.NewLogLogger(o.log.Handler(), slog.LevelDebug))

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
			id := devEdgeID(o.regions, r.name, i)
			ecfg := cluster.Default()
			ecfg.URLs, ecfg.Region, ecfg.Node, ecfg.Logger = []string{bus.ClientURL()}, r.name, id, o.log
			ecfg.Regions = []string{"*"} // the hubs of a channel link across regions
			ecfg.ProjectKeys, ecfg.ProjectOpenKey = projectKeys, openKey
			if ecfg.Credentials, err = creds.issue(busauth.Identity{Role: busauth.RoleEdge, Regions: []string{r.name}, ID: id}); err != nil {
				stop()
				wg.Wait()
				return err
			}
			ec, err := cluster.Start(runCtx, ecfg)
			if err != nil {
				stop()
				wg.Wait()
				return err
			}
			eln, escheme, err := listen(net.JoinHostPort(host, "0"), o.dataDir, "", "", devLimits())
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
					SignalURL: signal, RTCAddr: net.JoinHostPort(host, "0"), MaxSessions: o.maxSessions, Guard: devGuard(),
					Limits: devLimits(), AllowedOrigins: origins, Logger: o.log},
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
			seen += len(dbus.Edges(n))
		}
		if seen == total {
			break
		}
	}

	if err := writeDevInfo(o.dataDir, devInfo{URL: url, AppID: proj.AppID, AppCert: proj.AppCert,
		Console: devConsoleInfo{URL: url, Email: owner.Email, Password: owner.Password}}); err != nil {
		stop()
		wg.Wait()
		return err
	}
	// One write, so that a reader sees the whole block or none of it.
	var out strings.Builder
	fmt.Fprintln(&out, "stoa dev ready")
	fmt.Fprintf(&out, "  url:       %s\n", url)
	fmt.Fprintf(&out, "  app id:    %s\n", proj.AppID)
	fmt.Fprintf(&out, "  app cert:  %s (also in %s)\n", proj.AppCert, certFile)
	fmt.Fprintf(&out, "  nats:      %s\n", bus.ClientURL())
	fmt.Fprintf(&out, "  projects:  signed with key %x (more edges on this bus: --project-keys)\n", projectKeys[0])
	fmt.Fprintf(&out, "  bus creds: %s, %s (more edges and dispatchers: --nats-creds)\n",
		filepath.Join(natsDir, edgeCredsFile), filepath.Join(natsDir, dispatchCredsFile))
	fmt.Fprintf(&out, "  sealing:   certificates sealed to key %x (more edges: --project-open-key %s)\n",
		openKey.PublicKey().Bytes(), filepath.Join(natsDir, sealKeyFile))
	if o.accept006 {
		fmt.Fprintln(&out, "  006:       the demo project accepts legacy 006 tokens (--accept-006)")
	}
	fmt.Fprintf(&out, "  console:   %s%s (API: %s/api/v1/openapi.json; database %s)\n", url, console.UIPrefix, url, filepath.Join(o.dataDir, "console.db"))
	infoFile := filepath.Join(o.dataDir, devInfoFile)
	if newPassword {
		// Printed once, when it is new; it stays in dev.json.
		fmt.Fprintf(&out, "  log in:    %s with password %s (kept in %s; owner of the demo project)\n", owner.Email, owner.Password, infoFile)
	} else {
		fmt.Fprintf(&out, "  log in:    %s with the password in %s (owner of the demo project)\n", owner.Email, infoFile)
	}
	if admin != nil {
		fmt.Fprintf(&out, "  profiles:  http://%s/debug/pprof/ (--admin-listen)\n", admin)
	}
	slices.SortFunc(edges, func(a, b started) int { return strings.Compare(a.id, b.id) })
	for _, e := range edges {
		fmt.Fprintf(&out, "  edge:      %s (region %s) %s, media %s\n", e.id, e.region, e.url, e.media)
	}
	fmt.Fprintf(&out, "  scripts:   %s and %s (for a shell) name this network while it runs\n", infoFile, filepath.Join(o.dataDir, devEnvFile))
	// An example channel secret for trying things out: it is printed, never kept or used by the network, which
	// only ever sees ciphertext. Every member of a channel must use the same one.
	out.WriteString(tryCommands(url, proj.AppID, certFile, randomHex(32)))
	io.WriteString(env.stdout, out.String())

	<-runCtx.Done()
	o.log.Info("stopping")
	wg.Wait()
	return firstError(errs, nil)
}

// ownOrigins are the browser origins of dev's entry point: its URL, and the same port on localhost when it listens
// on loopback (a browser may be pointed at either).
func ownOrigins(scheme string, ln net.Listener) dispatch.Origins {
	addr := publicAddr(ln)
	out := dispatch.Origins{scheme + "://" + addr}
	if host, port, _ := net.SplitHostPort(addr); net.ParseIP(host).IsLoopback() {
		out = append(out, scheme+"://"+net.JoinHostPort("localhost", port))
	}
	return out
}

// devDispatcherID is the id of stoa dev's dispatcher.
const devDispatcherID = "dev-dispatcher"

// devEdgeID is the id of the i-th edge of region name: "<region>-<i>", or "edge-<i>" in the default layout.
func devEdgeID(regions []devRegion, name string, i int) string {
	if len(regions) == 1 && name == "local" {
		return fmt.Sprintf("edge-%d", i)
	}
	return fmt.Sprintf("%s-%d", name, i)
}

// The role-wide credentials stoa dev writes for extra processes, and the console's.
const (
	edgeCredsFile = "edge.creds"
	// sealKeyFile, beside the credentials, opens the App Certificates sealed on the bus: extra processes given
	// --nats-creds from that folder find it there (see roleFlags.openKeyFile).
	sealKeyFile       = "seal.key"
	dispatchCredsFile = "dispatch.creds"
	consoleCredsFile  = "console.creds"
)

// devCreds issues the credentials of stoa dev's bus.
type devCreds struct {
	auth    *busauth.Authority
	console []byte
}

func (d devCreds) issue(id busauth.Identity, reserved ...string) ([]byte, error) {
	return d.auth.Issue(id, cluster.Default().Prefix, reserved...)
}

// devCredentials loads or creates the bus authority in dir, issues the console's credentials, and writes the
// credentials for extra edges and dispatchers (any id in regions but this process's edges' and dispatcher's) and
// for operator commands (console.creds, e.g. for stoa cluster drain).
func devCredentials(dir string, regions, edgeIDs []string) (devCreds, error) {
	auth, err := busauth.LoadOrCreate(filepath.Join(dir, authorityFile))
	if err != nil {
		return devCreds{}, err
	}
	d := devCreds{auth: auth}
	if d.console, err = d.issue(busauth.Identity{Role: busauth.RoleConsole}); err != nil {
		return d, err
	}
	edgeCreds, err := d.issue(busauth.Identity{Role: busauth.RoleEdge, Regions: regions, AnyID: true}, edgeIDs...)
	if err != nil {
		return d, err
	}
	dispatchCreds, err := d.issue(busauth.Identity{Role: busauth.RoleDispatch, Regions: regions, AnyID: true}, devDispatcherID)
	if err != nil {
		return d, err
	}
	for name, b := range map[string][]byte{edgeCredsFile: edgeCreds, dispatchCredsFile: dispatchCreds, consoleCredsFile: d.console} {
		if err := writePrivate(filepath.Join(dir, name), b); err != nil {
			return d, err
		}
	}
	return d, nil
}

// writePrivate replaces the file at path with b, readable by the owner only.
func writePrivate(path string, b []byte) error {
	tmp := path + ".tmp"
	os.Remove(tmp) // WriteFile would keep an existing file's mode
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
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
