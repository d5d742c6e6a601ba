package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
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
	"strings"
	"sync"
	"time"

	"github.com/stoa-rtc/stoa/internal/dispatch"
	"github.com/stoa-rtc/stoa/internal/edge"
	"github.com/stoa-rtc/stoa/internal/ticket"
	"github.com/stoa-rtc/stoa/internal/tlsutil"
	"github.com/stoa-rtc/stoa/token"
)

func devCommand() *command {
	var (
		listen, appID, appCert, dataDir, logLevel string
		rtcPort                                   int
	)
	return &command{
		name:    "dev",
		summary: "run a whole Stoa network on this machine, with zero configuration",
		usage: `stoa dev [--listen 127.0.0.1:PORT] [--app-id ID --app-cert CERT] [--data DIR] [--rtc-port N]

Starts an entry point (POST /v1/dispatch), an edge (WebSocket signaling at /v1/signal, WebRTC media on one
UDP port with TCP fallback) and a demo project. The project's App ID and App Certificate are generated on
the first run and kept in DIR, or taken from the flags. Prints "stoa dev ready" once everything listens,
then the URL and credentials. Listening on anything but loopback serves HTTPS with a self-signed
certificate kept in DIR. Ctrl-C drains and stops; a second Ctrl-C exits at once.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&listen, "listen", "127.0.0.1:7880", "HTTP address of the entry point and the edge's signaling")
			fs.StringVar(&appID, "app-id", "", "App ID of the demo project (default: generated, kept in --data)")
			fs.StringVar(&appCert, "app-cert", "", "App Certificate of the demo project (with --app-id)")
			fs.StringVar(&dataDir, "data", ".stoa-dev", "directory for the demo project and certificates")
			fs.IntVar(&rtcPort, "rtc-port", 0, "UDP (and TCP fallback) port for WebRTC media; 0 picks a free one")
			fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
		},
		run: func(ctx context.Context, args []string, env *cmdEnv) error {
			rest, err := env.parse(args)
			if err != nil {
				return err
			}
			if len(rest) > 0 {
				return usagef("unexpected argument %q", rest[0])
			}
			log, err := newLogger(env.stderr, logLevel)
			if err != nil {
				return err
			}
			if (appID == "") != (appCert == "") {
				return usagef("give both --app-id and --app-cert, or neither")
			}
			if rtcPort < 0 || rtcPort > 65535 {
				return usagef("--rtc-port must be 0..65535")
			}
			return runDev(ctx, env, devOptions{listen: listen, appID: appID, appCert: appCert, dataDir: dataDir,
				rtcPort: rtcPort, log: log})
		},
	}
}

type devOptions struct {
	listen, appID, appCert, dataDir string
	rtcPort                         int
	log                             *slog.Logger
}

// devProject is the demo project kept in the data directory.
type devProject struct {
	AppID   string `json:"app_id"`
	AppCert string `json:"app_cert"`
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
	verifier := token.NewVerifier()
	verifier.SetCertificates(proj.AppID, proj.AppCert)

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	host, _, _ := net.SplitHostPort(addr)
	scheme, wsScheme := "http", "ws"
	var certPath string
	if !tlsutil.IsLoopback(addr) {
		cert, path, err := tlsutil.SelfSigned(filepath.Join(o.dataDir, "tls"), []string{host})
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme, wsScheme, certPath = "https", "wss", path
	}
	// The entry point signs an edge ticket for every client it schedules, and the edge admits only those.
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		ln.Close()
		return err
	}
	var ticketKeys ticket.Keys
	ticketKeys.Set("dev-dispatcher", pub)
	e, err := edge.New(edge.Config{ID: "edge-1", Region: "local", RTCAddr: net.JoinHostPort(host, fmt.Sprint(o.rtcPort)),
		Verifier: verifier, Tickets: &ticketKeys, Logger: o.log})
	if err != nil {
		ln.Close()
		return err
	}
	publicHost := host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		publicHost = "127.0.0.1" // what a client on this machine dials; remote clients use the machine's address
	}
	url := fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(publicHost, portOf(addr)))
	signalURL := fmt.Sprintf("%s://%s/v1/signal", wsScheme, net.JoinHostPort(publicHost, portOf(addr)))

	mux := http.NewServeMux()
	edgeHandler := e.Handler()
	mux.Handle("/v1/signal", edgeHandler)
	mux.Handle("/healthz", edgeHandler)
	mux.Handle("/metrics", edgeHandler)
	mux.Handle("/v1/dispatch", &dispatch.Handler{Verifier: verifier, Logger: o.log,
		Signer: &dispatch.Signer{KID: "dev-dispatcher", Key: priv},
		Edges: func(dispatch.Request) (string, []dispatch.Edge, error) {
			return "local", []dispatch.Edge{{ID: e.ID(), Region: "local", URL: signalURL}}, nil
		}})
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Stoa dev network\n\nPOST %s/v1/dispatch  {app_id, channel, uid, token}\nsignaling %s\n", url, signalURL)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(o.log.Handler(), slog.LevelWarn)}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- err
			stop()
		}
	}()
	go func() {
		defer wg.Done()
		if err := e.Run(runCtx); err != nil {
			errs <- err
		}
	}()

	fmt.Fprintln(env.stdout, "stoa dev ready")
	fmt.Fprintf(env.stdout, "  url:       %s\n", url)
	fmt.Fprintf(env.stdout, "  app id:    %s\n", proj.AppID)
	fmt.Fprintf(env.stdout, "  app cert:  %s\n", proj.AppCert)
	fmt.Fprintf(env.stdout, "  media:     %s (UDP, TCP fallback)\n", e.RTCAddr())
	if certPath != "" {
		fmt.Fprintf(env.stdout, "  tls:       self-signed %s\n", certPath)
	}
	// An example channel secret for trying things out: it is printed, never kept or used by the network, which
	// only ever sees ciphertext. Every member of a channel must use the same one.
	fmt.Fprintf(env.stdout, "  try:       stoa join --url %s --app-id %s --app-cert %s --channel demo --uid 1 --publish audio,video --subscribe --e2ee-secret %s\n",
		url, proj.AppID, proj.AppCert, randomHex(32))

	<-runCtx.Done()
	o.log.Info("stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stop()
	err = srv.Shutdown(shutdownCtx)
	wg.Wait()
	close(errs)
	for e := range errs {
		err = errors.Join(err, e)
	}
	return err
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
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
