// Package edge implements Stoa's edge: the SFU that clients connect to. It verifies tokens offline, keeps rooms of
// participants keyed by (App ID, channel), enforces the token's privileges for as long as a session lasts, and
// forwards media and data between participants without being able to read them: payloads are SFrame ciphertext
// and the edge has no code path that accepts a media key.
//
// Signaling is the JSON protocol of internal/protocol over a WebSocket (docs/protocol.md); media is WebRTC through
// Pion, with all ICE traffic on one UDP port (UDP mux) and a TCP fallback on the same port number.
package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stoa-rtc/stoa/internal/connlimit"
	"github.com/stoa-rtc/stoa/internal/relay"
	"github.com/stoa-rtc/stoa/internal/rtc"
)

// roomKey identifies a room: channels of different apps never meet.
type roomKey struct{ appID, channel string }

// Server is an edge. Create it with New, serve Handler over HTTP, and call Run.
type Server struct {
	cfg     Config
	api     *webrtc.API
	udp     net.PacketConn
	tcp     net.Listener
	metrics *metrics

	mu       sync.Mutex
	rooms    map[roomKey]*room
	sessions map[*session]struct{}
	joined   int // sessions that have joined a room
	closing  bool
	draining bool
	wg       sync.WaitGroup // sessions

	// relay links (cascade.go)
	relay   *relay.Transport
	linkWG  sync.WaitGroup // links being opened
	stopCtx context.Context
	stop    context.CancelFunc
}

// New opens the edge's ICE ports and prepares it to serve.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	udp, tcp, err := listenRTC(cfg.RTCAddr)
	if err != nil {
		return nil, err
	}
	tcp = connlimit.NewListener(tcp, cfg.ConnLimits)
	s := &Server{cfg: cfg, udp: udp, tcp: tcp, rooms: map[roomKey]*room{}, sessions: map[*session]struct{}{}}
	s.stopCtx, s.stop = context.WithCancel(context.Background())
	s.metrics = newMetrics(s)
	if s.api, err = s.newAPI(); err != nil {
		udp.Close()
		tcp.Close()
		return nil, err
	}
	return s, nil
}

// listenRTC opens the ICE ports: UDP, and the TCP fallback on the same port number so that one firewall rule
// number covers both. With port 0 it retries until it finds a number free for both protocols.
func listenRTC(addr string) (net.PacketConn, net.Listener, error) {
	ap := netip.MustParseAddrPort(addr) // validated by Config.Validate
	attempts := 1
	if ap.Port() == 0 {
		attempts = 20
	}
	var lastErr error
	for range attempts {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("edge: ICE UDP port: %w", err)
		}
		tcp, err := net.Listen("tcp", udp.LocalAddr().String())
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("edge: ICE TCP port: %w", lastErr)
}

func (s *Server) newAPI() (*webrtc.API, error) {
	m, ir, err := rtc.EdgeMediaEngine()
	if err != nil {
		return nil, err
	}
	// The muxes report every read on a closed socket, which is how every shutdown ends, as an error.
	lf := rtc.Logs{Log: s.cfg.Logger, Quiet: []string{"udpmux", "tcpmux"}}
	se := webrtc.SettingEngine{LoggerFactory: lf}
	se.SetICEUDPMux(webrtc.NewICEUDPMux(lf.NewLogger("udpmux"), s.udp))
	se.SetICETCPMux(webrtc.NewICETCPMux(lf.NewLogger("tcpmux"), s.tcp, 64))
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6})
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// Announce a publication as soon as it is negotiated, not at its first packet, so subscribers are ready.
	se.SetFireOnTrackBeforeFirstRTP(true)
	if len(s.cfg.PublicIPs) > 0 {
		se.SetNAT1To1IPs(s.cfg.PublicIPs, webrtc.ICECandidateTypeHost)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// RTCAddr returns the address of the ICE port.
func (s *Server) RTCAddr() net.Addr { return s.udp.LocalAddr() }

// ID returns the edge's id.
func (s *Server) ID() string { return s.cfg.ID }

// Handler serves the edge's HTTP endpoints: /v1/signal (WebSocket signaling), /healthz and /metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/signal", s.serveSignal)
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	return mux
}

func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	status := struct {
		Status   string `json:"status"`
		Edge     string `json:"edge"`
		Region   string `json:"region"`
		Sessions int    `json:"sessions"`
		Joined   int    `json:"joined"`
		Rooms    int    `json:"rooms"`
	}{"ok", s.cfg.ID, s.cfg.Region, len(s.sessions), s.joined, len(s.rooms)}
	if s.closing || s.draining {
		status.Status = "draining"
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if status.Status != "ok" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(status)
}

// Run serves until ctx is done, then removes every session with "shutting_down", closes the ICE ports and returns
// once every goroutine the edge started has stopped.
func (s *Server) Run(ctx context.Context) error {
	<-ctx.Done()
	s.mu.Lock()
	s.closing = true
	sessions := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	for _, ss := range sessions {
		ss.remove(codeShuttingDown, "the edge is shutting down")
	}
	s.wg.Wait()
	s.stop()
	s.linkWG.Wait()
	return errors.Join(s.udp.Close(), s.tcp.Close())
}

