package sdk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/internal/protocol"
)

// session is one signaling connection with an edge and the two peer connections that go with it: the publisher
// connection, which the client offers, and the subscriber connection, which the edge offers. A session never
// outlives its WebSocket: when either fails, the session ends and the Client starts a new one.
//
// Goroutines: readLoop (the only reader of the socket; it applies events in order), answerLoop (answers the edge's
// subscriber offers one at a time), pingLoop, one RTCP reader per published media track and one RTP reader per
// received track. close stops them all.
type session struct {
	c    *Client
	edge Edge
	log  *slog.Logger
	conn *websocket.Conn
	pub  *webrtc.PeerConnection
	sub  *webrtc.PeerConnection

	ctx      context.Context // done when the session ends; context.Cause says why
	cancel   context.CancelCauseFunc
	readDone chan struct{} // closed when readLoop returns (the socket is gone)
	offers   chan string   // subscriber offers, for answerLoop
	nextID   atomic.Uint32

	mu      sync.Mutex
	pending map[uint32]chan *protocol.Message
	closing bool
	wg      sync.WaitGroup
}

// errSessionClosed ends a session that the client closes itself.
var errSessionClosed = errors.New("sdk: session closed")

// writeTimeout bounds one write on the socket.
const writeTimeout = 5 * time.Second

// newSession dials edge and sets up the peer connections; the caller then joins.
func newSession(ctx context.Context, c *Client, edge Edge) (*session, error) {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, edge.URL, &websocket.DialOptions{
		HTTPClient: c.hc,
		HTTPHeader: map[string][]string{"User-Agent": {clientName}},
	})
	if err != nil {
		return nil, fmt.Errorf("sdk: dialing edge %s: %w", edge.ID, err)
	}
	conn.SetReadLimit(protocol.MaxMessageSize)
	s := &session{
		c: c, edge: edge, conn: conn,
		log:      c.log.With("edge", edge.ID),
		readDone: make(chan struct{}),
		offers:   make(chan string, 1),
		pending:  make(map[uint32]chan *protocol.Message),
	}
	s.ctx, s.cancel = context.WithCancelCause(c.ctx)
	if s.pub, err = c.api.NewPeerConnection(webrtc.Configuration{}); err == nil {
		s.sub, err = c.api.NewPeerConnection(webrtc.Configuration{})
	}
	if err != nil {
		if s.pub != nil {
			s.pub.Close()
		}
		conn.CloseNow()
		s.cancel(err)
		return nil, fmt.Errorf("sdk: %w", err)
	}
	for name, pc := range map[string]*webrtc.PeerConnection{"publisher": s.pub, "subscriber": s.sub} {
		pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
			s.log.Debug("peer connection state", "pc", name, "state", st.String())
			if st == webrtc.PeerConnectionStateFailed {
				s.fail(fmt.Errorf("sdk: %s connection failed (ICE or DTLS)", name))
			}
		})
	}
	s.sub.OnTrack(s.onTrack)
	s.sub.OnDataChannel(s.onDataChannel)
	s.goRun(s.readLoop)
	s.goRun(s.answerLoop)
	return s, nil
}

// join sends join and waits for joined; readLoop has applied it to the client's state by the time join returns.
func (s *session) join(ctx context.Context) (*protocol.Joined, error) {
	s.c.mu.Lock()
	tok := s.c.token
	s.c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.c.cfg.RequestTimeout)
	defer cancel()
	resp, err := s.request(ctx, &protocol.Message{Type: protocol.TypeJoin, Join: &protocol.Join{
		Version: protocol.Version, Token: tok, AppID: s.c.cfg.AppID, Channel: s.c.cfg.Channel, UID: s.c.cfg.UID,
		Ticket: s.c.ticket, AutoSubscribe: s.c.cfg.AutoSubscribe, Client: clientName, Hidden: s.c.cfg.Hidden,
	}})
	if err != nil {
		return nil, err
	}
	if resp.Joined == nil {
		return nil, fmt.Errorf("sdk: join: edge answered %q", resp.Type)
	}
	s.log.Debug("joined", "session", resp.Joined.Session)
	s.goRun(s.pingLoop)
	return resp.Joined, nil
}

