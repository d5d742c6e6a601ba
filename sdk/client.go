package sdk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/internal/protocol"
	"github.com/stoa-rtc/stoa/sframe"
	"github.com/stoa-rtc/stoa/sframe/media"
)

// Buffer sizes of the channels a Client delivers on. When one is full, what does not fit is dropped and counted in
// Stats.EventsDropped: drain them.
const (
	EventBuffer = 256
	TrackBuffer = 64
	DataBuffer  = 256
)

// Client is a participant in a channel. Create it with Join; it is connected and joined when Join returns. All
// methods are safe for concurrent use.
//
// A Client delivers what happens on three channels, Events, Tracks and Data, which it closes after its last event
// (Disconnected). When the session with the edge is lost it reconnects by itself (Reconnecting, Reconnected).
//
// Leave or Close ends the client: they return once every goroutine it started has stopped.
type Client struct {
	cfg    Config // Token and Secret are cleared; see token and secret
	log    *slog.Logger
	hc     *http.Client
	ownHC  bool
	api    *webrtc.API
	secret *sframe.Key
	recv   *media.Receiver
	ticket string
	region string
	edges  []Edge

	ctx    context.Context // canceled by Leave and Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the client has stopped

	outMu     sync.Mutex // guards sends on the channels below against their closing
	outClosed bool
	events    chan Event
	tracks    chan *RemoteTrack
	data      chan DataMessage

	total         counters
	eventsDropped atomic.Uint64
	reconnects    atomic.Uint64

	// pubMu serializes what changes the publisher connection or the subscriptions: publish, unpublish,
	// subscribe, unsubscribe, and restoring them after a reconnection.
	pubMu sync.Mutex

	mu           sync.Mutex
	token        string
	sess         *session // nil while reconnecting
	edgeIdx      int
	sessionID    string
	privileges   []Privilege
	participants map[string]bool         // uids of the others in the channel
	known        map[string]TrackInfo    // the channel's tracks, by id
	remote       map[string]*RemoteTrack // the media tracks being received, by id
	remoteStats  map[string]*trackCounters
	local        []publication
	subscribed   map[string]bool // explicit subscriptions, restored after a reconnection
	leaving      bool
	err          error // why the client ended
}

// Join enters a channel: it asks the dispatcher for edges, connects to the first that accepts (falling back to
// the next), and joins. ctx bounds only the joining; the client lives until Leave, Close or a final disconnection.
//
// Errors from the network are *Error: errors.As and act on Code (CodeInvalidToken, CodeTokenExpired, ...).
func Join(ctx context.Context, cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "sdk", "channel", cfg.Channel, "uid", cfg.UID)
	recv, err := media.NewReceiver(cfg.Suite)
	if err != nil {
		return nil, fmt.Errorf("sdk: %w", err)
	}
	if err := recv.AddSecret(cfg.KeyGeneration, cfg.Secret); err != nil {
		return nil, fmt.Errorf("sdk: %w", err)
	}
	api, err := newAPI(log)
	if err != nil {
		recv.Wipe()
		return nil, err
	}
	c := &Client{
		cfg: cfg, log: log, api: api, recv: recv,
		secret:       cfg.Secret.Clone(),
		token:        cfg.Token,
		done:         make(chan struct{}),
		events:       make(chan Event, EventBuffer),
		tracks:       make(chan *RemoteTrack, TrackBuffer),
		data:         make(chan DataMessage, DataBuffer),
		participants: map[string]bool{},
		known:        map[string]TrackInfo{},
		remote:       map[string]*RemoteTrack{},
		remoteStats:  map[string]*trackCounters{},
		subscribed:   map[string]bool{},
	}
	c.cfg.Token, c.cfg.Secret = "", nil
	c.hc, c.ownHC = cfg.HTTPClient, false
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = cfg.TLSConfig
		c.hc, c.ownHC = &http.Client{Transport: tr}, true
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	fail := func(err error) (*Client, error) {
		c.cancel()
		c.wipe()
		return nil, err
	}

	ans, err := dispatch(ctx, c.hc, &cfg, log)
	if err != nil {
		return fail(err)
	}
	c.edges, c.ticket, c.region = ans.Edges, ans.Ticket, ans.Region
	var errs []error
	for i, e := range c.edges {
		s, err := c.connect(ctx, e)
		if err == nil {
			c.mu.Lock()
			c.sess, c.edgeIdx = s, i
			c.mu.Unlock()
			log.Info("joined", "edge", e.ID, "region", c.region)
			go c.run(s)
			return c, nil
		}
		log.Warn("joining through edge failed", "edge", e.ID, "err", err)
		if final(err) || ticketRefused(err) || ctx.Err() != nil {
			return fail(err)
		}
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return fail(errs[0])
	}
	return fail(fmt.Errorf("sdk: every edge failed: %w", errors.Join(errs...)))
}

