package relay

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/quic-go/quic-go"

	"github.com/stoa-rtc/stoa/internal/busauth"
)

const (
	defaultRetransmitBuffer = 1024
	defaultHealthInterval   = time.Second
	defaultHealthTimeout    = 5 * time.Second
	// handshakeTimeout bounds a dial with its hello exchange, and the wait for a dialler's hello.
	handshakeTimeout = 10 * time.Second
	// openTimeout bounds the wait for the open frame of a stream a peer opened.
	openTimeout = 10 * time.Second
	// minBackoff and maxBackoff bound the wait after a failed attempt to reach a peer; it doubles with each
	// failure and is forgotten on success.
	minBackoff, maxBackoff = 250 * time.Millisecond, 10 * time.Second
	// maxLinksPerConn is how many links a peer may hold open on one connection (QUIC streams).
	maxLinksPerConn = 4096
	// idleConnTimeout: a connection this end dialled is closed after this long without links.
	idleConnTimeout = 30 * time.Second
)

// Transport is this edge's relay endpoint. Create it with New.
type Transport struct {
	cfg               Config
	log               *slog.Logger
	udp               net.PacketConn
	qt                *quic.Transport
	ln                *quic.Listener
	qconf             *quic.Config
	serverTLS, client *tls.Config
	m                 *metrics
	idleTimeout       time.Duration // idleConnTimeout; shorter in tests

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	conns   map[string][]*conn     // peer "region/edge" → authenticated connections
	dials   map[string]*dialCall   // "region/edge@addr" → dial in progress
	backoff map[string]*backoffRec // "region/edge@addr" → last failure
	// mediaIDs maps the id this end chose for each connection to it (nil while its handshake runs); media
	// holds a copy for the media reader, replaced on every change.
	mediaIDs map[uint64]*conn
	media    atomic.Pointer[map[uint64]*conn]
}

type dialCall struct {
	done chan struct{}
	c    *conn
	err  error
}

type backoffRec struct {
	delay time.Duration
	until time.Time
	err   error
}

// New starts listening.
func New(cfg Config) (*Transport, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return start(cfg)
}