// goRun starts f as a goroutine of the session unless the session is closing. It may be called from Pion
// callbacks, concurrently with close.
func (s *session) goRun(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// fail ends the session with err; the first cause wins. It never blocks.
func (s *session) fail(err error) { s.cancel(err) }

// cause returns why the session ended.
func (s *session) cause() error { return context.Cause(s.ctx) }

// close ends the session and returns once every goroutine of it has stopped.
func (s *session) close() {
	s.fail(errSessionClosed)
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.conn.CloseNow()
	// GracefulClose waits for Pion's own goroutines, so that nothing of the session outlives it.
	if err := s.pub.GracefulClose(); err != nil {
		s.log.Debug("closing publisher connection", "err", err)
	}
	if err := s.sub.GracefulClose(); err != nil {
		s.log.Debug("closing subscriber connection", "err", err)
	}
	s.wg.Wait()
}

// leave tells the edge that the client leaves and waits, bounded by ctx, for the edge to close the socket.
func (s *session) leave(ctx context.Context) {
	if err := s.send(ctx, &protocol.Message{Type: protocol.TypeLeave}); err != nil {
		return
	}
	select {
	case <-s.readDone:
	case <-ctx.Done():
	}
}

// send writes one message. The write is bounded by writeTimeout and the session, not by the caller's ctx: a write
// cut short closes the WebSocket, and a caller giving up on an answer must not end the session.
func (s *session) send(_ context.Context, m *protocol.Message) error {
	b, err := protocol.Encode(m)
	if err != nil {
		return fmt.Errorf("sdk: %w", err)
	}
	ctx, cancel := context.WithTimeout(s.ctx, writeTimeout)
	defer cancel()
	if err := s.conn.Write(ctx, websocket.MessageText, b); err != nil {
		err = fmt.Errorf("sdk: sending %s: %w", m.Type, err)
		s.fail(err)
		return err
	}
	return nil
}

// request sends m with a fresh id and waits for its answer. An error answer is returned as *Error.
func (s *session) request(ctx context.Context, m *protocol.Message) (*protocol.Message, error) {
	ch := make(chan *protocol.Message, 1)
	m.ID = s.nextID.Add(1)
	s.mu.Lock()
	if s.closing || s.ctx.Err() != nil {
		s.mu.Unlock()
		return nil, s.endErr()
	}
	s.pending[m.ID] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, m.ID)
		s.mu.Unlock()
	}()
	if err := s.send(ctx, m); err != nil {
		return nil, err
	}
	answer := func(r *protocol.Message) (*protocol.Message, error) {
		if r.Type == protocol.TypeError {
			return nil, &Error{Op: string(m.Type), Code: Code(shorten(string(r.Error.Code))), Message: shorten(r.Error.Message)}
		}
		return r, nil
	}
	select {
	case r := <-ch:
		return answer(r)
	case <-ctx.Done():
		return nil, fmt.Errorf("sdk: %s: %w", m.Type, ctx.Err())
	case <-s.ctx.Done():
		// The read loop hands an answer over before it ends the session, so an answer that came before the
		// connection closed is in ch: an edge that refuses a join and closes must be read as refusing, not as lost
		// (select would pick either case at random).
		select {
		case r := <-ch:
			return answer(r)
		default:
			return nil, s.endErr()
		}
	}
}

// endErr is the error of requests on an ended session: ErrReconnecting, wrapping the cause.
func (s *session) endErr() error {
	cause := s.cause()
	if cause == nil || errors.Is(cause, errSessionClosed) {
		return ErrReconnecting
	}
	return fmt.Errorf("%w: %w", ErrReconnecting, cause)
}

// readLoop reads the edge's messages: answers go to their requests, offers to answerLoop, events to the client,
// in the order they arrive.
func (s *session) readLoop() {
	defer close(s.readDone)
	for {
		typ, b, err := s.conn.Read(s.ctx)
		if err != nil {
			s.fail(fmt.Errorf("sdk: signaling connection lost: %w", err))
			return
		}
		if typ != websocket.MessageText {
			s.log.Warn("edge sent a binary message; ignored")
			continue
		}
		m, err := protocol.Decode(b)
		if err != nil {
			s.log.Warn("edge sent a message this client cannot decode; ignored", "err", err)
			continue
		}
		s.handle(m)
	}
}