// connect opens a session with edge and joins.
func (c *Client) connect(ctx context.Context, edge Edge) (*session, error) {
	s, err := newSession(ctx, c, edge)
	if err != nil {
		return nil, err
	}
	if _, err := s.join(ctx); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// run watches the live session and replaces it when it ends, until the client is closed or cannot get back in.
func (c *Client) run(s *session) {
	defer c.finish()
	for {
		select {
		case <-s.ctx.Done():
		case <-c.ctx.Done():
		}
		cause := s.cause()
		c.dropSession(s)
		if c.stopping() {
			return
		}
		if final(cause) || c.cfg.ReconnectTimeout < 0 {
			c.setErr(cause)
			return
		}
		c.log.Warn("session lost, reconnecting", "err", cause)
		c.emit(Reconnecting{Err: cause})
		ns, err := c.reconnect(cause)
		if err != nil {
			if c.ctx.Err() == nil {
				c.log.Error("reconnecting failed", "err", err)
				c.setErr(err)
			}
			return
		}
		s = ns
		c.reconnects.Add(1)
		c.log.Info("reconnected", "edge", s.edge.ID)
		c.emit(Reconnected{Edge: s.edge})
	}
}

// dropSession detaches the client from s and closes it; remote tracks end, local tracks wait for the next session.
func (c *Client) dropSession(s *session) {
	c.mu.Lock()
	if c.sess == s {
		c.sess = nil
	}
	locals := slices.Clone(c.local)
	c.mu.Unlock()
	for _, p := range locals {
		p.detach()
	}
	s.close()
	c.mu.Lock()
	remote := c.remote
	c.remote = map[string]*RemoteTrack{}
	c.mu.Unlock()
	for _, rt := range remote {
		rt.end()
	}
}

// Backoff between rounds of reconnection attempts.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 4 * time.Second
)

