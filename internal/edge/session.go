package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"golang.org/x/time/rate"

	"github.com/stoa-rtc/stoa/internal/guard"
	"github.com/stoa-rtc/stoa/internal/protocol"
	"github.com/stoa-rtc/stoa/internal/ticket"
	"github.com/stoa-rtc/stoa/token"
)

// Local names for codes used by the server outside a session.
const codeShuttingDown = protocol.CodeShuttingDown

// readLimit bounds what the WebSocket reads at all; messages between protocol.MaxMessageSize and readLimit get a
// message_too_large error and the session goes on, larger ones end the session.
const readLimit = 1 << 20

// session is one client's signaling connection and, once joined, its participation in a room with its two peer
// connections. One goroutine, run, owns the session's state: the reader, Pion callbacks, timers and other
// sessions post functions to it, so no state below "owned by run" is ever touched concurrently.
type session struct {
	srv  *Server
	id   string
	conn *websocket.Conn
	ip   string
	ua   string
	log  *slog.Logger
	// clientIP is the guarded address (zero without a guard).
	clientIP netip.Addr

	tasks   chan func()
	out     chan *protocol.Message
	done    chan struct{}
	endOnce sync.Once
	reason  protocol.Code // why the session ended; written once, before done is closed
	wg      sync.WaitGroup

	// Set at join, read-only afterwards (other sessions read uid and autoSubscribe, the room reads hidden).
	uid           string
	autoSubscribe bool
	// hidden: the participant is never announced to others, here or over relay links, and cannot publish.
	hidden bool

	// owned by run
	joined     bool
	room       *room
	grant      token.Grant
	grantGen   int
	stopTimers []func() bool
	pubPC      *webrtc.PeerConnection
	subPC      *webrtc.PeerConnection
	subData    *webrtc.DataChannel
	subBusy    bool                     // a subscriber offer awaits its answer
	subAgain   bool                     // changes arrived meanwhile: offer again after the answer
	pending    map[string]protocol.Kind // publications announced, track not yet arrived
	published  map[string]*publication
	subscribed map[string]*webrtc.RTPSender // track id → sender (nil for data)
	limiter    *rate.Limiter
	floods     int
	downStats  map[string]*downStat // track id → the subscriber's reports on it (audio and video)

	// quality reports (quality.go), owned by run
	joinStart    time.Time     // when the join request was handled
	joinTime     time.Duration // join request to subscriber connection "connected"; 0 until then
	joinReported bool
	lastReport   int64 // nanotime of the last report

	pubMu     sync.Mutex // guards pubPC for sendKeyframeRequests
	keyframes chan uint32
}

func (s *Server) serveSignal(w http.ResponseWriter, r *http.Request) {
	var clientIP netip.Addr
	if g := s.cfg.Guard; g != nil {
		clientIP = g.ClientIP(r)
		if d := g.Check(clientIP, guard.Connect); !d.Allowed() {
			guard.WriteDenied(w, d) // before the upgrade: a blocked client costs one HTTP answer
			return
		}
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.AllowedOrigins})
	if err != nil {
		return // Accept has answered the request
	}
	ss := &session{
		srv: s, id: randomID(8), conn: conn, ua: r.UserAgent(), clientIP: clientIP,
		tasks: make(chan func(), 256), out: make(chan *protocol.Message, 256), done: make(chan struct{}),
		keyframes: make(chan uint32, 4),
		pending:   map[string]protocol.Kind{}, published: map[string]*publication{}, subscribed: map[string]*webrtc.RTPSender{},
		downStats: map[string]*downStat{},
		limiter:   rate.NewLimiter(rate.Limit(s.cfg.MessageRate), s.cfg.MessageBurst),
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		ss.ip = host
	}
	ss.log = s.cfg.Logger.With("component", "edge", "session", ss.id)
	if !s.addSession(ss) {
		conn.Close(websocket.StatusTryAgainLater, string(codeShuttingDown))
		return
	}
	defer s.removeSession(ss)
	// The join deadline: a socket that never joins would otherwise live on pings, or on nothing for IdleTimeout.
	joinDeadline := time.AfterFunc(s.cfg.JoinTimeout, func() { ss.post(ss.joinExpired) })
	defer joinDeadline.Stop()
	conn.SetReadLimit(readLimit)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	written := make(chan struct{})
	ss.wg.Add(1)
	go ss.read(ctx)
	go func() {
		ss.write()
		close(written)
	}()
	ss.run()
	// The writer flushes the last messages (an error, "removed") and closes the socket; only then may the reader's
	// context end, since cancelling a read closes the connection at once.
	<-written
	cancel()
	ss.wg.Wait()
}