// answers lists the types that answer a request.
var answers = map[protocol.Type]bool{
	protocol.TypeOK: true, protocol.TypeError: true, protocol.TypeJoined: true, protocol.TypeAnswer: true,
	protocol.TypeRenewed: true, protocol.TypePong: true,
}

func (s *session) handle(m *protocol.Message) {
	if m.ID != 0 && answers[m.Type] {
		if m.Type == protocol.TypeJoined {
			// Applied here, before any later event, so that the client's view of the channel stays in order.
			s.c.applyJoined(m.Joined)
		}
		s.mu.Lock()
		ch := s.pending[m.ID]
		delete(s.pending, m.ID)
		s.mu.Unlock()
		if ch != nil {
			ch <- m // buffered, and each id is answered once
		}
		return
	}
	switch m.Type {
	case protocol.TypeOffer:
		select {
		case s.offers <- m.Offer.SDP:
		case <-s.ctx.Done():
		}
	case protocol.TypeError:
		e := &Error{Op: "edge", Code: Code(shorten(string(m.Error.Code))), Message: shorten(m.Error.Message)}
		s.log.Warn("edge reported an error", "code", e.Code, "message", e.Message)
		s.c.emit(ErrorEvent{Err: e})
	case protocol.TypeRemoved:
		e := &Error{Op: "removed", Code: Code(shorten(string(m.Removed.Reason))), Message: shorten(m.Removed.Message)}
		s.log.Info("removed by the edge", "reason", e.Code)
		s.c.emit(Removed{Reason: e.Code, Message: e.Message})
		s.fail(e)
	default:
		s.c.handleEvent(m)
	}
}

// answerLoop answers the edge's subscriber offers, one at a time as the edge sends them.
func (s *session) answerLoop() {
	for {
		select {
		case sdp := <-s.offers:
			if err := s.answer(sdp); err != nil {
				if s.ctx.Err() != nil {
					return
				}
				s.log.Warn("answering the subscriber offer failed", "err", err)
				s.c.emit(ErrorEvent{Err: err})
			}
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *session) answer(sdp string) error {
	if err := s.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return fmt.Errorf("sdk: subscriber offer: %w", err)
	}
	ans, err := s.sub.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("sdk: subscriber answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(s.sub)
	if err := s.sub.SetLocalDescription(ans); err != nil {
		return fmt.Errorf("sdk: subscriber answer: %w", err)
	}
	select {
	case <-gathered:
	case <-s.ctx.Done():
		return s.endErr()
	}
	return s.send(s.ctx, &protocol.Message{Type: protocol.TypeAnswer,
		Answer: &protocol.SDP{SDP: s.sub.LocalDescription().SDP}})
}

// negotiate offers the publisher connection's current state to the edge and applies its answer. The caller holds
// the client's pubMu, so negotiations never overlap.
func (s *session) negotiate(ctx context.Context) error {
	offer, err := s.pub.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("sdk: publisher offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(s.pub)
	if err := s.pub.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("sdk: publisher offer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		s.rollback()
		return fmt.Errorf("sdk: gathering candidates: %w", ctx.Err())
	case <-s.ctx.Done():
		return s.endErr()
	}
	resp, err := s.request(ctx, &protocol.Message{Type: protocol.TypeOffer,
		Offer: &protocol.SDP{SDP: s.pub.LocalDescription().SDP}})
	if err == nil && resp.Answer == nil {
		err = fmt.Errorf("sdk: offer: edge answered %q", resp.Type)
	}
	if err != nil {
		s.rollback()
		return err
	}
	if err := s.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: resp.Answer.SDP}); err != nil {
		s.rollback()
		return fmt.Errorf("sdk: publisher answer: %w", err)
	}
	return nil
}

// rollback abandons an offer that got no usable answer, so that the next negotiation starts from stable.
func (s *session) rollback() {
	if s.pub.SignalingState() == webrtc.SignalingStateHaveLocalOffer {
		if err := s.pub.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); err != nil {
			s.log.Debug("rollback failed", "err", err)
		}
	}
}

