package sdk

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stoa-rtc/stoa/internal/protocol"
	"github.com/stoa-rtc/stoa/sframe"
	"github.com/stoa-rtc/stoa/sframe/media"
)

// Config configures a Client. AppID, Channel, UID, Token, Secret and at least one entry URL are required; zero
// values of the other fields take the defaults documented on them.
//
// A Config prints and logs with its Token redacted; the Secret is an *sframe.Key, which never prints.
type Config struct {
	// URL is the entry point of the network: a dispatcher's base URL ("https://rtc.example.com"); the client
	// POSTs to URL + "/v1/dispatch".
	URL string
	// URLs are further entry points, tried in turn after URL when one is unreachable or answers with a server
	// error.
	URLs []string
	// Region asks the dispatcher for edges of this region; empty lets the dispatcher choose.
	Region string

	// AppID, Channel and UID say who joins where; UID is the uid as a string (a numeric uid in decimal, or a user
	// account).
	AppID   string
	Channel string
	UID     string
	// Token is the AccessToken2 the application server built for AppID, Channel and UID. It is sent to the
	// dispatcher and the edge only, and never logged.
	Token string

	// Secret is the channel secret (media.SecretSize bytes) shared by the channel's members through the
	// application, never through Stoa. Media and data are always end-to-end encrypted with keys derived from it.
	// Join keeps a copy; the caller may wipe its own.
	Secret *sframe.Key
	// KeyGeneration is the generation of Secret: the top byte of this client's KIDs (default 0).
	KeyGeneration uint8
	// Suite is the SFrame cipher suite (default sframe.DefaultSuite). Every member of a channel must use the same.
	Suite sframe.Suite

	// AutoSubscribe subscribes to every track of the channel, present and future (nil means true). With it false,
	// call Client.Subscribe for the tracks wanted.
	AutoSubscribe *bool
	// Hidden joins without being announced to the channel's other participants, as a recorder does. The token
	// must grant the join-hidden privilege (token.PrivilegeJoinHidden, or token.RoleRecorder), and a hidden
	// client cannot publish.
	Hidden bool

	// Logger receives the client's logs (default: discard). Tokens and keys never appear in them.
	Logger *slog.Logger
	// HTTPClient is used for the dispatcher and the signaling WebSocket (default: a client with TLSConfig).
	HTTPClient *http.Client
	// TLSConfig configures TLS for the default HTTP client, e.g. a test CA in RootCAs. Ignored with HTTPClient.
	TLSConfig *tls.Config
	// Insecure allows plain http:// and ws:// URLs to hosts other than loopback. Tokens then cross the network in
	// the clear: for tests on private networks only.
	Insecure bool

	// PingInterval is how often the client pings the edge (default and maximum 10s).
	PingInterval time.Duration
	// RequestTimeout bounds the client's own requests: a dispatch, a WebSocket dial, a join, a ping (default 10s).
	RequestTimeout time.Duration
	// ReconnectTimeout is how long the client tries to get back into the channel after losing its session before
	// it gives up with Disconnected (default 30s). A negative value disables reconnection.
	ReconnectTimeout time.Duration
}

const (
	defaultPingInterval     = 10 * time.Second
	defaultRequestTimeout   = 10 * time.Second
	defaultReconnectTimeout = 30 * time.Second
	clientName              = "stoa-go/0.1"
)

// withDefaults fills the zero fields of c.
func (c Config) withDefaults() Config {
	if c.Suite == 0 {
		c.Suite = sframe.DefaultSuite
	}
	if c.AutoSubscribe == nil {
		c.AutoSubscribe = new(true)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.PingInterval <= 0 || c.PingInterval > defaultPingInterval {
		c.PingInterval = defaultPingInterval
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = defaultRequestTimeout
	}
	if c.ReconnectTimeout == 0 {
		c.ReconnectTimeout = defaultReconnectTimeout
	}
	return c
}

// entryURLs returns URL and URLs, in the order they are tried.
func (c *Config) entryURLs() []string {
	var out []string
	if c.URL != "" {
		out = append(out, c.URL)
	}
	return append(out, c.URLs...)
}

// validate reports every problem of c at once.
func (c *Config) validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf("sdk: "+format, a...)) }
	urls := c.entryURLs()
	if len(urls) == 0 {
		add("URL is required")
	}
	for _, u := range urls {
		if err := checkURL(u, "https", "http", c.Insecure); err != nil {
			add("entry URL: %v", err)
		}
	}
	if c.AppID == "" {
		add("AppID is required")
	}
	if err := protocol.CheckChannel(c.Channel); err != nil {
		add("Channel: %v", strings.TrimPrefix(err.Error(), "protocol: "))
	}
	if err := protocol.CheckUID(c.UID); err != nil {
		add("UID: %v", strings.TrimPrefix(err.Error(), "protocol: "))
	}
	if c.Token == "" || len(c.Token) > protocol.MaxTokenLength {
		add("Token is required, at most %d bytes", protocol.MaxTokenLength)
	}
	if c.Secret.Len() != media.SecretSize {
		add("Secret is required: a %d-byte channel secret (end-to-end encryption is always on)", media.SecretSize)
	}
	if !c.Suite.Supported() {
		add("Suite: %v is not supported", c.Suite)
	}
	return errors.Join(errs...)
}

// checkURL accepts secure URLs, and insecure ones to loopback hosts (or anywhere with insecure).
func checkURL(raw, secure, plain string, insecure bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", shorten(raw))
	}
	switch {
	case u.Host == "":
		return fmt.Errorf("%q has no host", u.Redacted())
	case u.Scheme == secure:
		return nil
	case u.Scheme == plain:
		if insecure || isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q: %s:// only to loopback hosts (or set Config.Insecure)", u.Redacted(), plain)
	}
	return fmt.Errorf("%q: scheme must be %s", u.Redacted(), secure)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// String describes c with its Token redacted.
func (c Config) String() string {
	return fmt.Sprintf("sdk.Config{URL: %q, URLs: %q, Region: %q, AppID: %q, Channel: %q, UID: %q, Token: REDACTED, Suite: %v}",
		c.URL, c.URLs, c.Region, c.AppID, c.Channel, c.UID, c.Suite)
}

// GoString is String, so that %#v redacts the token too.
func (c Config) GoString() string { return c.String() }

// LogValue logs c without its Token and Secret.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", c.URL), slog.String("app_id", c.AppID),
		slog.String("channel", c.Channel), slog.String("uid", c.UID), slog.String("region", c.Region))
}