// joinExpired removes the session if it has not joined by the join deadline: a client sends its join first, at
// once, so one that has not is probably holding a socket open for nothing, and it is scored.
func (s *session) joinExpired() {
	if s.joined {
		return
	}
	s.reportBad(guard.ReasonJoinTimeout)
	s.send(&protocol.Message{Type: protocol.TypeRemoved, Removed: &protocol.Removed{Reason: protocol.CodeTimeout,
		Message: "no join within " + s.srv.cfg.JoinTimeout.String()}})
	s.end(protocol.CodeTimeout)
}

// run executes posted tasks until the session ends, then tears it down.
func (s *session) run() {
	for {
		select {
		case f := <-s.tasks:
			f()
		case <-s.done:
			s.cleanup()
			return
		}
	}
}

// post queues f to run on the session's goroutine. A session whose queue is full is too slow to keep up with its
// room and is ended rather than allowed to hold everyone else up.
func (s *session) post(f func()) {
	select {
	case <-s.done:
	case s.tasks <- f:
	default:
		s.end(protocol.CodeInternal)
	}
}

// end ends the session; run then cleans up. Safe from any goroutine.
func (s *session) end(reason protocol.Code) {
	s.endOnce.Do(func() {
		s.reason = reason
		close(s.done)
	})
}

// remove tells the client why it is being removed, then ends the session. Safe from any goroutine.
func (s *session) remove(reason protocol.Code, message string) {
	s.post(func() {
		s.send(&protocol.Message{Type: protocol.TypeRemoved, Removed: &protocol.Removed{Reason: reason, Message: message}})
		s.end(reason)
	})
}

// send queues m for the client. Called only on the session's goroutine (which alone closes out).
func (s *session) send(m *protocol.Message) {
	select {
	case s.out <- m:
	default:
		s.end(protocol.CodeInternal) // the client does not read: drop it
	}
}

func (s *session) sendError(id uint32, code protocol.Code, message string) {
	s.srv.metrics.errors.WithLabelValues(string(code)).Inc()
	s.send(&protocol.Message{Type: protocol.TypeError, ID: id, Error: &protocol.Error{Code: code, Message: message}})
}

func (s *session) write() {
	for m := range s.out {
		b, err := protocol.Encode(m)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		err = s.conn.Write(ctx, websocket.MessageText, b)
		cancel()
		if err != nil {
			s.end(protocol.CodeInternal)
			break
		}
	}
	for range s.out {
		// drain after a failed write so that run never blocks
	}
	status := websocket.StatusNormalClosure
	if s.reason != protocol.CodeLeft {
		status = websocket.StatusPolicyViolation
		if s.reason == protocol.CodeShuttingDown {
			status = websocket.StatusGoingAway
		}
	}
	s.conn.Close(status, string(s.reason))
}

