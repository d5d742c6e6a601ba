package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// Application error codes of a connection (CONNECTION_CLOSE), with a reason text.
const (
	codeNormal          quic.ApplicationErrorCode = 0 // nothing wrong: an idle connection closed
	codeUnauthenticated quic.ApplicationErrorCode = 1 // the peer's hello was refused
	codeProtocol        quic.ApplicationErrorCode = 2 // the peer broke the protocol
	codeHealth          quic.ApplicationErrorCode = 3 // the peer answered no health check in time
	codeGoingAway       quic.ApplicationErrorCode = 4 // the transport is closing
)

// Stream error codes (RESET_STREAM, STOP_SENDING) of a link's stream.
const (
	streamEnded     quic.StreamErrorCode = 1 // the link has ended
	streamProtocol  quic.StreamErrorCode = 2 // the first frame was not an open
	streamCancelled quic.StreamErrorCode = 3 // Open's context ended
)

const (
	// maxCloseReason bounds the reason text of a CONNECTION_CLOSE.
	maxCloseReason = 256
	// tickInterval is how often a connection scans its links for gaps to ask for.
	tickInterval = 10 * time.Millisecond
	// sampleInterval is how often the bitrate and loss windows take a sample.
	sampleInterval = time.Second
	// mediaQueue and resendQueue bound the media packets waiting for the socket, first transmissions and
	// retransmissions; beyond them packets are dropped, as a full router queue would.
	mediaQueue, resendQueue = 512, 256
	// maxQueueDelay is how long a media packet may wait for the socket (when this end sends faster than its
	// uplink): one that waited longer is dropped, since late media is useless and the queue must not grow into
	// seconds of delay.
	maxQueueDelay = 150 * time.Millisecond
)

// errConnGone is a connection that closed, or began to, between its lookup and its use.
var errConnGone = errors.New("relay: connection closing")

// conn is an authenticated connection to a peer: the links on it, its media packets and its health check.
type conn struct {
	t       *Transport
	qc      *quic.Conn
	peer    Peer // proven; Addr as dialled, or where the connection came from
	key     string
	dialled bool
	log     *slog.Logger
	pm      *peerMetrics
	started time.Time

	ctrl   *quic.Stream // the connection stream: hello, then health checks
	ctrlR  *frameReader
	ctrlMu sync.Mutex // serialises writes on ctrl
	ctrlB  []byte

	links     atomic.Pointer[map[uint64]*Link] // by stream id; copied on write, read for every media packet
	mu        sync.Mutex                       // guards writes to links, closing, idleSince
	closing   bool
	idleSince time.Time

	keys          mediaKeys
	media, resend chan dgramJob  // to the media sender
	rx            chan *mediaBuf // from the transport's media reader

	rtt      atomic.Int64 // last health check round trip, ns
	lastPong atomic.Int64 // when the last answer came, ns after started
	closeErr atomic.Pointer[error]
}

// dgramJob asks the media sender for packet seq of a track.
type dgramJob struct {
	out    *OutTrack
	seq    uint64
	queued time.Time
	resend bool
}

func newConn(t *Transport, qc *quic.Conn, ctrl *quic.Stream, ctrlR *frameReader, peer Peer, dialled bool, keys mediaKeys) *conn {
	key := peer.key()
	c := &conn{t: t, qc: qc, peer: peer, key: key, dialled: dialled, log: t.log.With("peer", key),
		pm: t.m.peer(key), started: time.Now(), ctrl: ctrl, ctrlR: ctrlR,
		keys: keys, media: make(chan dgramJob, mediaQueue), resend: make(chan dgramJob, resendQueue),
		rx: make(chan *mediaBuf, rxQueue)}
	c.idleSince = c.started
	c.links.Store(&map[uint64]*Link{})
	return c
}

func (c *conn) start() {
	for _, f := range []func(){c.acceptLinks, c.readMedia, c.sendMedia, c.readCtrl, c.loop} {
		c.t.wg.Go(f)
	}
}

// usable reports whether new links may use c.
func (c *conn) usable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.closing && c.qc.Context().Err() == nil
}

// close closes the connection, err being what its links report (unless the peer closed it first).
func (c *conn) close(code quic.ApplicationErrorCode, err error) {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	if c.closeErr.CompareAndSwap(nil, &err) {
		c.qc.CloseWithError(code, truncate(err.Error(), maxCloseReason))
	}
}