// publish asks the edge for a track id of kind.
func (s *session) publish(ctx context.Context, kind Kind) (string, error) {
	resp, err := s.request(ctx, &protocol.Message{Type: protocol.TypePublish,
		Publish: &protocol.Publish{Kind: protocol.Kind(kind)}})
	if err != nil {
		return "", err
	}
	if resp.OK == nil || resp.OK.TrackID == "" || len(resp.OK.TrackID) > protocol.MaxTrackIDLen {
		return "", fmt.Errorf("sdk: publish: the edge answered without a track id")
	}
	return resp.OK.TrackID, nil
}

// trackRequest sends unpublish, subscribe or unsubscribe for id and waits for ok.
func (s *session) trackRequest(ctx context.Context, typ protocol.Type, id string) error {
	m := &protocol.Message{Type: typ}
	ref := &protocol.TrackRef{TrackID: id}
	switch typ {
	case protocol.TypeUnpublish:
		m.Unpublish = ref
	case protocol.TypeSubscribe:
		m.Subscribe = ref
	case protocol.TypeUnsubscribe:
		m.Unsubscribe = ref
	}
	_, err := s.request(ctx, m)
	return err
}

// pingLoop pings the edge every PingInterval; a ping without pong within RequestTimeout ends the session.
func (s *session) pingLoop() {
	t := time.NewTicker(s.c.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			ctx, cancel := context.WithTimeout(s.ctx, s.c.cfg.RequestTimeout)
			_, err := s.request(ctx, &protocol.Message{Type: protocol.TypePing})
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				s.fail(errors.New("sdk: the edge did not answer a ping"))
				return
			}
		case <-s.ctx.Done():
			return
		}
	}
}

// onTrack starts reading a track the edge sends on the subscriber connection: msid stream id = publisher uid,
// track id = the track's id.
func (s *session) onTrack(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	kind := KindAudio
	if tr.Kind() == webrtc.RTPCodecTypeVideo {
		kind = KindVideo
	}
	rt := s.c.addRemoteTrack(TrackInfo{ID: tr.ID(), UID: tr.StreamID(), Kind: kind})
	if !s.goRun(func() { s.readTrack(tr, rt) }) {
		rt.end()
		return
	}
	s.log.Debug("receiving track", "track", rt.info.ID, "publisher", rt.info.UID, "kind", kind)
	s.c.deliverTrack(rt)
}

// How long a stream may hold packets while waiting for a missing one (see reorder): long enough for a reordering
// or a quick retransmission, short enough that a real loss costs little delay.
const (
	holdAudio = 8
	waitAudio = 60 * time.Millisecond
	holdVideo = 48
	waitVideo = 150 * time.Millisecond
)

// readTrack reads the RTP of one remote track until it ends: puts packets in order, rebuilds frames and decrypts
// them.
func (s *session) readTrack(tr *webrtc.TrackRemote, rt *RemoteTrack) {
	defer rt.end()
	var (
		asm vp8Assembler
		ro  = reorder{hold: holdAudio, wait: waitAudio}
	)
	if rt.info.Kind == KindVideo {
		ro.hold, ro.wait = holdVideo, waitVideo
	}
	emit := func(p *rtp.Packet, lost bool) {
		if rt.info.Kind == KindAudio {
			if len(p.Payload) > 0 {
				s.c.openFrame(rt, p.Payload, p.Timestamp)
			}
			return
		}
		frame, dropped := asm.push(p, lost)
		if dropped > 0 {
			rt.counters.incomplete(dropped)
		}
		if frame != nil {
			s.c.openFrame(rt, frame, p.Timestamp)
		}
	}
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		ro.push(p, time.Now(), emit)
	}
}

// onDataChannel receives the edge's stoa-data channel, on which every subscribed data message arrives framed
// with its track id.
func (s *session) onDataChannel(dc *webrtc.DataChannel) {
	if dc.Label() != protocol.DataChannelLabel {
		s.log.Warn("edge opened an unexpected data channel; ignored", "label", shorten(dc.Label()))
		return
	}
	dc.OnMessage(func(msg webrtc.DataChannelMessage) { s.c.onData(msg.Data) })
}