// Sessions returns the number of live sessions, joined or not.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Joined returns the number of sessions that have joined a room: the edge's load. A session that has not joined
// costs next to nothing and is gone by the join deadline, so it must not make the edge look full.
func (s *Server) Joined() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.joined
}

// countJoined adds d to the joined sessions.
func (s *Server) countJoined(d int) {
	s.mu.Lock()
	s.joined += d
	s.mu.Unlock()
}

// Drain stops the edge taking new sessions and moves its clients away: each is removed with "shutting_down",
// upon which clients go to the next edge of their ticket. Undrain takes new sessions again.
func (s *Server) Drain() {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return
	}
	s.draining = true
	sessions := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	s.cfg.Logger.Info("draining", "sessions", len(sessions))
	for _, ss := range sessions {
		ss.remove(codeShuttingDown, "the edge is draining; move to your next edge")
	}
}

// Undrain ends a drain.
func (s *Server) Undrain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.draining = false
}

// Draining reports whether the edge is draining.
func (s *Server) Draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// Channel names a channel of an app.
type Channel struct{ AppID, Name string }

// Channels returns the channels that have participants on this edge.
func (s *Server) Channels() []Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Channel, 0, len(s.rooms))
	for k := range s.rooms {
		out = append(out, Channel{AppID: k.appID, Name: k.channel})
	}
	return out
}

// addSession registers a session unless the edge is closing or draining.
func (s *Server) addSession(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.draining {
		return false
	}
	s.sessions[ss] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) removeSession(ss *session) {
	s.mu.Lock()
	delete(s.sessions, ss)
	s.mu.Unlock()
	s.wg.Done()
}

// room returns the room of key, creating it if needed.
func (s *Server) room(key roomKey) *room {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[key]
	if r == nil {
		r = newRoom(s, key)
		s.rooms[key] = r
		s.channelsChanged()
	}
	return r
}

// dropRoomIfEmpty forgets a room once its last participant has gone.
func (s *Server) dropRoomIfEmpty(r *room) {
	s.mu.Lock()
	drop := r.empty() && s.rooms[r.key] == r
	if drop {
		delete(s.rooms, r.key)
	}
	s.mu.Unlock()
	if drop {
		r.closeLinks() // the channel has left this edge: so do its links
		s.channelsChanged()
	}
}

func (s *Server) channelsChanged() {
	if f := s.cfg.ChannelsChanged; f != nil {
		f()
	}
}

func (s *Server) emit(e Event) {
	if s.cfg.Events == nil {
		return
	}
	e.Time = s.cfg.Clock.Now()
	e.Edge, e.Region = s.cfg.ID, s.cfg.Region
	s.cfg.Events(e)
}

type metrics struct {
	registry  *prometheus.Registry
	messages  *prometheus.CounterVec
	errors    *prometheus.CounterVec
	joins     *prometheus.CounterVec
	forwarded prometheus.Counter
	relayed   prometheus.Counter
	// forwardLatency is the time from a packet's arrival to its hand-over to every subscriber, sampled.
	forwardLatency prometheus.Histogram
}

func newMetrics(s *Server) *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	m.messages = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stoa_edge_signal_messages_total",
		Help: "Signaling messages received, by type."}, []string{"type"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stoa_edge_signal_errors_total",
		Help: "Signaling errors sent, by code."}, []string{"code"})
	m.joins = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stoa_edge_joins_total",
		Help: "Join attempts, by result code (ok or an error code)."}, []string{"result"})
	m.forwarded = prometheus.NewCounter(prometheus.CounterOpts{Name: "stoa_edge_forwarded_packets_total",
		Help: "RTP packets received from publishers for forwarding."})
	m.relayed = prometheus.NewCounter(prometheus.CounterOpts{Name: "stoa_edge_relayed_packets_total",
		Help: "RTP packets received from other edges over relay links for forwarding."})
	m.forwardLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "stoa_edge_forward_seconds",
		Help:    "Time from a packet's arrival at the edge to its hand-over to the last subscriber (1 packet in 16).",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .002, .003, .005, .01, .025, .05}})
	sessions := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stoa_edge_sessions", Help: "Live sessions, joined or not."},
		func() float64 { return float64(s.Sessions()) })
	joined := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stoa_edge_joined_sessions", Help: "Sessions that have joined a room (the load)."},
		func() float64 { return float64(s.Joined()) })
	rooms := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stoa_edge_rooms", Help: "Rooms with participants."},
		func() float64 { s.mu.Lock(); defer s.mu.Unlock(); return float64(len(s.rooms)) })
	m.registry.MustRegister(m.messages, m.errors, m.joins, m.forwarded, m.relayed, m.forwardLatency, sessions, joined, rooms,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// maxIdle bounds how long a write to a slow client may take before the session is dropped.
const writeTimeout = 5 * time.Second