// read decodes client messages and posts them to run. A session silent for IdleTimeout is removed.
func (s *session) read(ctx context.Context) {
	defer s.wg.Done()
	for {
		rctx, cancel := context.WithTimeout(ctx, s.srv.cfg.IdleTimeout)
		typ, b, err := s.conn.Read(rctx)
		timedOut := rctx.Err() == context.DeadlineExceeded && ctx.Err() == nil
		cancel()
		if err != nil {
			switch {
			case timedOut:
				s.remove(protocol.CodeTimeout, "no message for too long")
			case websocket.CloseStatus(err) == websocket.StatusMessageTooBig:
				s.end(protocol.CodeMessageTooLarge)
			default:
				s.end(protocol.CodeLeft)
			}
			return
		}
		if g := s.srv.cfg.Guard; g != nil {
			switch d := g.Check(s.clientIP, guard.Message); d.Verdict {
			case guard.Blocked:
				s.remove(protocol.CodeBlocked, "this address is blocked for repeated bad requests")
				return
			case guard.Limited:
				s.post(func() { s.sendError(0, protocol.CodeRateLimited, "too many messages from this address") })
				continue
			}
		}
		if !s.limiter.Allow() {
			s.post(func() {
				if !s.joined {
					s.reportBad(guard.ReasonFlood)
				}
				s.floods++
				s.sendError(0, protocol.CodeRateLimited, "too many messages; slow down")
				if s.floods > 3*s.srv.cfg.MessageBurst {
					s.send(&protocol.Message{Type: protocol.TypeRemoved, Removed: &protocol.Removed{Reason: protocol.CodeRateLimited, Message: "flooding"}})
					s.end(protocol.CodeRateLimited)
				}
			})
			continue
		}
		if typ != websocket.MessageText {
			s.reportBad(guard.ReasonBadRequest)
			s.post(func() { s.sendError(0, protocol.CodeBadRequest, "messages must be JSON text") })
			continue
		}
		m, err := protocol.Decode(b)
		if err != nil {
			var de *protocol.DecodeError
			code, reason := protocol.CodeBadRequest, "bad message"
			if errors.As(err, &de) {
				code, reason = de.Code, de.Reason
			}
			s.reportBad(guard.ReasonBadRequest)
			s.post(func() { s.sendError(0, code, reason) })
			continue
		}
		s.srv.metrics.messages.WithLabelValues(string(m.Type)).Inc()
		s.post(func() { s.handle(m) })
	}
}

// handle runs one client message on the session's goroutine.
func (s *session) handle(m *protocol.Message) {
	if m.Type == protocol.TypeJoin {
		s.handleJoin(m)
		return
	}
	if !s.joined {
		s.reportBad(guard.ReasonNotJoined)
		s.sendError(m.ID, protocol.CodeNotJoined, "join first")
		return
	}
	switch m.Type {
	case protocol.TypePing:
		s.send(&protocol.Message{Type: protocol.TypePong, ID: m.ID})
	case protocol.TypeLeave:
		s.end(protocol.CodeLeft)
	case protocol.TypeOffer:
		s.handlePublisherOffer(m)
	case protocol.TypeAnswer:
		s.handleSubscriberAnswer(m)
	case protocol.TypePublish:
		s.handlePublish(m)
	case protocol.TypeUnpublish:
		p := s.published[m.Unpublish.TrackID]
		if p == nil {
			if _, ok := s.pending[m.Unpublish.TrackID]; !ok {
				s.sendError(m.ID, protocol.CodeUnknownTrack, "no such track of yours")
				return
			}
			delete(s.pending, m.Unpublish.TrackID)
		} else {
			delete(s.published, p.id)
			s.room.unpublish(p)
		}
		s.send(&protocol.Message{Type: protocol.TypeOK, ID: m.ID})
	case protocol.TypeSubscribe:
		p := s.room.track(m.Subscribe.TrackID)
		if p == nil || p.owner == s {
			s.sendError(m.ID, protocol.CodeUnknownTrack, "no such track")
			return
		}
		s.subscribe(p)
		s.send(&protocol.Message{Type: protocol.TypeOK, ID: m.ID})
	case protocol.TypeUnsubscribe:
		p := s.room.track(m.Unsubscribe.TrackID)
		if p == nil {
			s.sendError(m.ID, protocol.CodeUnknownTrack, "no such track")
			return
		}
		s.unsubscribe(p)
		s.send(&protocol.Message{Type: protocol.TypeOK, ID: m.ID})
	case protocol.TypeRenew:
		s.handleRenew(m)
	default:
		s.sendError(m.ID, protocol.CodeBadRequest, "a client does not send "+string(m.Type))
	}
}

