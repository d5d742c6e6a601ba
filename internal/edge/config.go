package edge

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/stoa-rtc/stoa/internal/connlimit"
	"github.com/stoa-rtc/stoa/internal/guard"
	"github.com/stoa-rtc/stoa/internal/ticket"
	"github.com/stoa-rtc/stoa/token"
)

// Config configures an edge. Zero values take the defaults of Default.
type Config struct {
	// ID names the edge in the cluster, in tickets and in events.
	ID string
	// Region is the region the edge serves.
	Region string
	// RTCAddr is the address of the single UDP port (and TCP fallback port, same number) that carries all ICE
	// traffic, e.g. "0.0.0.0:7882". Port 0 picks a free port.
	RTCAddr string
	// PublicIPs, if set, are the addresses advertised in ICE candidates instead of the interface addresses (for an
	// edge behind 1:1 NAT).
	PublicIPs []string
	// Verifier holds the projects' certificates; the edge verifies every join and renewal with it, offline.
	Verifier *token.Verifier
	// Tickets, if set, are the dispatcher keys this edge trusts, and every join must carry a dispatcher's ticket
	// that names this edge; nil admits joins on the token alone (a single edge without a dispatcher).
	Tickets *ticket.Keys
	// Guard, if set, limits connections and messages per client address and blocks addresses that keep sending
	// bad requests (invalid tokens or tickets, malformed messages), region-wide through its BlockStore.
	Guard *guard.Guard
	// Clock gives the time for expiry decisions (default: the system clock).
	Clock Clock
	// Logger receives the edge's logs (default: discard). Tokens and keys are never logged.
	Logger *slog.Logger
	// Events, if set, receives join, leave, publish and error events, ready for the console. It must not block.
	Events func(Event)
	// ChannelsChanged, if set, is called when a channel arrives on the edge or leaves it (see Channels), so that
	// its placement can be announced at once. It must not block.
	ChannelsChanged func()
	// AllowedOrigins are the WebSocket Origin patterns browsers may connect from ("*": any; tokens authorize).
	AllowedOrigins []string

	// ExpiryWarning is how long before a privilege expires the client is warned.
	ExpiryWarning time.Duration
	// IdleTimeout removes a session that sent nothing for this long.
	IdleTimeout time.Duration
	// JoinTimeout removes a session that has not joined this long after its WebSocket opened, whatever else it
	// sends meanwhile; an unjoined session never counts as load (see Server.Joined).
	JoinTimeout time.Duration
	// ConnLimits caps the connections per client address on the ICE TCP port (its MaxPerAddr, IPv6PrefixLen and
	// Exempt; zero fields take connlimit's defaults). The signaling listener is capped by whoever opens it.
	ConnLimits connlimit.Config
	// MessageRate and MessageBurst limit the signaling messages a session may send per second.
	MessageRate  float64
	MessageBurst int
	// MaxTracksPerParticipant limits publications per participant.
	MaxTracksPerParticipant int
	// QualityInterval is how often each session reports its media quality in a "quality" event.
	QualityInterval time.Duration
}

// Default returns the defaults.
func Default() Config {
	return Config{
		ID:                      "edge-1",
		Region:                  "local",
		RTCAddr:                 "127.0.0.1:0",
		Clock:                   realClock{},
		Logger:                  slog.New(slog.DiscardHandler),
		AllowedOrigins:          []string{"*"},
		ExpiryWarning:           30 * time.Second,
		IdleTimeout:             30 * time.Second,
		JoinTimeout:             5 * time.Second,
		MessageRate:             20,
		MessageBurst:            50,
		MaxTracksPerParticipant: 8,
		QualityInterval:         10 * time.Second,
	}
}

// withDefaults fills the zero fields of c from Default.
func (c Config) withDefaults() Config {
	d := Default()
	if c.ID == "" {
		c.ID = d.ID
	}
	if c.Region == "" {
		c.Region = d.Region
	}
	if c.RTCAddr == "" {
		c.RTCAddr = d.RTCAddr
	}
	if c.Clock == nil {
		c.Clock = d.Clock
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	if c.AllowedOrigins == nil {
		c.AllowedOrigins = d.AllowedOrigins
	}
	if c.ExpiryWarning == 0 {
		c.ExpiryWarning = d.ExpiryWarning
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.JoinTimeout == 0 {
		c.JoinTimeout = d.JoinTimeout
	}
	if c.MessageRate == 0 {
		c.MessageRate = d.MessageRate
	}
	if c.MessageBurst == 0 {
		c.MessageBurst = d.MessageBurst
	}
	if c.MaxTracksPerParticipant == 0 {
		c.MaxTracksPerParticipant = d.MaxTracksPerParticipant
	}
	if c.QualityInterval == 0 {
		c.QualityInterval = d.QualityInterval
	}
	return c
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.Verifier == nil {
		errs = append(errs, errors.New("edge: Verifier is required"))
	}
	if _, err := netip.ParseAddrPort(c.RTCAddr); err != nil {
		errs = append(errs, fmt.Errorf("edge: RTCAddr %q: want IP:PORT", c.RTCAddr))
	}
	for _, ip := range c.PublicIPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			errs = append(errs, fmt.Errorf("edge: PublicIPs: %q is not an IP address", ip))
		}
	}
	if c.ExpiryWarning < 0 || c.IdleTimeout < 0 || c.JoinTimeout < 0 || c.MessageRate < 0 || c.MessageBurst < 0 || c.MaxTracksPerParticipant < 0 ||
		c.QualityInterval < 0 {
		errs = append(errs, errors.New("edge: durations and limits must not be negative"))
	}
	if err := c.ConnLimits.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
