package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stoa-rtc/stoa/internal/audit"
	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/connlimit"
	"github.com/stoa-rtc/stoa/internal/console"
	"github.com/stoa-rtc/stoa/internal/store"
)

func consoleCommand() *command {
	var (
		nf                              natsFlags
		addr, db, dataDir, logLevel     string
		tlsCert, tlsKey, region, nodeID string
		useCluster                      bool
		retain                          retentionFlags
		publicURL, sealKey              string
		smtp                            console.SMTPConfig
		smtpPassword                    *secretFlag
		limits                          connlimit.Config
	)
	return &command{
		name:    "console",
		summary: "run the console: web UI and REST API (accounts, projects, logs, analytics, audit)",
		usage: `stoa console --db PATH_OR_DSN [--listen ADDR] [--data DIR] [--nats URL] [--retain-media-logs 365d] ...

Serves the console's web UI under /console/ and its REST API under /api/v1 (described by /api/v1/openapi.json)
on --listen, with TLS off loopback.
--db is a SQLite file or a postgres:// DSN. --data holds console.key (encrypts App Certificates at rest),
audit.key (signs the audit log's head and checkpoints; its public half is logged at start for stoa audit verify
--trusted-key), project.key (signs the projects it publishes; its public half, printed as "project key:", goes to
edges and dispatchers as --project-keys) and the self-signed TLS certificate. With --project-seal-key, App
Certificates are sealed to the edges' and dispatchers' key before they reach the bus. Project
changes are published to the cluster at --nats; without --nats (and without --cluster) they stay in the
database. Prints a line with "ready" and the URL once serving. Once a day, and at start, data older than its --retain-* period is
deleted; no period may exceed 730 days (two years).`,
		flags: func(fs *flag.FlagSet) {
			nf.register(fs)
			fs.StringVar(&addr, "listen", "127.0.0.1:0", "HTTP address; TLS is required off loopback")
			fs.StringVar(&db, "db", "", "SQLite file or postgres:// DSN (required)")
			fs.StringVar(&dataDir, "data", ".stoa-console", "directory for the console's keys and TLS certificate")
			fs.StringVar(&tlsCert, "tls-cert", "", "TLS certificate file (PEM) for the listener")
			fs.StringVar(&tlsKey, "tls-key", "", "TLS key file (PEM) for the listener")
			fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
			fs.StringVar(&region, "region", "local", "region of the console's cluster connection")
			fs.StringVar(&nodeID, "id", "", "node id in the cluster (default: console-<random>)")
			fs.BoolVar(&useCluster, "cluster", false, "publish projects to an embedded cluster when --nats is empty")
			fs.StringVar(&sealKey, "project-seal-key", "", "X25519 public key (hex) of the edges and dispatchers (their --project-open-key prints it): App Certificates are sealed to it on the bus")
			retain.register(fs)
			registerLimits(fs, &limits)
			fs.StringVar(&publicURL, "public-url", "", "the console's address as users reach it: links in mails start with it, and the console answers only to its host name (and, on loopback, to loopback names)")
			fs.StringVar(&smtp.Addr, "smtp", "", "SMTP server host:port for invitations and password resets (STARTTLS required off loopback); without it, mails are dropped")
			fs.StringVar(&smtp.From, "smtp-from", "", "sender address of the console's mails")
			fs.StringVar(&smtp.Username, "smtp-user", "", "SMTP user name")
			smtpPassword = newSecretFlag(fs, "smtp-password", "STOA_SMTP_PASSWORD", "SMTP password")
		},
		run: func(ctx context.Context, args []string, env *cmdEnv) error {
			if err := env.parseNoArgs(args); err != nil {
				return err
			}
			if db == "" {
				return usagef("console: --db is required")
			}
			retention, err := retain.value()
			if err != nil {
				return err
			}
			if err := checkLimits(limits); err != nil {
				return err
			}
			log, err := newLogger(env.stderr, logLevel)
			if err != nil {
				return err
			}
			var mailer console.Mailer
			if smtp.Addr != "" {
				if smtp.Password, err = smtpPassword.get(); err != nil {
					return err
				}
				if _, port, _ := net.SplitHostPort(smtp.Addr); port == "465" {
					smtp.ImplicitTLS = true // submissions over TLS (RFC 8314)
				}
				if mailer, err = console.NewSMTPMailer(smtp); err != nil {
					return usagef("%v", err)
				}
			}
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				return err
			}
			var clusterHandle console.Cluster
			if nf.urls != "" || useCluster {
				if nodeID == "" {
					nodeID = "console-" + randomHex(4)
				}
				ccfg := nf.config(region, nodeID, log)
				if ccfg.ProjectSigner, err = projectSigner(dataDir); err != nil {
					return err
				}
				ccfg.ProjectKeys = []ed25519.PublicKey{ccfg.ProjectSigner.Public().(ed25519.PublicKey)}
				if sealKey == "" {
					log.Warn("no --project-seal-key: App Certificates are published on the bus in clear")
				} else if ccfg.ProjectSealKey, err = parseSealKey(sealKey); err != nil {
					return err
				}
				c, err := cluster.Start(ctx, ccfg)
				if err != nil {
					return err
				}
				defer c.Close()
				clusterHandle = c
				fmt.Fprintf(env.stdout, "project key: %x (give it to edges and dispatchers: --project-keys)\n", ccfg.ProjectKeys[0])
			}
			ln, scheme, err := listen(addr, dataDir, tlsCert, tlsKey, limits)
			if err != nil {
				return err
			}
			base := scheme + "://" + publicAddr(ln)
			hosts, err := consoleHosts(ln.Addr(), publicURL)
			if err != nil {
				ln.Close()
				return err
			}
			if hosts == nil {
				log.Warn("no --public-url: the console answers to any Host header and mails carry the listener's address")
			}
			if publicURL == "" {
				publicURL = base
			}
			cs, closeDB, err := openConsole(ctx, consoleOptions{db: db, dataDir: dataDir, cluster: clusterHandle,
				secure: scheme == "https", retain: retention, mailer: mailer, publicURL: strings.TrimSuffix(publicURL, "/"),
				hosts: hosts, log: log})
			if err != nil {
				ln.Close()
				return err
			}
			defer closeDB()
			srv := limits.Server(cs.Handler(), slog.NewLogLogger(log.Handler(), slog.LevelDebug))
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			fmt.Fprintf(env.stdout, "stoa console ready: url=%s/api/v1/ ui=%s%s\n", base, base, console.UIPrefix)
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = srv.Shutdown(sctx)
			if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
				err = errors.Join(err, serr)
			}
			return err
		},
	}
}