func (s *session) handleJoin(m *protocol.Message) {
	j := m.Join
	start := time.Now()
	if s.joined {
		s.sendError(m.ID, protocol.CodeAlreadyJoined, "this session has joined already")
		return
	}
	verified := false // the token verified with a certificate of j.AppID
	fail := func(code protocol.Code, message string) {
		s.srv.metrics.joins.WithLabelValues(string(code)).Inc()
		s.reportBad(badReason(code))
		ev := Event{Type: EventJoinFailed, Channel: j.Channel, UID: j.UID, Session: s.id, Reason: string(code), IP: s.ip, UserAgent: s.ua}
		// Anyone can name an App ID: a failure is the project's only once its certificate vouched for the
		// token; before that it belongs to no project, and the name it gave is kept for operators.
		if verified {
			ev.AppID = j.AppID
		} else {
			ev.ClaimedAppID = j.AppID
		}
		s.srv.emit(ev)
		s.sendError(m.ID, code, message)
		s.end(code)
	}
	if j.Version != protocol.Version {
		fail(protocol.CodeUnsupportedVersion, "this edge speaks protocol version 1")
		return
	}
	g, err := s.srv.cfg.Verifier.Verify(j.Token, token.Expect{AppID: j.AppID, Channel: j.Channel, UID: j.UID})
	if err != nil {
		fail(protocol.TokenErrorCode(err), err.Error())
		return
	}
	verified = true
	if j.Hidden && !g.Allows(token.PrivilegeJoinHidden, s.srv.cfg.Clock.Now()) {
		fail(protocol.CodeNoPrivilege, "the token does not grant joining hidden")
		return
	}
	if keys := s.srv.cfg.Tickets; keys != nil {
		if _, err := keys.Verify(j.Ticket, ticket.Want{Edge: s.srv.cfg.ID, AppID: j.AppID, Channel: j.Channel,
			UID: j.UID, Now: s.srv.cfg.Clock.Now()}); err != nil {
			fail(protocol.CodeInvalidTicket, err.Error())
			return
		}
	}
	s.uid, s.grant, s.joined, s.hidden = j.UID, g, true, j.Hidden
	s.joinStart = start
	s.autoSubscribe = j.AutoSubscribe == nil || *j.AutoSubscribe
	s.log = s.log.With("app", j.AppID, "channel", j.Channel, "uid", j.UID, "hidden", j.Hidden)

	if err := s.newSubscriberPC(); err != nil {
		s.log.Error("subscriber connection", "err", err)
		fail(protocol.CodeInternal, "could not create the subscriber connection")
		s.joined = false
		return
	}
	s.srv.countJoined(1) // undone in cleanup
	s.room = s.srv.room(roomKey{appID: j.AppID, channel: j.Channel})
	others, tracks, replaced := s.room.join(s)
	if replaced != nil {
		replaced.remove(protocol.CodeReplaced, "another session joined with this uid")
	}
	s.srv.metrics.joins.WithLabelValues("ok").Inc()
	s.send(&protocol.Message{Type: protocol.TypeJoined, ID: m.ID, Joined: &protocol.Joined{
		Session: s.id, Edge: s.srv.cfg.ID, Participants: nonNil(others), Privileges: s.privilegeStates(),
		ServerTime: s.srv.cfg.Clock.Now().UnixMilli(),
	}})
	s.scheduleExpiry()
	s.srv.emit(Event{Type: EventJoin, AppID: j.AppID, Channel: j.Channel, UID: j.UID, Session: s.id, IP: s.ip, UserAgent: s.ua})
	s.log.Info("joined")
	s.startQualityReports()
	if s.autoSubscribe {
		for _, p := range tracks {
			s.addSubscription(p)
		}
	}
	s.negotiateSubscriber()
}

// reportBad scores a bad request against the client's address.
func (s *session) reportBad(reason string) {
	if g := s.srv.cfg.Guard; g != nil && reason != "" {
		g.Bad(s.clientIP, reason)
	}
}

