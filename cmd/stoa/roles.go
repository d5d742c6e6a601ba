package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stoa-rtc/stoa/internal/busauth"
	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/connlimit"
	"github.com/stoa-rtc/stoa/internal/dispatch"
	"github.com/stoa-rtc/stoa/internal/edge"
	"github.com/stoa-rtc/stoa/internal/guard"
	"github.com/stoa-rtc/stoa/internal/node"
	"github.com/stoa-rtc/stoa/internal/tlsutil"
)

// natsFlags say how to reach and authenticate to the cluster's NATS system.
type natsFlags struct {
	urls, creds, user, passwordFile, ca, cert, key, globalCluster string
	replicas                                                      int
}

func (f *natsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.urls, "nats", "", "NATS URL(s) of the region's cluster, comma-separated (stoa dev prints one; empty: an embedded server)")
	fs.StringVar(&f.creds, "nats-creds", "", "NATS credentials file (JWT + NKey)")
	fs.StringVar(&f.user, "nats-user", "", "NATS user name (with --nats-password-file)")
	fs.StringVar(&f.passwordFile, "nats-password-file", "", "file holding the NATS password")
	fs.StringVar(&f.ca, "nats-ca", "", "CA file (PEM) to verify the NATS servers")
	fs.StringVar(&f.cert, "nats-cert", "", "client certificate (PEM) for NATS servers that verify clients")
	fs.StringVar(&f.key, "nats-key", "", "key (PEM) of --nats-cert")
	fs.IntVar(&f.replicas, "nats-replicas", 1, "copies of every bucket within the region (3 in production)")
	fs.StringVar(&f.globalCluster, "global-cluster", "", "NATS cluster holding the global buckets (projects, keys, events)")
}

// config returns the cluster configuration of the flags.
func (f *natsFlags) config(region, node string, log *slog.Logger) cluster.Config {
	c := cluster.Default()
	if f.urls != "" {
		c.URLs = strings.Split(f.urls, ",")
	}
	c.CredentialsFile, c.User, c.PasswordFile = f.creds, f.user, f.passwordFile
	c.TLSCAFile, c.TLSCertFile, c.TLSKeyFile = f.ca, f.cert, f.key
	c.Replicas, c.GlobalCluster = f.replicas, f.globalCluster
	c.Region, c.Node, c.Logger = region, node, log
	return c
}

// roleFlags are the flags shared by the server roles that join a cluster.
type roleFlags struct {
	nats                                  natsFlags
	region, listen, id, dataDir, logLevel string
	tlsCert, tlsKey, allow                string
	projectKeys, projectOpenKey           string
	limits                                connlimit.Config
}

// allowed returns the --allow ranges.
func (f *roleFlags) allowed() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(f.allow, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, usagef("--allow: %q is not a CIDR range", s)
		}
		out = append(out, p)
	}
	return out, nil
}

// guard returns the DoS guard configuration of the flags.
func (f *roleFlags) guard() (guard.Config, error) {
	g := guard.Default()
	var err error
	if g.Allow, err = f.allowed(); err != nil {
		return g, err
	}
	return g, g.Validate()
}

// registerLimits declares the flags of the connection cap and the HTTP timeouts, with connlimit's defaults.
func registerLimits(fs *flag.FlagSet, c *connlimit.Config) {
	*c = connlimit.Default()
	fs.IntVar(&c.MaxPerAddr, "max-conns-per-addr", c.MaxPerAddr, "most connections one client address (IPv6: one /64) may hold open at once; more are closed at once")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", c.ReadTimeout, "time to read a whole request, body included (not the response; WebSockets are exempt)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "time a keep-alive connection may wait for its next request")
}

// checkLimits reports flags of registerLimits that are not positive.
func checkLimits(c connlimit.Config) error {
	if c.MaxPerAddr < 1 || c.ReadTimeout <= 0 || c.IdleTimeout <= 0 {
		return usagef("--max-conns-per-addr, --read-timeout and --idle-timeout must be positive")
	}
	return c.Validate()
}