// reconnect gets the client back into the channel: the same edge first, then the dispatcher's other edges, in
// rounds with growing pauses, with the same token and ticket, until ReconnectTimeout. It then publishes the local
// tracks again and restores explicit subscriptions.
func (c *Client) reconnect(cause error) (*session, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ReconnectTimeout)
	defer cancel()
	c.mu.Lock()
	start := c.edgeIdx
	c.mu.Unlock()
	var e *Error
	if errors.As(cause, &e) && e.Code == CodeShuttingDown {
		start++ // that edge is going away
	}
	backoff := minBackoff
	var last error
	for {
		for i := range c.edges {
			idx := (start + i) % len(c.edges)
			s, err := c.connect(ctx, c.edges[idx])
			if err == nil {
				c.mu.Lock()
				c.sess, c.edgeIdx = s, idx
				c.mu.Unlock()
				c.restore(ctx, s)
				return s, nil
			}
			c.log.Debug("reconnection attempt failed", "edge", c.edges[idx].ID, "err", err)
			last = err
			if final(err) {
				return nil, err
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("sdk: reconnecting: %w (last error: %w)", ctx.Err(), last)
			}
			if ticketRefused(err) {
				break // the next round starts again from the call's edge
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("sdk: reconnecting: %w (last error: %w)", ctx.Err(), last)
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// restore publishes the local tracks again on s and restores explicit subscriptions. A publication the edge now
// refuses for good (e.g. its privilege expired) is closed; other failures end s, and run reconnects again.
func (c *Client) restore(ctx context.Context, s *session) {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	c.mu.Lock()
	locals := slices.Clone(c.local)
	var subs []string
	for id := range c.subscribed {
		if _, ok := c.known[id]; ok {
			subs = append(subs, id)
		}
	}
	c.mu.Unlock()
	attached := 0
	for _, p := range locals {
		if p.closed() {
			continue
		}
		id, err := s.publish(ctx, p.kind())
		if err == nil {
			err = p.attach(s, id)
		}
		if err != nil {
			if final(err) {
				c.log.Warn("publishing again refused", "kind", p.kind(), "err", err)
				c.removeLocal(p)
				p.close()
				c.emit(ErrorEvent{Err: err})
				continue
			}
			s.fail(err)
			return
		}
		attached++
	}
	if attached > 0 {
		if err := s.negotiate(ctx); err != nil {
			s.fail(err)
			return
		}
	}
	for _, id := range subs {
		if err := s.trackRequest(ctx, protocol.TypeSubscribe, id); err != nil && !final(err) {
			s.fail(err)
			return
		}
	}
}

// finish runs when run ends: it wipes the keys, delivers Disconnected and closes the channels.
func (c *Client) finish() {
	c.mu.Lock()
	err := c.err
	locals := c.local
	c.local = nil
	c.mu.Unlock()
	for _, p := range locals {
		p.close()
	}
	c.wipe()
	c.emit(Disconnected{Err: err})
	c.outMu.Lock()
	c.outClosed = true
	close(c.events)
	close(c.tracks)
	close(c.data)
	c.outMu.Unlock()
	close(c.done)
}

func (c *Client) wipe() {
	c.recv.Wipe()
	c.secret.Wipe()
	if c.ownHC {
		c.hc.CloseIdleConnections()
	}
}

// stopping reports whether Leave or Close was called.
func (c *Client) stopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leaving || c.ctx.Err() != nil
}

func (c *Client) setErr(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

// Leave leaves the channel: it tells the edge (waiting for it, bounded by ctx), stops everything and returns once
// every goroutine of the client has stopped. Calling it again, or after the client was disconnected, returns nil.
func (c *Client) Leave(ctx context.Context) error {
	c.mu.Lock()
	s, leaving := c.sess, c.leaving
	c.leaving = true
	c.mu.Unlock()
	if !leaving && s != nil {
		s.leave(ctx)
	}
	c.cancel()
	<-c.done
	return nil
}

// closeTimeout bounds how long Close waits for the edge to acknowledge the leave.
const closeTimeout = 2 * time.Second

// Close is Leave with a short timeout for the edge's acknowledgement.
func (c *Client) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return c.Leave(ctx)
}

// Done returns a channel that is closed when the client has stopped: after Leave or Close, or when it was
// disconnected for good.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client was disconnected (an *Error for a removal or a refused rejoin), or nil while it runs
// and after Leave.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Events returns the channel of events. It is closed after Disconnected.
func (c *Client) Events() <-chan Event { return c.events }

// Tracks returns the channel on which the remote media tracks arrive as the client receives them (after a
// reconnection, again). It is closed when the client stops.
func (c *Client) Tracks() <-chan *RemoteTrack { return c.tracks }

// Data returns the channel of decrypted data messages from every subscribed data track. Messages that fail to
// decrypt are counted in Stats, not delivered. It is closed when the client stops.
func (c *Client) Data() <-chan DataMessage { return c.data }

// emit delivers an event without blocking.
func (c *Client) emit(e Event) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.outClosed {
		return
	}
	select {
	case c.events <- e:
	default:
		c.eventsDropped.Add(1)
		c.log.Warn("event dropped: Events is not drained", "event", fmt.Sprintf("%T", e))
	}
}

func (c *Client) deliverTrack(rt *RemoteTrack) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.outClosed {
		return
	}
	select {
	case c.tracks <- rt:
	default:
		c.eventsDropped.Add(1)
		c.log.Warn("remote track dropped: Tracks is not drained", "track", rt.info.ID)
	}
}

func (c *Client) deliverData(m DataMessage) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.outClosed {
		return
	}
	select {
	case c.data <- m:
	default:
		c.eventsDropped.Add(1)
	}
}

// current returns the live session, or an error saying why there is none.
func (c *Client) current() (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.leaving || c.ctx.Err() != nil:
		return nil, ErrClosed
	case c.sess == nil:
		select {
		case <-c.done:
			return nil, ErrClosed
		default:
			return nil, ErrReconnecting
		}
	}
	return c.sess, nil
}

// PublishAudio publishes an Opus audio track. Write encoded Opus packets to it.
func (c *Client) PublishAudio(ctx context.Context) (*LocalTrack, error) {
	return c.publishMedia(ctx, KindAudio)
}