// badReason says which failed joins count as bad requests: those a legitimate client does not make.
func badReason(c protocol.Code) string {
	switch c {
	case protocol.CodeInvalidToken, protocol.CodeChannelMismatch, protocol.CodeUIDMismatch, protocol.CodeAppMismatch:
		return guard.ReasonInvalidToken
	case protocol.CodeTokenExpired:
		return guard.ReasonTokenExpired
	case protocol.CodeUnknownApp:
		return guard.ReasonUnknownApp
	case protocol.CodeInvalidTicket:
		return guard.ReasonInvalidTicket
	case protocol.CodeUnsupportedVersion:
		return guard.ReasonBadRequest
	}
	return ""
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (s *session) handleRenew(m *protocol.Message) {
	key := s.room.key
	g, err := s.srv.cfg.Verifier.Verify(m.Renew.Token, token.Expect{AppID: key.appID, Channel: key.channel, UID: s.uid})
	if err != nil {
		s.sendError(m.ID, protocol.TokenErrorCode(err), err.Error())
		return
	}
	if s.hidden && !g.Allows(token.PrivilegeJoinHidden, s.srv.cfg.Clock.Now()) {
		s.sendError(m.ID, protocol.CodeNoPrivilege, "a hidden participant's new token must grant joining hidden")
		return
	}
	s.grant = g
	s.scheduleExpiry()
	s.send(&protocol.Message{Type: protocol.TypeRenewed, ID: m.ID, Renewed: &protocol.Renewed{Privileges: s.privilegeStates()}})
}

func (s *session) handlePublish(m *protocol.Message) {
	kind := m.Publish.Kind
	if s.hidden {
		s.sendError(m.ID, protocol.CodeNoPrivilege, "a hidden participant does not publish")
		return
	}
	priv := kindPrivilege[kind]
	if at, ok := s.grant.PrivilegeExpiresAt(priv); !ok {
		s.sendError(m.ID, protocol.CodeNoPrivilege, "the token does not grant publishing "+string(kind))
		return
	} else if !s.srv.cfg.Clock.Now().Before(at) {
		s.sendError(m.ID, protocol.CodePrivilegeExpired, "the privilege to publish "+string(kind)+" has expired")
		return
	}
	if len(s.pending)+len(s.published) >= s.srv.cfg.MaxTracksPerParticipant {
		s.sendError(m.ID, protocol.CodeTooManyTracks, "publication limit reached")
		return
	}
	id := "TR_" + randomID(9)
	s.pending[id] = kind
	s.send(&protocol.Message{Type: protocol.TypeOK, ID: m.ID, OK: &protocol.OK{TrackID: id}})
}

var kindPrivilege = map[protocol.Kind]token.Privilege{
	protocol.KindAudio: token.PrivilegePublishAudio,
	protocol.KindVideo: token.PrivilegePublishVideo,
	protocol.KindData:  token.PrivilegePublishData,
}

func (s *session) ownPublications() []*publication {
	// Called from room.leave during cleanup, on the session's goroutine.
	out := make([]*publication, 0, len(s.published))
	for _, p := range s.published {
		out = append(out, p)
	}
	return out
}

// cleanup tears the session down on its goroutine: leave the room, stop timers, close both connections, and let
// the writer flush and close the socket.
func (s *session) cleanup() {
	for _, stop := range s.stopTimers {
		stop()
	}
	if s.joined {
		s.srv.countJoined(-1)
		s.room.leave(s, s.reason)
		s.srv.emit(Event{Type: EventLeave, AppID: s.room.key.appID, Channel: s.room.key.channel, UID: s.uid,
			Session: s.id, Reason: string(s.reason), IP: s.ip})
		s.log.Info("left", "reason", s.reason)
		s.reportQuality(true)
	}
	s.pubMu.Lock()
	if s.pubPC != nil {
		s.pubPC.Close()
	}
	s.pubMu.Unlock()
	if s.subPC != nil {
		s.subPC.Close()
	}
	close(s.out)
}

// randomID returns n random bytes in hex, for session and track ids.
func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// requestKeyframe queues a picture loss indication for one of this session's published tracks. It is called on
// forwarding goroutines, which must not block on the network: a full queue drops the request (the forwarder
// repeats it).
func (s *session) requestKeyframe(ssrc uint32) {
	select {
	case s.keyframes <- ssrc:
	default:
	}
}

// sendKeyframeRequests sends the queued keyframe requests to the publisher until the session ends.
func (s *session) sendKeyframeRequests() {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case ssrc := <-s.keyframes:
			s.pubMu.Lock()
			pc := s.pubPC
			s.pubMu.Unlock()
			pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
		}
	}
}

// gatherTimeout bounds the wait for ICE candidates before an SDP is sent (host candidates on a mux are immediate).
const gatherTimeout = 5 * time.Second
