package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/nats-io/nats-server/v2/server"
)

// startEmbedded starts a standalone NATS server with JetStream as c.cfg.Embedded says and waits until it accepts
// connections (no sleeping: the server reports readiness).
func (c *Cluster) startEmbedded() error {
	e := c.cfg.Embedded
	host, port, err := splitListen(e.Listen)
	if err != nil {
		return fmt.Errorf("cluster: embedded.listen: %w", err)
	}
	dir := e.StoreDir
	if dir == "" {
		// Even memory storage wants a directory; without one the server would pick a shared one under /tmp.
		if dir, err = os.MkdirTemp("", "stoa-nats-*"); err != nil {
			return fmt.Errorf("cluster: embedded store: %w", err)
		}
		c.tmpDir = dir
	}
	opts := &server.Options{
		ServerName:         c.cfg.Node,
		Host:               host,
		Port:               port,
		JetStream:          true,
		StoreDir:           dir,
		JetStreamMaxMemory: e.MaxMemory,
		JetStreamMaxStore:  e.MaxStore,
		NoSigs:             true,
		MaxPayload:         1 << 20,
	}
	if e.Authority != nil {
		if err := e.Authority.ServerOptions(opts); err != nil {
			return fmt.Errorf("cluster: embedded server: %w", err)
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("cluster: embedded server: %w", err)
	}
	s.SetLoggerV2(serverLog{c.log.With("component", "nats-server")}, false, false, false)
	s.Start()
	if !s.ReadyForConnections(e.ReadyTimeout) {
		s.Shutdown()
		s.WaitForShutdown()
		return fmt.Errorf("cluster: embedded server not ready after %s", e.ReadyTimeout)
	}
	c.srv = s
	c.log.Info("embedded NATS server ready", "url", s.ClientURL(), "store", dir)
	return nil
}

// serverLog passes the NATS server's logs to slog. Its notices (a screenful at start-up) are debug-level here.
type serverLog struct{ l *slog.Logger }

func (s serverLog) logf(level slog.Level, format string, v []any) {
	if s.l.Enabled(context.Background(), level) {
		s.l.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

func (s serverLog) Noticef(format string, v ...any) { s.logf(slog.LevelDebug, format, v) }
func (s serverLog) Warnf(format string, v ...any)   { s.logf(slog.LevelWarn, format, v) }
func (s serverLog) Fatalf(format string, v ...any)  { s.logf(slog.LevelError, format, v) }
func (s serverLog) Errorf(format string, v ...any)  { s.logf(slog.LevelError, format, v) }
func (s serverLog) Debugf(format string, v ...any)  { s.logf(slog.LevelDebug-4, format, v) }
func (s serverLog) Tracef(format string, v ...any)  { s.logf(slog.LevelDebug-8, format, v) }