// loadKey reads the Ed25519 seed in path, creating it (mode 0600) if missing.
func loadKey(path string) (ed25519.PrivateKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		_, werr := f.Write(seed)
		if err := errors.Join(werr, f.Close()); err != nil {
			return nil, err
		}
		return ed25519.NewKeyFromSeed(seed), nil
	case errors.Is(err, fs.ErrExist):
		return readKey(path)
	}
	return nil, err
}

// readKey reads the Ed25519 seed in path.
func readKey(path string) (ed25519.PrivateKey, error) {
	seed, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("key file %s holds %d bytes, want %d", path, len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// retentionFlags are the --retain-* flags of stoa console and stoa dev, one per category of store.Retention.
type retentionFlags struct {
	r store.Retention
}

// retentionFlagNames maps the categories of store.Retention to their flags.
var retentionFlagNames = map[string]string{
	"media_logs": "retain-media-logs",
	"analytics":  "retain-analytics",
	"access_log": "retain-access-log",
	"audit_log":  "retain-audit-log",
}

// register declares the flags on fs, with store.DefaultRetention as their defaults.
func (f *retentionFlags) register(fs *flag.FlagSet) {
	f.r = store.DefaultRetention()
	for _, v := range []struct {
		name, help string
		d          *time.Duration
	}{
		{"retain-media-logs", "keep media server logs this long (days such as 90d, or a duration such as 720h)", &f.r.MediaLogs},
		{"retain-analytics", "keep analytics this long", &f.r.Analytics},
		{"retain-access-log", "keep the console access log (logins) this long", &f.r.AccessLog},
		{"retain-audit-log", "keep audit log entries this long", &f.r.AuditLog},
	} {
		fs.Var((*periodFlag)(v.d), v.name, v.help+"; at most 730d")
	}
}

// value returns the retention the flags set, or a usage error naming every flag out of range.
func (f *retentionFlags) value() (store.Retention, error) {
	var problems []string
	for _, c := range f.r.Categories() {
		switch name := retentionFlagNames[c.Name]; {
		case c.Period <= 0:
			problems = append(problems, fmt.Sprintf("--%s %s: must be positive", name, store.FormatPeriod(c.Period)))
		case c.Period > store.MaxRetention:
			problems = append(problems, fmt.Sprintf("--%s %s: more than the maximum of 730 days (two years)", name, store.FormatPeriod(c.Period)))
		}
	}
	if len(problems) > 0 {
		return store.Retention{}, usagef("%s", strings.Join(problems, "; "))
	}
	return f.r, f.r.Validate()
}

// periodFlag is a retention period flag: days such as 90d, or a Go duration.
type periodFlag time.Duration

func (p *periodFlag) String() string { return store.FormatPeriod(time.Duration(*p)) }

func (p *periodFlag) Set(s string) error {
	d, err := store.ParsePeriod(s)
	if err != nil {
		return errors.New("want days such as 90d, or a duration such as 720h")
	}
	*p = periodFlag(d)
	return nil
}

// consoleOptions configure openConsole.
type consoleOptions struct {
	db, dataDir string          // SQLite file or postgres:// DSN; the directory of audit.key and console.key
	cluster     console.Cluster // where projects are published; nil keeps them in the database
	secure      bool            // served over HTTPS
	retain      store.Retention
	mailer      console.Mailer // sends invitations and password resets; nil drops them with a warning
	publicURL   string         // the console's address as its users reach it, for links in mails
	hosts       []string       // the Host headers it answers to (see consoleHosts); nil: any
	// adoptHead signs an audit head written before signed heads at start (stoa dev, whose data directory may
	// predate them); a production console leaves that to the operator's stoa audit sign-head.
	adoptHead bool
	log       *slog.Logger
}

// openConsole opens the console's database (migrating it), its audit log signed with the key kept in
// dataDir/audit.key, and the console whose certificates are encrypted with dataDir/console.key, which purges
// data older than retain at once and then daily. Its close function stops the ingester and the purge before
// closing the database.
func openConsole(ctx context.Context, o consoleOptions) (*console.Console, func(), error) {
	db, dataDir, c, log := o.db, o.dataDir, o.cluster, o.log
	sdb, err := store.Open(ctx, db)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*console.Console, func(), error) {
		sdb.Close()
		return nil, nil, err
	}
	auditKey, err := loadKey(filepath.Join(dataDir, "audit.key"))
	if err != nil {
		return fail(err)
	}
	al, err := audit.New(audit.Config{DB: sdb, Key: auditKey})
	if err != nil {
		return fail(err)
	}
	// stoa audit verify --trusted-key takes this public half where audit.key is not beside the database.
	log.Info("audit log signed by audit.key", "key_id", audit.KeyID(al.PublicKey()), "public_key", hex.EncodeToString(al.PublicKey()))
	if err := al.CheckHead(ctx); err != nil && o.adoptHead {
		if err := al.SignHead(ctx); err != nil {
			return fail(err)
		}
		log.Warn("signed the audit log's head, written before heads were signed")
	} else if err != nil {
		log.Error("audited changes will fail until the audit log's head is signed by audit.key: check the log, then run stoa audit sign-head", "err", err)
	}
	cs, err := console.New(console.Config{DB: sdb, Cluster: c, Audit: al, KeyFile: filepath.Join(dataDir, "console.key"),
		Secure: o.secure, Logger: log, Retention: o.retain, Mailer: o.mailer, PublicURL: o.publicURL, Hosts: o.hosts})
	if err != nil {
		return fail(err)
	}
	// Records the cluster lacks, or holds in an older format, go out again before anything is served.
	if err := cs.Republish(ctx); err != nil {
		return fail(err)
	}
	// With a cluster, the console ingests the network's events into its media server logs; closing waits for the
	// ingester and the purge before the database closes, so no event is half stored.
	ictx, stopIngest := context.WithCancel(context.Background())
	ingested := make(chan struct{})
	if cc, ok := c.(*cluster.Cluster); ok && cc != nil {
		go func() {
			defer close(ingested)
			if err := cs.RunIngest(ictx, cc); err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("event ingestion stopped", "err", err)
			}
		}()
	} else {
		close(ingested)
	}
	purged := make(chan struct{})
	go func() {
		defer close(purged)
		cs.RunPurge(ictx, console.PurgeEvery)
	}()
	return cs, func() {
		stopIngest()
		<-ingested
		<-purged
		sdb.Close()
	}, nil
}

// consoleHosts returns the Host headers a console listening on addr answers to: the loopback names with its port
// when it listens on loopback (so that no DNS-rebinding page can reach it under another name), and the host of
// publicURL when one is given. nil, when it listens elsewhere without a public URL, answers any Host.
func consoleHosts(addr net.Addr, publicURL string) ([]string, error) {
	var hosts []string
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsLoopback() {
		port := strconv.Itoa(tcp.Port)
		for _, h := range []string{"127.0.0.1", "localhost", "::1", tcp.IP.String()} {
			hosts = append(hosts, net.JoinHostPort(h, port))
		}
	}
	if publicURL != "" {
		u, err := url.Parse(publicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, usagef("console: --public-url must be like https://console.example.com, not %q", publicURL)
		}
		hosts = append(hosts, u.Host)
	}
	return hosts, nil
}

// projectSigner returns the key with which a console signs the projects it publishes (dataDir/project.key, created
// if missing): edges and dispatchers given its public half (--project-keys) accept no project without it.
func projectSigner(dataDir string) (ed25519.PrivateKey, error) {
	return loadKey(filepath.Join(dataDir, "project.key"))
}