// PublishVideo publishes a VP8 video track. Write encoded VP8 frames to it, and a key frame whenever
// KeyframeRequests delivers.
func (c *Client) PublishVideo(ctx context.Context) (*LocalTrack, error) {
	return c.publishMedia(ctx, KindVideo)
}

func (c *Client) publishMedia(ctx context.Context, kind Kind) (*LocalTrack, error) {
	sender, err := c.newSender()
	if err != nil {
		return nil, err
	}
	t := &LocalTrack{c: c, k: kind, sender: sender, kid: sender.KID(), pk: newPacketizer(kind),
		keyframes: make(chan struct{}, 1), counters: trackCounters{total: &c.total}}
	if err := c.publish(ctx, t); err != nil {
		sender.Wipe()
		return nil, err
	}
	return t, nil
}

// PublishData publishes a data track. It returns once the track's data channel is open.
func (c *Client) PublishData(ctx context.Context) (*DataTrack, error) {
	sender, err := c.newSender()
	if err != nil {
		return nil, err
	}
	t := &DataTrack{c: c, sender: sender, kid: sender.KID(), counters: trackCounters{total: &c.total}}
	if err := c.publish(ctx, t); err != nil {
		sender.Wipe()
		return nil, err
	}
	select {
	case <-t.opened():
		return t, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-c.done:
		err = ErrClosed
	}
	uctx, cancel := context.WithTimeout(context.Background(), c.cfg.RequestTimeout)
	defer cancel()
	c.unpublish(uctx, t)
	return nil, fmt.Errorf("sdk: waiting for the data channel to open: %w", err)
}

// newSender returns an SFrame sender with a new random KID and its counter at 0.
func (c *Client) newSender() (*media.Sender, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.secret.Len() == 0 {
		return nil, ErrClosed
	}
	return media.NewSender(c.cfg.Suite, c.secret, media.NewKID(c.cfg.KeyGeneration))
}

// publish asks the edge for a track id, adds the track to the publisher connection and negotiates.
func (c *Client) publish(ctx context.Context, p publication) error {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	s, err := c.current()
	if err != nil {
		return err
	}
	id, err := s.publish(ctx, p.kind())
	if err != nil {
		return err
	}
	// Undoing a half-done publication must not depend on ctx, which may be what cut it short.
	undo := func() {
		uctx, cancel := context.WithTimeout(context.Background(), c.cfg.RequestTimeout)
		defer cancel()
		s.trackRequest(uctx, protocol.TypeUnpublish, id)
	}
	if err := p.attach(s, id); err != nil {
		undo()
		return err
	}
	if err := s.negotiate(ctx); err != nil {
		if t, ok := p.(*LocalTrack); ok {
			t.mu.Lock()
			sender := t.rtp
			t.mu.Unlock()
			if sender != nil {
				s.pub.RemoveTrack(sender)
			}
		}
		p.detach()
		undo()
		return err
	}
	c.mu.Lock()
	c.local = append(c.local, p)
	c.mu.Unlock()
	c.log.Info("published", "kind", p.kind(), "track", id)
	return nil
}

// unpublish stops a local track.
func (c *Client) unpublish(ctx context.Context, p publication) error {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	if p.closed() {
		return nil
	}
	id := p.trackID()
	var (
		sender *webrtc.RTPSender
		dc     *webrtc.DataChannel
	)
	switch t := p.(type) {
	case *LocalTrack:
		t.mu.Lock()
		sender = t.rtp
		t.mu.Unlock()
	case *DataTrack:
		t.mu.Lock()
		dc = t.dc
		t.mu.Unlock()
	}
	c.removeLocal(p)
	p.close()
	s, err := c.current()
	if err != nil {
		if errors.Is(err, ErrReconnecting) {
			return nil // not republished when the client is back
		}
		return err
	}
	if err := s.trackRequest(ctx, protocol.TypeUnpublish, id); err != nil {
		return err
	}
	switch {
	case sender != nil:
		if err := s.pub.RemoveTrack(sender); err != nil {
			return fmt.Errorf("sdk: unpublish: %w", err)
		}
		return s.negotiate(ctx)
	case dc != nil:
		return dc.Close()
	}
	return nil
}

func (c *Client) removeLocal(p publication) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.local = slices.DeleteFunc(c.local, func(q publication) bool { return q == p })
}