// connErr reports whether err, from a stream, is the end of the whole connection.
func connErr(err error) bool {
	var (
		ae    *quic.ApplicationError
		te    *quic.TransportError
		idle  *quic.IdleTimeoutError
		reset *quic.StatelessResetError
	)
	return errors.As(err, &ae) || errors.As(err, &te) || errors.As(err, &idle) || errors.As(err, &reset) ||
		errors.Is(err, quic.ErrTransportClosed)
}

// lostErr explains why the connection ended, for its links; seen is the error that showed it.
func (c *conn) lostErr(seen error) error {
	if e := c.closeErr.Load(); e != nil {
		return *e
	}
	cause := context.Cause(c.qc.Context())
	if cause == nil {
		cause = seen
	}
	var ae *quic.ApplicationError
	var idle *quic.IdleTimeoutError
	switch {
	case errors.As(cause, &ae) && ae.Remote && ae.ErrorCode == codeGoingAway:
		return fmt.Errorf("%w: %s shut down", ErrClosed, c.key)
	case errors.As(cause, &ae) && ae.Remote:
		return fmt.Errorf("relay: %s closed the connection (code %d): %s", c.key, ae.ErrorCode, ae.ErrorMessage)
	case errors.As(cause, &idle):
		return fmt.Errorf("relay: connection to %s timed out", c.key)
	}
	return fmt.Errorf("relay: connection to %s lost: %w", c.key, cause)
}

func (c *conn) addLink(l *Link) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.qc.Context().Err() != nil {
		return errConnGone
	}
	old := *c.links.Load()
	m := make(map[uint64]*Link, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[l.id] = l
	c.links.Store(&m)
	return nil
}

func (c *conn) removeLink(l *Link) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.links.Load()
	if old[l.id] != l {
		return
	}
	m := make(map[uint64]*Link, len(old))
	for k, v := range old {
		if k != l.id {
			m[k] = v
		}
	}
	c.links.Store(&m)
	if len(m) == 0 {
		c.idleSince = time.Now()
	}
}

func (c *conn) linkList() []*Link {
	m := *c.links.Load()
	out := make([]*Link, 0, len(m))
	for _, l := range m {
		out = append(out, l)
	}
	return out
}

// openLink opens a link on c: the open frame, then the peer's answer.
func (c *conn) openLink(ctx context.Context, open *frame, h Handler) (*Link, error) {
	st, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		if c.qc.Context().Err() != nil {
			return nil, errConnGone
		}
		return nil, fmt.Errorf("relay: %s: %w", c.key, err)
	}
	l := newLink(c, st, open.appID, open.channel)
	if err := c.addLink(l); err != nil {
		st.CancelRead(streamCancelled)
		st.CancelWrite(streamCancelled)
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() {
		st.CancelRead(streamCancelled)
		st.CancelWrite(streamCancelled)
	})
	_, err = st.Write(appendFrame(nil, open))
	var f frame
	if err == nil {
		f, err = l.fr.next()
	}
	cancelled := !stop()
	switch {
	case cancelled:
		err = ctx.Err()
	case err != nil && (c.qc.Context().Err() != nil || connErr(err)):
		err = c.lostErr(err)
	case err != nil:
		err = fmt.Errorf("relay: %s: opening a link: %w", c.key, err)
	case f.typ == frameRefused:
		err = fmt.Errorf("%w: %s refused the link: %s", ErrRefused, c.key, f.reason)
	case f.typ != frameOK:
		err = fmt.Errorf("relay: %s answered open with %s", c.key, f.typ)
	}
	if err != nil {
		st.CancelWrite(streamCancelled)
		l.abort()
		return nil, err
	}
	l.run(h)
	return l, nil
}

// acceptLinks accepts the links the peer opens.
func (c *conn) acceptLinks() {
	for {
		st, err := c.qc.AcceptStream(context.Background()) // fails once the connection is closed
		if err != nil {
			return
		}
		c.t.wg.Go(func() { c.acceptLink(st) })
	}
}

