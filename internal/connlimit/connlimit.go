// Package connlimit bounds what one client can hold open on a server: a Listener that refuses connections beyond
// a cap per client address, and an HTTP server whose timeouts close slow requests and idle keep-alive
// connections. A client is an IPv4 address, or an IPv6 network of IPv6PrefixLen bits (a /64 by default, since one
// host usually has a whole /64 to pick addresses from).
package connlimit

import (
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Listener and the HTTP server of Server. Zero fields take the defaults of Default.
type Config struct {
	// MaxPerAddr is the most connections one client may hold open at once on one listener; further connections
	// are closed as soon as they are accepted, before any TLS handshake or request (default 200).
	MaxPerAddr int
	// IPv6PrefixLen is how many leading bits of an IPv6 address make one client (default 64, 32 to 128).
	IPv6PrefixLen int
	// Exempt lists ranges that are never capped: reverse proxies and load balancers that carry many clients.
	Exempt []netip.Prefix

	// ReadHeaderTimeout bounds reading a request's headers (default 10s).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included, so a client sending its body slowly is cut off
	// (default 30s). It does not bound the handler: once the request is read the deadline is lifted, so long
	// responses (CSV exports) and WebSockets live on.
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that waits this long for its next request (default 60s).
	IdleTimeout time.Duration
}

// Default returns the defaults.
func Default() Config {
	return Config{
		MaxPerAddr:        200,
		IPv6PrefixLen:     64,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
}

// withDefaults fills the zero fields of c from Default.
func (c Config) withDefaults() Config {
	d := Default()
	if c.MaxPerAddr == 0 {
		c.MaxPerAddr = d.MaxPerAddr
	}
	if c.IPv6PrefixLen == 0 {
		c.IPv6PrefixLen = d.IPv6PrefixLen
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = d.ReadTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	return c
}

// Validate reports every problem of the configuration at once. Zero fields are valid: they take the defaults.
func (c Config) Validate() error {
	var errs []error
	if c.MaxPerAddr < 0 {
		errs = append(errs, fmt.Errorf("connlimit: MaxPerAddr %d: must not be negative", c.MaxPerAddr))
	}
	if c.IPv6PrefixLen != 0 && (c.IPv6PrefixLen < 32 || c.IPv6PrefixLen > 128) {
		errs = append(errs, fmt.Errorf("connlimit: IPv6PrefixLen %d: want 32 to 128", c.IPv6PrefixLen))
	}
	for _, p := range c.Exempt {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("connlimit: Exempt: %v is not a valid prefix", p))
		}
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"ReadHeaderTimeout", c.ReadHeaderTimeout}, {"ReadTimeout", c.ReadTimeout}, {"IdleTimeout", c.IdleTimeout}} {
		if d.d < 0 {
			errs = append(errs, fmt.Errorf("connlimit: %s %v: must not be negative", d.name, d.d))
		}
	}
	return errors.Join(errs...)
}

// Listener caps the connections each client holds open at once. Wrap the plain TCP listener, before TLS, so that
// a refused connection costs no handshake (and so that net/http still sees the *tls.Conn it looks for).
type Listener struct {
	net.Listener
	max     int
	v6bits  int
	exempt  []netip.Prefix
	refused atomic.Uint64

	mu   sync.Mutex
	open map[netip.Prefix]int // client → connections open
}

// NewListener returns ln with the cap of cfg (only MaxPerAddr, IPv6PrefixLen and Exempt apply). cfg must be
// valid.
func NewListener(ln net.Listener, cfg Config) *Listener {
	cfg = cfg.withDefaults()
	exempt := make([]netip.Prefix, 0, len(cfg.Exempt))
	for _, p := range cfg.Exempt {
		exempt = append(exempt, netip.PrefixFrom(p.Addr().Unmap(), unmappedBits(p)).Masked())
	}
	return &Listener{Listener: ln, max: cfg.MaxPerAddr, v6bits: cfg.IPv6PrefixLen, exempt: exempt,
		open: map[netip.Prefix]int{}}
}

// unmappedBits is the length of p once its address is unmapped (an IPv4-mapped /120 is an IPv4 /24).
func unmappedBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(p.Bits()-96, 0)
	}
	return p.Bits()
}

// Accept waits for the next connection whose client is under the cap. Connections over the cap are closed at
// once and counted (Refused); Accept goes on waiting. A connection whose remote address is not an IP address (a
// Unix socket) is not counted.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, ok := l.client(c.RemoteAddr())
		if !ok {
			return c, nil
		}
		if !l.acquire(key) {
			l.refused.Add(1)
			c.Close()
			continue
		}
		return &conn{Conn: c, release: func() { l.release(key) }}, nil
	}
}

// Refused returns the number of connections refused so far.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// client returns the client of a remote address, and false if it is exempt or not an IP address.
func (l *Listener) client(a net.Addr) (netip.Prefix, bool) {
	var ip netip.Addr
	if t, ok := a.(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(t.IP)
	} else if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		ip = ap.Addr()
	}
	if !ip.IsValid() {
		return netip.Prefix{}, false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range l.exempt {
		if p.Contains(ip) {
			return netip.Prefix{}, false
		}
	}
	bits := 32
	if ip.Is6() {
		bits = l.v6bits
	}
	p, _ := ip.Prefix(bits)
	return p, true
}

func (l *Listener) acquire(key netip.Prefix) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key] >= l.max {
		return false
	}
	l.open[key]++
	return true
}

func (l *Listener) release(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

// conn gives its client's place back when it is closed (once, however often Close is called).
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// Server returns an HTTP server for h with the timeouts of c. Serve it on a Listener to cap connections too.
//
// ReadTimeout bounds the request only: net/http lifts the read deadline once the body has been read (when it
// starts watching for the client going away), and a hijacked connection (a WebSocket) has no deadline at all.
func (c Config) Server(h http.Handler, errorLog *log.Logger) *http.Server {
	c = c.withDefaults()
	return &http.Server{Handler: h, ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout: c.ReadTimeout, IdleTimeout: c.IdleTimeout, ErrorLog: errorLog}
}