func (f *roleFlags) register(fs *flag.FlagSet, role string) {
	f.nats.register(fs)
	fs.StringVar(&f.region, "region", "local", "region this "+role+" serves")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:0", "HTTP address ("+role+" API); TLS is required off loopback")
	fs.StringVar(&f.id, "id", "", "node id in the cluster (default: the id --nats-creds are issued for, or "+role+"-<random>)")
	fs.StringVar(&f.dataDir, "data", ".stoa-"+role, "directory for the self-signed certificate")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate file (PEM) for the listener")
	fs.StringVar(&f.tlsKey, "tls-key", "", "TLS key file (PEM) for the listener")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.allow, "allow", "", "trusted CIDR ranges exempt from rate limits and blocking, comma-separated (default: none)")
	fs.StringVar(&f.projectKeys, "project-keys", "", "the consoles' project keys (hex, comma-separated; stoa console prints its own): accept only projects they signed")
	registerLimits(fs, &f.limits)
	fs.StringVar(&f.projectOpenKey, "project-open-key", "", "file with the X25519 private key (hex) that opens the App Certificates the console sealed; created if missing (its public half goes to stoa console --project-seal-key)")
}

// start validates the flags, connects to the cluster and opens the listener.
// follow lists further regions whose edges the node must see (a dispatcher's fallback region).
func (f *roleFlags) start(ctx context.Context, env *cmdEnv, role string, follow ...string) (*cluster.Cluster, net.Listener, string, *slog.Logger, error) {
	log, err := newLogger(env.stderr, f.logLevel)
	if err != nil {
		return nil, nil, "", nil, err
	}
	// The --allow ranges (proxies, load balancers) are exempt from the connection cap as from the guard.
	if f.limits.Exempt, err = f.allowed(); err != nil {
		return nil, nil, "", nil, err
	}
	if err := checkLimits(f.limits); err != nil {
		return nil, nil, "", nil, err
	}
	if err := f.idFromCredentials(); err != nil {
		return nil, nil, "", nil, err
	}
	if f.id == "" {
		f.id = role + "-" + randomHex(4)
	}
	ccfg := f.nats.config(f.region, f.id, log)
	ccfg.Regions = follow
	if ccfg.ProjectKeys, err = parseProjectKeys(f.projectKeys); err != nil {
		return nil, nil, "", nil, err
	}
	if len(ccfg.ProjectKeys) == 0 {
		log.Warn("no --project-keys: any node that can write to the bus can publish projects and App Certificates")
	}
	if f.projectOpenKey == "" {
		f.projectOpenKey = sealKeyBesideCreds(f.nats.creds)
	}
	if f.projectOpenKey == "" {
		log.Warn("no --project-open-key: only projects whose App Certificates are in clear on the bus can be used")
	} else {
		key, created, err := loadOpenKey(f.projectOpenKey)
		if err != nil {
			return nil, nil, "", nil, err
		}
		ccfg.ProjectOpenKey = key
		if created {
			fmt.Fprintf(env.stdout, "project seal key: %x (created %s: copy it to every edge and dispatcher; give the key to stoa console --project-seal-key)\n",
				key.PublicKey().Bytes(), f.projectOpenKey)
		}
	}
	c, err := cluster.Start(ctx, ccfg)
	if err != nil {
		return nil, nil, "", nil, err
	}
	ln, scheme, err := listen(f.listen, f.dataDir, f.tlsCert, f.tlsKey, f.limits)
	if err != nil {
		c.Close()
		return nil, nil, "", nil, err
	}
	return c, ln, scheme, log, nil
}

// idFromCredentials takes the node's id from --nats-creds when they are issued for one id (stoa bus issue --id),
// and refuses an --id they do not allow: the node's heartbeats or key would be refused by every reader.
func (f *roleFlags) idFromCredentials() error {
	if f.nats.creds == "" {
		return nil
	}
	b, err := os.ReadFile(f.nats.creds)
	if err != nil {
		return fmt.Errorf("--nats-creds: %w", err)
	}
	c, err := busauth.ParseCredentials(b)
	if err != nil {
		return fmt.Errorf("--nats-creds: %w", err)
	}
	id, ok := c.Identity()
	switch {
	case !ok || id.AnyID || id.Role == busauth.RoleConsole:
	case f.id == "":
		f.id = id.ID
	case f.id != id.ID:
		return usagef("--id %q: the credentials are issued for %q", f.id, id.ID)
	}
	return nil
}

// sealKeyBesideCreds returns the seal key file that stoa dev keeps beside the credentials it hands to extra
// processes (DATA/nats/seal.key), or "" when there is none: --nats-creds alone is enough to join dev's network.
func sealKeyBesideCreds(creds string) string {
	if creds == "" {
		return ""
	}
	path := filepath.Join(filepath.Dir(creds), sealKeyFile)
	if _, err := os.Stat(path); err != nil {
		return ""
	}
	return path
}

