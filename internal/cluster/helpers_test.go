package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/clustertest"
)

// bus is a NATS system the tests run against.
type bus struct {
	name   string
	url    string
	prefix string
	srv    *clustertest.Server // nil for the external server
	legacy bool                // emulate key expiry (as with servers before 2.11)
}

// buses runs f, in parallel, against an in-process server with per-message TTLs, another with the expiry
// emulation, and, when STOA_TEST_NATS is set, the external server (with unique names, deleted afterwards).
func buses(t *testing.T, f func(t *testing.T, b bus)) {
	for _, mode := range []string{"inproc", "inproc-legacy", "external"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel() // each mode has its own server or prefix
			b := bus{name: mode, prefix: clustertest.Prefix(t)}
			switch mode {
			case "external":
				b.url = clustertest.External(t)
				clustertest.DeletePrefix(t, b.url, b.prefix)
			default:
				b.srv = clustertest.NewServer(t)
				b.url = b.srv.URL()
				b.legacy = mode == "inproc-legacy"
			}
			f(t, b)
		})
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("STOA_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

// node starts a Cluster on b in region, closed by t.Cleanup.
func (b bus) node(t testing.TB, region, name string, mod ...func(*Config)) *Cluster {
	t.Helper()
	cfg := Default()
	cfg.URLs = []string{b.url}
	cfg.Region = region
	cfg.Node = name
	cfg.Prefix = b.prefix
	cfg.NoMessageTTL = b.legacy
	cfg.EventMaxBytes = 8 << 20
	cfg.Logger = testLogger(t)
	for _, f := range mod {
		f(&cfg)
	}
	return start(t, cfg)
}

func start(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// errorf makes Eventually conditions short.
func errorf(ok bool, format string, a ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(format, a...)
}