// Subscribe subscribes to a track of the channel (with AutoSubscribe off); a media track then arrives on Tracks,
// a data track's messages on Data. The subscription is restored after reconnections while the track exists.
func (c *Client) Subscribe(ctx context.Context, trackID string) error {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	s, err := c.current()
	if err != nil {
		return err
	}
	if err := s.trackRequest(ctx, protocol.TypeSubscribe, trackID); err != nil {
		return err
	}
	c.mu.Lock()
	c.subscribed[trackID] = true
	c.mu.Unlock()
	return nil
}

// Unsubscribe stops receiving a track; its RemoteTrack ends.
func (c *Client) Unsubscribe(ctx context.Context, trackID string) error {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	c.mu.Lock()
	delete(c.subscribed, trackID)
	c.mu.Unlock()
	s, err := c.current()
	if err != nil {
		return err
	}
	if err := s.trackRequest(ctx, protocol.TypeUnsubscribe, trackID); err != nil {
		return err
	}
	c.endRemote(trackID)
	return nil
}

// Renew replaces the session's token with a fresh one, before a privilege expires (PrivilegeWillExpire). The new
// token is also the one used to rejoin after a reconnection. It returns the privileges the new token grants.
func (c *Client) Renew(ctx context.Context, token string) ([]Privilege, error) {
	if token == "" || len(token) > protocol.MaxTokenLength {
		return nil, fmt.Errorf("sdk: renew: the token must be 1 to %d bytes", protocol.MaxTokenLength)
	}
	s, err := c.current()
	if err != nil {
		return nil, err
	}
	resp, err := s.request(ctx, &protocol.Message{Type: protocol.TypeRenew, Renew: &protocol.Renew{Token: token}})
	if err != nil {
		return nil, err
	}
	if resp.Renewed == nil {
		return nil, fmt.Errorf("sdk: renew: edge answered %q", resp.Type)
	}
	ps := privilegesFrom(resp.Renewed.Privileges)
	c.mu.Lock()
	c.token = token
	c.privileges = ps
	c.mu.Unlock()
	return slices.Clone(ps), nil
}

// Privileges returns what the token grants and until when, as of the last join or renewal.
func (c *Client) Privileges() []Privilege {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.privileges)
}

// Participants returns the other members of the channel and their tracks, sorted by uid.
func (c *Client) Participants() []Participant {
	c.mu.Lock()
	defer c.mu.Unlock()
	byUID := map[string]*Participant{}
	for uid := range c.participants {
		byUID[uid] = &Participant{UID: uid}
	}
	for _, t := range c.known {
		if p := byUID[t.UID]; p != nil {
			p.Tracks = append(p.Tracks, t)
		}
	}
	out := make([]Participant, 0, len(byUID))
	for _, p := range byUID {
		slices.SortFunc(p.Tracks, func(a, b TrackInfo) int { return cmpString(a.ID, b.ID) })
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Participant) int { return cmpString(a.UID, b.UID) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Edge returns the edge the client is connected to (the last one while reconnecting).
func (c *Client) Edge() Edge {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.edges[c.edgeIdx]
}

// Region returns the region the dispatcher placed the client in.
func (c *Client) Region() string { return c.region }

// SessionID returns the edge's id of the current session, as it appears in the edge's logs.
func (c *Client) SessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionID
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	st := Stats{
		FramesSent:       c.total.sent.Load(),
		FramesReceived:   c.total.received.Load(),
		DecryptOK:        c.total.ok.Load(),
		DecryptFailed:    c.total.failed.Load(),
		FramesIncomplete: c.total.incomplete.Load(),
		FramesDropped:    c.total.dropped.Load(),
		EventsDropped:    c.eventsDropped.Load(),
		Reconnects:       c.reconnects.Load(),
	}
	c.mu.Lock()
	locals := slices.Clone(c.local)
	for id, tc := range c.remoteStats {
		info := c.known[id]
		if info.ID == "" {
			info = TrackInfo{ID: id}
			if rt := c.remote[id]; rt != nil {
				info = rt.info
			}
		}
		st.Tracks = append(st.Tracks, tc.snapshot(id, info.UID, info.Kind, false))
	}
	c.mu.Unlock()
	for _, p := range locals {
		st.Tracks = append(st.Tracks, p.stats())
	}
	slices.SortFunc(st.Tracks, func(a, b TrackStats) int { return cmpString(a.TrackID, b.TrackID) })
	return st
}
