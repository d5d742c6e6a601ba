package guard

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"time"
)

// Class is an endpoint class with its own rate limit.
type Class uint8

const (
	// Dispatch is a POST /v1/dispatch request.
	Dispatch Class = iota
	// Connect is a new signaling WebSocket connection to an edge.
	Connect
	// Message is one signaling message received on an edge.
	Message

	numClasses
)

// String returns the class's name as it appears in events.
func (c Class) String() string {
	switch c {
	case Dispatch:
		return "dispatch"
	case Connect:
		return "connect"
	case Message:
		return "message"
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// MarshalText lets a Class appear by name in JSON events.
func (c Class) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// Limit is a token bucket: Rate requests per second on average, at most Burst at once.
type Limit struct {
	// Rate is the sustained number of requests per second. math.Inf(1) disables the limit.
	Rate float64
	// Burst is the number of requests allowed at once after a quiet period.
	Burst int
}

// NoLimit disables the rate limit of a class.
var NoLimit = Limit{Rate: math.Inf(1), Burst: 1}

// Config configures a Guard. Zero fields take the defaults of Default; Validate reports every problem.
type Config struct {
	// Dispatch limits POST /v1/dispatch per key (default 20/s, burst 100: a NAT of many users joining at once).
	Dispatch Limit
	// Connect limits new signaling connections to an edge per key (default 10/s, burst 50).
	Connect Limit
	// Message limits signaling messages per key, across all its sessions (default 100/s, burst 400; each session
	// also has the edge's own per-session limit).
	Message Limit

	// BadThreshold bad requests from one key within BadWindow block it (default 20, at most 1000).
	BadThreshold int
	// BadWindow is the sliding window in which bad requests are counted (default 1m).
	BadWindow time.Duration
	// BlockFor is how long a block lasts (default 10m).
	BlockFor time.Duration

	// Allow lists trusted ranges that are never limited, scored or blocked (default: none; loopback is not exempt).
	// The list is scanned linearly: keep it short.
	Allow []netip.Prefix
	// TrustedProxies lists the reverse proxies whose X-Forwarded-For header is believed (default: none, the client
	// is r.RemoteAddr). The client is the rightmost X-Forwarded-For address that is not itself a trusted proxy.
	TrustedProxies []netip.Prefix
	// IPv6PrefixLen is how many leading bits of an IPv6 address form its key (default 64; 128 keys every address
	// on its own). Every node of a region must use the same value, since blocks are shared by key.
	IPv6PrefixLen int

	// MaxTracked bounds the number of keys tracked at once (default 100,000, about 20 MB; at least 64). See the
	// package documentation for what is evicted when the bound is reached.
	MaxTracked int
	// SweepInterval is how often Run drops keys at rest and reports expired blocks (default 1m).
	SweepInterval time.Duration
	// SummaryInterval is how often Run reports refused requests (default 10s).
	SummaryInterval time.Duration
	// MaxSummaries bounds the per-key summary events of each type in one interval; the remaining keys are
	// reported in one aggregate event (default 100).
	MaxSummaries int

	// Store shares blocks with the rest of the region (default: none, blocks are local to this Guard).
	Store BlockStore
	// PublishTimeout bounds one BlockStore call made by Run (default 2s). While the store fails, Run tries the
	// oldest unpublished block once a second, the others waiting behind it, until each is published or over.
	PublishTimeout time.Duration
	// Node names this dispatcher or edge in the blocks it makes.
	Node string

	// Clock, if set, gives the current time instead of the system clock. Tests inject a fake clock. (The system
	// clock is read through its monotonic part only: cheaper, and immune to steps of the wall clock.)
	Clock func() time.Time
	// Events, if set, receives blocks, unblocks and summaries. It is called synchronously, possibly from several
	// goroutines at once, and must not block.
	Events func(Event)
	// Logger receives the same facts as Events at Info and Warn (default: discard).
	Logger *slog.Logger
}

// Default returns the default configuration.
func Default() Config {
	return Config{
		Dispatch:        Limit{Rate: 20, Burst: 100},
		Connect:         Limit{Rate: 10, Burst: 50},
		Message:         Limit{Rate: 100, Burst: 400},
		BadThreshold:    20,
		BadWindow:       time.Minute,
		BlockFor:        10 * time.Minute,
		IPv6PrefixLen:   64,
		MaxTracked:      100_000,
		SweepInterval:   time.Minute,
		SummaryInterval: 10 * time.Second,
		MaxSummaries:    100,
		PublishTimeout:  2 * time.Second,
		Logger:          slog.New(slog.DiscardHandler),
	}
}

// withDefaults fills the zero fields of c from Default.
func (c Config) withDefaults() Config {
	d := Default()
	if c.Dispatch == (Limit{}) {
		c.Dispatch = d.Dispatch
	}
	if c.Connect == (Limit{}) {
		c.Connect = d.Connect
	}
	if c.Message == (Limit{}) {
		c.Message = d.Message
	}
	if c.BadThreshold == 0 {
		c.BadThreshold = d.BadThreshold
	}
	if c.BadWindow == 0 {
		c.BadWindow = d.BadWindow
	}
	if c.BlockFor == 0 {
		c.BlockFor = d.BlockFor
	}
	if c.IPv6PrefixLen == 0 {
		c.IPv6PrefixLen = d.IPv6PrefixLen
	}
	if c.MaxTracked == 0 {
		c.MaxTracked = d.MaxTracked
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = d.SweepInterval
	}
	if c.SummaryInterval == 0 {
		c.SummaryInterval = d.SummaryInterval
	}
	if c.MaxSummaries == 0 {
		c.MaxSummaries = d.MaxSummaries
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = d.PublishTimeout
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return c
}

// maxBadThreshold bounds the per-key ring of bad-request times (8 bytes each).
const maxBadThreshold = 1000

// Validate reports every problem of the configuration at once. Zero fields are valid: they take the defaults.
func (c Config) Validate() error {
	var errs []error
	for _, l := range []struct {
		name string
		l    Limit
	}{{"Dispatch", c.Dispatch}, {"Connect", c.Connect}, {"Message", c.Message}} {
		if l.l == (Limit{}) {
			continue
		}
		if math.IsNaN(l.l.Rate) || l.l.Rate <= 0 || (l.l.Rate > 1e9 && !math.IsInf(l.l.Rate, 1)) {
			errs = append(errs, fmt.Errorf("guard: %s.Rate %v: want 0 < requests per second <= 1e9, or +Inf for no limit", l.name, l.l.Rate))
		}
		if l.l.Burst < 1 {
			errs = append(errs, fmt.Errorf("guard: %s.Burst %d: want at least 1", l.name, l.l.Burst))
		} else if l.l.Rate > 0 && !math.IsInf(l.l.Rate, 1) && float64(l.l.Burst)/l.l.Rate > (100*24*time.Hour).Seconds() {
			errs = append(errs, fmt.Errorf("guard: %s: Burst/Rate must not exceed 100 days", l.name))
		}
	}
	if c.BadThreshold < 0 || c.BadThreshold > maxBadThreshold {
		errs = append(errs, fmt.Errorf("guard: BadThreshold %d: want 1 to %d", c.BadThreshold, maxBadThreshold))
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"BadWindow", c.BadWindow}, {"BlockFor", c.BlockFor}, {"SweepInterval", c.SweepInterval},
		{"SummaryInterval", c.SummaryInterval}, {"PublishTimeout", c.PublishTimeout},
	} {
		if d.d < 0 {
			errs = append(errs, fmt.Errorf("guard: %s %v: must not be negative", d.name, d.d))
		}
	}
	for _, p := range c.Allow {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("guard: Allow: %v is not a valid prefix", p))
		}
	}
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("guard: TrustedProxies: %v is not a valid prefix", p))
		}
	}
	if c.IPv6PrefixLen < 0 || c.IPv6PrefixLen > 128 || (c.IPv6PrefixLen != 0 && c.IPv6PrefixLen < 32) {
		errs = append(errs, fmt.Errorf("guard: IPv6PrefixLen %d: want 32 to 128", c.IPv6PrefixLen))
	}
	if c.MaxTracked < 0 || (c.MaxTracked != 0 && c.MaxTracked < numShards) {
		errs = append(errs, fmt.Errorf("guard: MaxTracked %d: want at least %d", c.MaxTracked, numShards))
	}
	if c.MaxSummaries < 0 {
		errs = append(errs, fmt.Errorf("guard: MaxSummaries %d: must not be negative", c.MaxSummaries))
	}
	return errors.Join(errs...)
}