// start is New without the checks of cfg (tests use it to give a transport credentials New would refuse).
func start(cfg Config) (*Transport, error) {
	if cfg.RetransmitBuffer <= 0 {
		cfg.RetransmitBuffer = defaultRetransmitBuffer
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = defaultHealthInterval
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = defaultHealthTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cert, err := newCertificate()
	if err != nil {
		return nil, fmt.Errorf("relay: certificate: %w", err)
	}
	t := &Transport{cfg: cfg, log: cfg.Logger.With("component", "relay"), idleTimeout: idleConnTimeout,
		conns: map[string][]*conn{}, dials: map[string]*dialCall{}, backoff: map[string]*backoffRec{},
		mediaIDs: map[uint64]*conn{}}
	t.media.Store(&map[uint64]*conn{})
	t.serverTLS, t.client = tlsConfigs(cert)
	t.qconf = &quic.Config{
		KeepAlivePeriod:       cfg.HealthInterval,
		MaxIdleTimeout:        2 * cfg.HealthTimeout, // the health check is the one that fires, with its own error
		HandshakeIdleTimeout:  handshakeTimeout / 2,
		MaxIncomingStreams:    maxLinksPerConn,
		MaxIncomingUniStreams: -1,
	}
	if t.m, err = newMetrics(cfg.Metrics); err != nil {
		return nil, err
	}
	if t.udp, err = net.ListenPacket("udp", cfg.Addr); err != nil {
		t.m.unregister()
		return nil, fmt.Errorf("relay: %w", err)
	}
	t.qt = &quic.Transport{Conn: t.udp}
	if t.ln, err = t.qt.Listen(t.serverTLS, t.qconf); err != nil {
		t.qt.Close()
		t.udp.Close()
		t.m.unregister()
		return nil, fmt.Errorf("relay: %w", err)
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.wg.Go(t.acceptConns)
	t.wg.Go(t.readMedia)
	return t, nil
}

func (cfg *Config) check() error {
	var errs []error
	if cfg.Region == "" || cfg.EdgeID == "" {
		errs = append(errs, errors.New("relay: Region and EdgeID are required"))
	}
	if len(cfg.Region) > maxRegion || len(cfg.EdgeID) > maxEdgeID {
		errs = append(errs, fmt.Errorf("relay: Region (%d bytes) or EdgeID (%d bytes) too long", len(cfg.Region), len(cfg.EdgeID)))
	}
	if cfg.Credentials == nil {
		errs = append(errs, errors.New("relay: Credentials are required"))
	} else if id, ok := cfg.Credentials.Identity(); !ok || !id.Allows(busauth.RoleEdge, cfg.Region, cfg.EdgeID) {
		errs = append(errs, fmt.Errorf("relay: the credentials do not name edge %q of region %q", cfg.EdgeID, cfg.Region))
	}
	if cfg.Trust == nil {
		errs = append(errs, errors.New("relay: Trust is required"))
	}
	if cfg.Accept == nil {
		errs = append(errs, errors.New("relay: Accept is required"))
	}
	if cfg.HealthInterval > 0 && cfg.HealthTimeout > 0 && cfg.HealthTimeout <= cfg.HealthInterval {
		errs = append(errs, errors.New("relay: HealthTimeout must be longer than HealthInterval"))
	}
	return errors.Join(errs...)
}

// Addr returns the UDP address the transport listens on.
func (t *Transport) Addr() net.Addr { return t.udp.LocalAddr() }

func (p Peer) key() string { return p.Region + "/" + p.EdgeID }

// Open opens a link for channel (appID, channel) to peer, over the connection to peer if there is one, and
// otherwise dialling it; it fails if the peer cannot be reached, does not prove to be peer.EdgeID of
// peer.Region, or refuses the link.
//
// After a failed attempt to reach peer.Addr, Open fails at once with ErrBackoff until a delay has passed (250 ms,
// doubling with each failure up to 10 s, reset by a success), so that calling it again and again does not hammer
// the peer. If Open fails, h is never called.
func (t *Transport) Open(ctx context.Context, peer Peer, appID, channel string, h Handler) (*Link, error) {
	open := &frame{typ: frameOpen, appID: appID, channel: channel}
	if err := open.check(); err != nil {
		return nil, err
	}
	if peer.Region == "" || peer.EdgeID == "" {
		return nil, errors.New("relay: Open: the peer's region and edge id are required")
	}
	if peer.Region == t.cfg.Region && peer.EdgeID == t.cfg.EdgeID {
		return nil, errors.New("relay: Open: the peer is this edge")
	}
	for retried := false; ; retried = true {
		c, err := t.connTo(ctx, peer)
		if err != nil {
			return nil, err
		}
		l, err := c.openLink(ctx, open, h)
		if errors.Is(err, errConnGone) && !retried {
			continue // closed meanwhile (idle): dial again
		}
		return l, err
	}
}

// connTo returns a connection to peer, dialling it if there is none.
func (t *Transport) connTo(ctx context.Context, peer Peer) (*conn, error) {
	key, dk := peer.key(), peer.key()+"@"+peer.Addr
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	for _, c := range t.conns[key] {
		if c.usable() {
			t.mu.Unlock()
			return c, nil
		}
	}
	if b := t.backoff[dk]; b != nil && time.Now().Before(b.until) {
		t.mu.Unlock()
		return nil, fmt.Errorf("%w: %s: %w; next attempt in %s", ErrBackoff, key, b.err,
			time.Until(b.until).Round(time.Millisecond))
	}
	d := t.dials[dk]
	if d == nil {
		d = &dialCall{done: make(chan struct{})}
		t.dials[dk] = d
		t.wg.Go(func() { t.dial(d, dk, peer) })
	}
	t.mu.Unlock()
	select {
	case <-d.done:
		return d.c, d.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// dial runs one attempt to reach peer, shared by the Opens that wait for it, and records its outcome.
func (t *Transport) dial(d *dialCall, dk string, peer Peer) {
	ctx, cancel := context.WithTimeout(t.ctx, handshakeTimeout)
	defer cancel()
	c, err := t.dialConn(ctx, peer)
	now := time.Now()
	t.mu.Lock()
	delete(t.dials, dk)
	if err == nil {
		delete(t.backoff, dk)
	} else {
		b := t.backoff[dk]
		if b == nil || now.Sub(b.until) > maxBackoff { // a failure long after the last one starts afresh
			b = &backoffRec{}
			t.backoff[dk] = b
		}
		b.delay = min(max(2*b.delay, minBackoff), maxBackoff)
		b.until, b.err = now.Add(b.delay), err
	}
	t.mu.Unlock()
	d.c, d.err = c, err
	close(d.done)
}

// dialConn dials peer and runs the client side of the hello exchange.
func (t *Transport) dialConn(ctx context.Context, peer Peer) (*conn, error) {
	id := t.reserveMediaID()
	c, err := t.dialHello(ctx, peer, id)
	if err != nil {
		t.releaseMediaID(id)
	}
	return c, err
}

// dialHello is dialConn, with id the media id this end chose for the connection.
func (t *Transport) dialHello(ctx context.Context, peer Peer, id uint64) (*conn, error) {
	addr, err := resolve(ctx, peer.Addr)
	if err != nil {
		return nil, fmt.Errorf("relay: %s: %w", peer.key(), err)
	}
	qc, err := t.qt.Dial(ctx, addr, t.client, t.qconf)
	if err != nil {
		return nil, fmt.Errorf("relay: dial %s at %s: %w", peer.key(), peer.Addr, err)
	}
	fail := func(reason string, err error) (*conn, error) {
		t.refuse(qc, reason, err)
		return nil, err
	}
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		qc.CloseWithError(codeProtocol, "")
		return nil, fmt.Errorf("relay: %s: %w", peer.key(), err)
	}
	st.SetDeadline(deadline(ctx))
	tlsState := qc.ConnectionState().TLS
	exp, err := exporter(&tlsState)
	if err != nil {
		return fail(reasonProtocol, fmt.Errorf("relay: %s: TLS exporter: %w", peer.key(), err))
	}
	if _, err := st.Write(appendFrame(nil, newHello(t.cfg.Credentials, exp, roleClient, t.cfg.Region, t.cfg.EdgeID, id))); err != nil {
		qc.CloseWithError(codeProtocol, "")
		return nil, fmt.Errorf("relay: %s: %w", peer.key(), err)
	}
	fr := newFrameReader(st)
	f, err := fr.next()
	if err != nil {
		var ae *quic.ApplicationError
		if errors.As(err, &ae) && ae.Remote && ae.ErrorCode == codeUnauthenticated {
			return nil, fmt.Errorf("%w: %s refused this edge: %s", ErrRefused, peer.key(), ae.ErrorMessage)
		}
		if errors.Is(err, errMalformed) {
			return fail(reasonProtocol, fmt.Errorf("%w: %s: %w", errNoHello, peer.key(), err))
		}
		qc.CloseWithError(codeProtocol, "")
		return nil, fmt.Errorf("relay: %s: no hello: %w", peer.key(), err)
	}
	if f.typ != frameHello {
		return fail(reasonProtocol, fmt.Errorf("%w: %s sent %s", errNoHello, peer.key(), f.typ))
	}
	proven, err := checkHello(t.cfg.Trust, &f, exp, roleServer, &peer, time.Now())
	if err != nil {
		var ae *authError
		errors.As(err, &ae)
		return fail(ae.reason, err)
	}
	m, err := newMediaKeys(&tlsState, true, id, f.mediaID)
	if err != nil {
		return fail(reasonProtocol, fmt.Errorf("relay: %s: %w", peer.key(), err))
	}
	st.SetDeadline(time.Time{})
	proven.Addr = peer.Addr
	return t.addConn(qc, st, fr, proven, true, m)
}

// acceptConns accepts connections until the transport closes.
func (t *Transport) acceptConns() {
	for {
		qc, err := t.ln.Accept(t.ctx)
		if err != nil {
			return
		}
		t.wg.Go(func() { t.serve(qc) })
	}
}

// serve runs the server side of the hello exchange on a new connection.
func (t *Transport) serve(qc *quic.Conn) {
	ctx, cancel := context.WithTimeout(t.ctx, handshakeTimeout)
	defer cancel()
	st, err := qc.AcceptStream(ctx)
	if err != nil {
		t.refuse(qc, reasonProtocol, fmt.Errorf("%w: %w", errNoHello, err))
		return
	}
	st.SetDeadline(deadline(ctx))
	fr := newFrameReader(st)
	f, err := fr.next()
	if err == nil && f.typ != frameHello {
		err = fmt.Errorf("sent %s", f.typ)
	}
	if err != nil {
		t.refuse(qc, reasonProtocol, fmt.Errorf("%w: %w", errNoHello, err))
		return
	}
	tlsState := qc.ConnectionState().TLS
	exp, err := exporter(&tlsState)
	if err != nil {
		t.refuse(qc, reasonProtocol, fmt.Errorf("relay: TLS exporter: %w", err))
		return
	}
	peer, err := checkHello(t.cfg.Trust, &f, exp, roleClient, nil, time.Now())
	if err != nil {
		var ae *authError
		errors.As(err, &ae)
		t.refuse(qc, ae.reason, err)
		return
	}
	id := t.reserveMediaID()
	m, err := newMediaKeys(&tlsState, false, id, f.mediaID)
	if err != nil {
		t.releaseMediaID(id)
		t.refuse(qc, reasonProtocol, fmt.Errorf("relay: %w", err))
		return
	}
	if _, err := st.Write(appendFrame(nil, newHello(t.cfg.Credentials, exp, roleServer, t.cfg.Region, t.cfg.EdgeID, id))); err != nil {
		t.releaseMediaID(id)
		qc.CloseWithError(codeProtocol, "")
		return
	}
	st.SetDeadline(time.Time{})
	peer.Addr = qc.RemoteAddr().String()
	if _, err := t.addConn(qc, st, fr, peer, false, m); err != nil {
		t.releaseMediaID(id)
	}
}

// refuse closes a connection whose peer failed the hello exchange, and says why.
func (t *Transport) refuse(qc *quic.Conn, reason string, err error) {
	t.log.Warn("relay: peer refused", "addr", qc.RemoteAddr().String(), "reason", reason, "err", err)
	t.m.refused.WithLabelValues(reason).Inc()
	qc.CloseWithError(codeUnauthenticated, truncate(err.Error(), maxCloseReason))
}

// addConn starts an authenticated connection; the caller releases its media id if it fails.
func (t *Transport) addConn(qc *quic.Conn, st *quic.Stream, fr *frameReader, peer Peer, dialled bool, m mediaKeys) (*conn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		qc.CloseWithError(codeGoingAway, "shutting down")
		return nil, ErrClosed
	}
	c := newConn(t, qc, st, fr, peer, dialled, m)
	t.conns[c.key] = append(t.conns[c.key], c)
	t.mediaIDs[m.id] = c
	t.publishMediaIDs()
	c.start()
	t.log.Debug("relay: connected", "peer", c.key, "addr", peer.Addr, "dialled", dialled)
	return c, nil
}

// removeConn forgets a closed connection.
func (t *Transport) removeConn(c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mediaIDs, c.keys.id)
	t.publishMediaIDs()
	cs := t.conns[c.key]
	for i, x := range cs {
		if x == c {
			cs = append(cs[:i], cs[i+1:]...)
			break
		}
	}
	if len(cs) == 0 {
		delete(t.conns, c.key)
		t.m.forget(c.key)
	} else {
		t.conns[c.key] = cs
	}
}

// reserveMediaID picks a fresh random id for a connection whose handshake begins.
func (t *Transport) reserveMediaID() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b [8]byte
	for {
		rand.Read(b[:])
		id := binary.BigEndian.Uint64(b[:])
		if _, taken := t.mediaIDs[id]; id != 0 && !taken {
			t.mediaIDs[id] = nil
			return id
		}
	}
}