// listen opens addr, with the connection cap of limits and TLS unless it is on loopback: the given certificate,
// or a self-signed one kept in dir. It returns the listener and "http" or "https".
func listen(addr, dir, certFile, keyFile string, limits connlimit.Config) (net.Listener, string, error) {
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	// The cap sits beneath the TLS: a refused connection costs no handshake, and net/http sees its *tls.Conn.
	var ln net.Listener = connlimit.NewListener(tcp, limits)
	if tlsutil.IsLoopback(ln.Addr().String()) && certFile == "" {
		return ln, "http", nil
	}
	var cert tls.Certificate
	if certFile != "" {
		cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	} else {
		host, _, _ := net.SplitHostPort(ln.Addr().String())
		cert, _, err = tlsutil.SelfSigned(filepath.Join(dir, "tls"), []string{host})
	}
	if err != nil {
		ln.Close()
		return nil, "", err
	}
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), "https", nil
}

// publicAddr is the address clients on this machine dial for a listener (an unspecified IP becomes loopback).
func publicAddr(ln net.Listener) string {
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func edgeCommand() *command {
	var (
		rf           roleFlags
		rtcAddr      string
		publicIPs    string
		qualityEvery time.Duration
		joinTimeout  time.Duration
		relayAddr    string
		maxSessions  int
		allowOrigin  string
		adminListen  string
	)
	return &command{
		name:    "edge",
		summary: "run an edge (SFU) that joins a cluster",
		usage: `stoa edge --nats URL --region NAME --listen ADDR [--id NAME] [--rtc-addr IP:PORT] [--public-ip IP,...]
          [--max-sessions N] [--admin-listen 127.0.0.1:PORT]

Serves WebSocket signaling at /v1/signal (plus /healthz, /metrics) on --listen and WebRTC media on
--rtc-addr (one UDP port, TCP fallback on the same number). Verifies tokens with the projects held in the
cluster (keeping the last copy while the bus is down), admits only clients holding a dispatcher's ticket
that names it, heart-beats its load (joined sessions / --max-sessions), announces its channels, and obeys
drain requests. Prints a line with "ready" and its id once serving. --admin-listen serves Go's profiles
(net/http/pprof) at /debug/pprof/ on a loopback address of its own, never on --listen.`,
		flags: func(fs *flag.FlagSet) {
			rf.register(fs, "edge")
			fs.StringVar(&rtcAddr, "rtc-addr", "", "UDP/TCP address for media (default: the listen IP, a free port)")
			fs.StringVar(&publicIPs, "public-ip", "", "addresses to advertise in ICE candidates (behind 1:1 NAT)")
			fs.DurationVar(&qualityEvery, "quality-interval", 10*time.Second, "how often each session's quality (loss, jitter, bitrate) is reported, 1s..5m")
			fs.DurationVar(&joinTimeout, "join-timeout", edge.Default().JoinTimeout, "time a signaling connection has to join before it is closed, 1s..1m")
			fs.StringVar(&relayAddr, "relay-addr", "", "UDP address for relay links to the other edges of a channel (default: the media IP, a free port); links need --nats-creds naming this edge")
			registerMaxSessions(fs, &maxSessions)
			fs.StringVar(&allowOrigin, "allow-origin", "*", "browser origins (scheme://host[:port], comma-separated; \"*\": any, tokens authorize) whose pages may open signaling WebSockets")
			registerAdminListen(fs, &adminListen)
		},
		run: func(ctx context.Context, args []string, env *cmdEnv) error {
			if err := env.parseNoArgs(args); err != nil {
				return err
			}
			origins, err := dispatch.ParseOrigins(allowOrigin)
			if err != nil {
				return usagef("edge: --allow-origin: %v", err)
			}
			if adminListen != "" {
				if err := checkAdminListen(adminListen); err != nil {
					return err
				}
			}
			if qualityEvery < time.Second || qualityEvery > 5*time.Minute {
				return usagef("edge: --quality-interval must be 1s..5m, not %s", qualityEvery)
			}
			if joinTimeout < time.Second || joinTimeout > time.Minute {
				return usagef("edge: --join-timeout must be 1s..1m, not %s", joinTimeout)
			}
			if err := checkMaxSessions(maxSessions); err != nil {
				return err
			}
			// An edge follows every region: the hubs of a channel link across them.
			c, ln, scheme, log, err := rf.start(ctx, env, "edge", "*")
			if err != nil {
				return err
			}
			defer c.Close()
			if adminListen != "" {
				addr, stop, err := startAdmin(adminListen)
				if err != nil {
					return err
				}
				defer stop()
				log.Info("admin listener", "profiles", "http://"+addr.String()+"/debug/pprof/")
			}
			if rtcAddr == "" {
				host, _, _ := net.SplitHostPort(ln.Addr().String())
				rtcAddr = net.JoinHostPort(host, "0")
			}
			g, err := rf.guard()
			if err != nil {
				return err
			}
			var ips []string
			if publicIPs != "" {
				ips = strings.Split(publicIPs, ",")
			}
			wsScheme := strings.Replace(scheme, "http", "ws", 1)
			signal := wsScheme + "://" + publicAddr(ln) + "/v1/signal"
			return node.RunEdge(ctx, node.EdgeConfig{Cluster: c, ID: rf.id, Region: rf.region, Listener: ln,
				SignalURL: signal, RTCAddr: rtcAddr, PublicIPs: ips, Guard: g, Logger: log, QualityInterval: qualityEvery,
				Limits: rf.limits, JoinTimeout: joinTimeout, RelayAddr: relayAddr, MaxSessions: maxSessions,
				AllowedOrigins: nonNil(origins)},
				func(e *edge.Server) {
					fmt.Fprintf(env.stdout, "stoa edge ready: id=%s region=%s url=%s media=%s\n", rf.id, rf.region, signal, e.RTCAddr())
				})
		},
	}
}

func dispatchCommand() *command {
	var (
		rf                               roleFlags
		fallback, regionMap, allowOrigin string
	)
	return &command{
		name:    "dispatch",
		summary: "run a dispatcher (scheduler) that joins a cluster",
		usage: `stoa dispatch --nats URL --region NAME --listen ADDR [--id NAME] [--fallback-region NAME]
              [--region-map FILE]

Serves POST /v1/dispatch: verifies the client's token, picks three healthy edges of the region (channel
affinity, load-aware; draining, dead and full edges never), and signs an edge ticket naming them. A client
that names no region is placed by its address with --region-map (lines "CIDR REGION", longest prefix
wins; unmatched addresses stay in --region). Abusive addresses are rate limited and blocked region-wide.
Dispatchers are stateless: run several per region. Prints a line with "ready" once serving.`,
		flags: func(fs *flag.FlagSet) {
			rf.register(fs, "dispatch")
			fs.StringVar(&fallback, "fallback-region", "", "region to use when this one has no healthy edge (default: none)")
			fs.StringVar(&allowOrigin, "allow-origin", "", "browser origins (scheme://host[:port], comma-separated, \"*\": any) whose pages may call /v1/dispatch (CORS; default: none)")
			fs.StringVar(&regionMap, "region-map", "", "file of \"CIDR REGION\" lines placing clients that name no region by their address (docs/deploy.md)")
		},
		run: func(ctx context.Context, args []string, env *cmdEnv) error {
			if err := env.parseNoArgs(args); err != nil {
				return err
			}
			rm, err := loadRegionMap(regionMap)
			if err != nil {
				return err
			}
			origins, err := dispatch.ParseOrigins(allowOrigin)
			if err != nil {
				return usagef("dispatch: --allow-origin: %v", err)
			}
			cfg := node.DispatcherConfig{Region: rf.region, Fallback: fallback, RegionMap: rm, AllowedOrigins: origins}
			c, ln, scheme, log, err := rf.start(ctx, env, "dispatch", cfg.Followed()...)
			if err != nil {
				return err
			}
			defer c.Close()
			g, err := rf.guard()
			if err != nil {
				ln.Close()
				return err
			}
			cfg.Cluster, cfg.ID, cfg.Listener, cfg.Limits, cfg.Guard, cfg.Logger = c, rf.id, ln, rf.limits, g, log
			d, err := node.NewDispatcher(cfg)
			if err != nil {
				ln.Close()
				return err
			}
			err = d.Run(ctx, func() {
				fmt.Fprintf(env.stdout, "stoa dispatch ready: id=%s region=%s url=%s://%s\n", rf.id, rf.region, scheme, publicAddr(ln))
			})
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
}

// nonNil returns o, or an empty list for nil: an edge given no --allow-origin at all allows no other origin,
// whereas edge.Config reads nil as its default, any origin.
func nonNil(o dispatch.Origins) []string {
	if o == nil {
		return []string{}
	}
	return o
}

// parseProjectKeys reads --project-keys: Ed25519 public keys in hex, comma-separated.
func parseProjectKeys(s string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, h := range strings.Split(s, ",") {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, usagef("--project-keys: %q is not an Ed25519 public key in hex (64 digits)", h)
		}
		keys = append(keys, ed25519.PublicKey(b))
	}
	return keys, nil
}