// acceptLink reads a stream's open frame and asks Config.Accept.
func (c *conn) acceptLink(st *quic.Stream) {
	st.SetReadDeadline(time.Now().Add(openTimeout))
	l := newLink(c, st, "", "")
	f, err := l.fr.next()
	if err == nil && f.typ != frameOpen {
		err = fmt.Errorf("first frame %s", f.typ)
	}
	if err != nil {
		c.log.Debug("relay: stream without an open frame", "err", err)
		st.CancelRead(streamProtocol)
		st.CancelWrite(streamProtocol)
		return
	}
	st.SetReadDeadline(time.Time{})
	l.appID, l.channel, l.acceptor = f.appID, f.channel, true
	if err := c.addLink(l); err != nil {
		st.CancelRead(streamEnded)
		st.CancelWrite(streamEnded)
		return
	}
	h, err := c.t.cfg.Accept(l, f.appID, f.channel)
	if err != nil {
		c.log.Debug("relay: link refused", "err", err)
		l.refuse(err)
		return
	}
	if h == nil {
		l.refuse(errors.New("no handler"))
		return
	}
	l.run(h)
}

// readCtrl answers the peer's health checks and notes the answers to ours.
func (c *conn) readCtrl() {
	for {
		f, err := c.ctrlR.next()
		if err != nil {
			if c.qc.Context().Err() == nil && !connErr(err) {
				c.close(codeProtocol, fmt.Errorf("relay: %s: connection stream: %w", c.key, err))
			}
			return
		}
		switch f.typ {
		case framePing:
			c.writeCtrl(&frame{typ: framePong, nonce: f.nonce})
		case framePong:
			now := time.Since(c.started)
			if f.nonce <= uint64(now) {
				rtt := now - time.Duration(f.nonce)
				c.rtt.Store(int64(rtt))
				c.lastPong.Store(int64(now))
				c.pm.rtt.Set(rtt.Seconds())
			}
		default:
			c.close(codeProtocol, fmt.Errorf("relay: %s sent %s on the connection stream", c.key, f.typ))
			return
		}
	}
}

// writeCtrl sends a ping or pong if it can be queued at once: a check that cannot go out is a failed check.
func (c *conn) writeCtrl(f *frame) {
	c.ctrlMu.Lock()
	defer c.ctrlMu.Unlock()
	c.ctrlB = appendFrame(c.ctrlB[:0], f)
	c.ctrl.TryWriteAll(c.ctrlB)
}

// loop runs the connection's timers: gap scans, health checks, samples for the figures, idle close.
func (c *conn) loop() {
	cfg := &c.t.cfg
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	nextPing, nextSample := c.started, c.started.Add(sampleInterval)
	var nacks []uint16
	for {
		select {
		case <-c.qc.Context().Done():
			c.ended()
			return
		case now := <-tick.C:
			st := c.qc.ConnectionStats()
			retry := retryInterval(st.SmoothedRTT, st.MeanDeviation)
			for _, l := range *c.links.Load() {
				nacks = l.scan(now, retry, nacks)
				l.reportTails(now)
			}
			if !now.Before(nextPing) {
				since := now.Sub(c.started)
				if since-time.Duration(c.lastPong.Load()) > cfg.HealthTimeout {
					c.close(codeHealth, fmt.Errorf("relay: %s answered no health check for %s", c.key, cfg.HealthTimeout))
					continue
				}
				c.writeCtrl(&frame{typ: framePing, nonce: uint64(since)})
				nextPing = now.Add(cfg.HealthInterval)
			}
			if !now.Before(nextSample) {
				for _, l := range *c.links.Load() {
					l.sample(now)
				}
				c.closeIfIdle(now)
				nextSample = now.Add(sampleInterval)
			}
		}
	}
}

// closeIfIdle closes a connection this end dialled that has had no link for idleConnTimeout: the peer does not
// need it, and the next Open dials again.
func (c *conn) closeIfIdle(now time.Time) {
	c.mu.Lock()
	idle := c.dialled && !c.closing && len(*c.links.Load()) == 0 && now.Sub(c.idleSince) > c.t.idleTimeout
	c.mu.Unlock()
	if idle {
		c.close(codeNormal, errors.New("relay: idle connection closed"))
	}
}

// ended runs when the connection has closed.
func (c *conn) ended() {
	c.t.removeConn(c)
	err := c.lostErr(nil)
	var ae *quic.ApplicationError
	if errors.As(context.Cause(c.qc.Context()), &ae) && ae.Remote && ae.ErrorCode == codeUnauthenticated {
		c.log.Warn("relay: the peer refused this edge", "err", err)
		return
	}
	c.log.Debug("relay: connection closed", "err", err)
}