// releaseMediaID forgets the id of a handshake that failed.
func (t *Transport) releaseMediaID(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.mediaIDs[id]; ok && c == nil {
		delete(t.mediaIDs, id)
	}
}

// publishMediaIDs gives the media reader a copy of the connections by media id; t.mu is held.
func (t *Transport) publishMediaIDs() {
	m := make(map[uint64]*conn, len(t.mediaIDs))
	for id, c := range t.mediaIDs {
		if c != nil {
			m[id] = c
		}
	}
	t.media.Store(&m)
}

// Links returns the figures of every open link.
func (t *Transport) Links() []Stats {
	t.mu.Lock()
	var cs []*conn
	for _, v := range t.conns {
		cs = append(cs, v...)
	}
	t.mu.Unlock()
	var out []Stats
	for _, c := range cs {
		for _, l := range c.linkList() {
			out = append(out, l.Stats())
		}
	}
	return out
}

// Close closes every link and connection and stops listening. Each link's Handler.Closed gets an error wrapping
// ErrClosed, and the peers' handlers too. Close returns when every goroutine of the transport has ended, so it
// must not be called from a Handler.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	var cs []*conn
	for _, v := range t.conns {
		cs = append(cs, v...)
	}
	t.mu.Unlock()
	t.cancel()
	t.ln.Close()
	for _, c := range cs {
		c.close(codeGoingAway, ErrClosed)
	}
	t.wg.Wait()
	err := t.qt.Close()
	if cerr := t.udp.Close(); err == nil {
		err = cerr
	}
	t.m.unregister()
	return err
}

// resolve turns host:port into a UDP address, looking the host up if it is a name.
func resolve(ctx context.Context, hostport string) (*net.UDPAddr, error) {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return net.UDPAddrFromAddrPort(ap), nil
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("bad port in %q", hostport)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ips[0].Unmap(), uint16(p))), nil
}

func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// truncate shortens s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
