package cluster

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/stoa-rtc/stoa/internal/busauth"
)

// Config configures a node's connection to the cluster. The zero value is not valid; start from Default.
type Config struct {
	// URLs are the external NATS servers to connect to (nats://, tls://), normally every server of the node's own
	// region's NATS cluster. Empty starts an embedded NATS server in this process (see Embedded).
	URLs []string `yaml:"urls"`
	// CredentialsFile is the node's NATS credentials file (user JWT and NKey seed; `stoa bus issue` writes them).
	// When the JWT names a Stoa identity (busauth.Identity), the node also signs its heartbeats, dispatcher keys
	// and blocks with the key, and accepts such records only when signed by a node of the same account that may
	// write them (see busauth).
	CredentialsFile string `yaml:"credentials_file"`
	// Credentials, when set, are the content of a credentials file, used instead of CredentialsFile; with an
	// embedded server (Embedded.Authority) they are how the node itself connects.
	Credentials []byte `yaml:"-"`
	// User is the user name for user/password authentication to the external servers.
	User string `yaml:"user"`
	// PasswordFile holds the password for User (the first line of the file); passwords never appear in config.
	PasswordFile string `yaml:"password_file"`
	// TLSCAFile is a PEM file of the certificate authorities that sign the external servers' certificates; empty
	// uses the system roots.
	TLSCAFile string `yaml:"tls_ca_file"`
	// TLSCertFile and TLSKeyFile are this node's client certificate and key, for servers that verify clients.
	TLSCertFile string `yaml:"tls_cert_file"`
	// TLSKeyFile is the private key of TLSCertFile.
	TLSKeyFile string `yaml:"tls_key_file"`
	// TLS, when set, is used as it is for the connection to external servers instead of the TLS files above.
	TLS *tls.Config `yaml:"-"`

	// Region is this node's region, e.g. "eu". It names the region's buckets, so it is limited to [A-Za-z0-9_-]
	// (at most 32 characters).
	Region string `yaml:"region"`
	// Node names this process in the cluster: the NATS connection name, the embedded server's name and the
	// "node" of the events it publishes.
	Node string `yaml:"node"`
	// Regions lists other regions whose edges and channel placements this node follows besides its own (a
	// dispatcher's fallback region; all regions for edges that cascade). The single entry "*" follows every
	// region found in the cluster.
	Regions []string `yaml:"regions"`
	// Prefix starts the name of every bucket ("<prefix>_projects"), stream and subject ("<prefix>.events.>"), so
	// that several Stoa networks or test runs can share one NATS system. [A-Za-z0-9_-], at most 32 characters.
	Prefix string `yaml:"prefix"`
	// Replicas is the number of copies JetStream keeps of every bucket and stream: 1 for a single server, 3 for a
	// production cluster of three servers.
	Replicas int `yaml:"replicas"`
	// GlobalCluster, in a supercluster, is the NATS cluster that holds the buckets shared by every region
	// (projects, dispatcher keys) and the event stream. Empty lets the server place them in the cluster of the node
	// that first creates them. Regional buckets always go to the cluster the node is connected to.
	GlobalCluster string `yaml:"global_cluster"`
	// MemoryStorage keeps the buckets and the stream in memory instead of on disk: faster, lost when the servers
	// restart. Only affects buckets and streams when they are first created.
	MemoryStorage bool `yaml:"memory_storage"`
	// UseExisting makes the node create and update no bucket and no stream: it uses those that exist as they are,
	// and a region without buckets (its own included) looks empty. For operator commands (`stoa cluster`), which
	// look at a cluster and write into it but must not change its layout.
	UseExisting bool `yaml:"-"`
	// NoMessageTTL makes the node emulate key expiry with bucket max-age and local filtering even when the servers
	// support per-message TTLs (nats-server 2.11 and later). Servers without that support get this automatically.
	NoMessageTTL bool `yaml:"no_message_ttl"`

	// HeartbeatInterval is how often RunHeartbeat announces an edge.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// EdgeTTL is how long an edge stays listed after its last heartbeat; whole seconds, at least 1s and at least
	// twice HeartbeatInterval.
	EdgeTTL time.Duration `yaml:"edge_ttl"`
	// ChannelTTL is how long a channel placement stays listed after its last announcement; whole seconds, at
	// least 1s. Edges re-announce the channels they hold at least three times per ChannelTTL.
	ChannelTTL time.Duration `yaml:"channel_ttl"`
	// DispatcherKeyTTL is how long a dispatcher's public key stays listed after it was last announced. It must be
	// at least the lifetime of the edge tickets that dispatchers sign, so that a client can still fail over to a
	// backup edge with its ticket after the dispatcher that signed it has gone. Whole seconds.
	DispatcherKeyTTL time.Duration `yaml:"dispatcher_key_ttl"`
	// MaxBlock is the longest IP block PutBlock accepts.
	MaxBlock time.Duration `yaml:"max_block"`

	// EventMaxAge is how long the event stream keeps an event, acknowledged or not: the stream is a bounded buffer
	// between publishers and the console (which ingests events into SQL), older events are discarded.
	EventMaxAge time.Duration `yaml:"event_max_age"`
	// EventMaxBytes bounds the event stream's size; the oldest events are discarded first.
	EventMaxBytes int64 `yaml:"event_max_bytes"`
	// EventBuffer is the number of events PublishEvent queues in this process while they are sent; when it is
	// full, further events are dropped (and counted) rather than block the caller.
	EventBuffer int `yaml:"event_buffer"`

	// ProjectSigner, when set, signs every project this node writes with PutProject: the console's key.
	ProjectSigner ed25519.PrivateKey `yaml:"-"`
	// ProjectKeys, when set, are the only keys whose signatures this node accepts on projects: a project record
	// without a valid signature by one of them is ignored (a node keeps its last good copy), so that a node that
	// can write to the bus cannot slip in a project or an App Certificate. Empty accepts any project.
	ProjectKeys []ed25519.PublicKey `yaml:"-"`
	// ProjectSealKey, when set, is the X25519 public key to which this node seals the App Certificates of the
	// projects it writes (the console), so that they never cross the bus or rest in its storage in clear.
	ProjectSealKey *ecdh.PublicKey `yaml:"-"`
	// ProjectOpenKey, when set, is the X25519 private key with which this node opens sealed App Certificates
	// (edges and dispatchers); such a node also refuses projects whose certificates are in clear.
	ProjectOpenKey *ecdh.PrivateKey `yaml:"-"`

	// Embedded configures the NATS server started when URLs is empty.
	Embedded Embedded `yaml:"embedded"`

	// Logger receives the cluster layer's logs (and the embedded server's). Nil discards them.
	Logger *slog.Logger `yaml:"-"`
}

// Embedded configures the embedded NATS server. It is one standalone server with JetStream: right for `stoa dev`,
// tests and a single-machine network. A production network runs external NATS clusters instead (see
// docs/deploy.md): one cluster of three servers per region, the regions' clusters joined by gateways into a
// supercluster, each Stoa node connecting to its own region's cluster with URLs.
type Embedded struct {
	// Listen is the client address, host:port; port 0 or -1 picks a free port (see Cluster.ClientURL). It must be on
	// loopback: the embedded server has no TLS, and other machines join a network's external NATS servers instead
	// (docs/deploy.md).
	Listen string `yaml:"listen"`
	// Authority, when set, makes the embedded server accept only connections with credentials it issued
	// (busauth.Authority.Issue), each limited to its role's subjects; nil accepts any connection.
	Authority *busauth.Authority `yaml:"-"`
	// StoreDir is the JetStream storage directory. Empty uses a temporary directory that Close removes (or no
	// directory with MemoryStorage).
	StoreDir string `yaml:"store_dir"`
	// MaxMemory and MaxStore bound JetStream's memory and disk use, in bytes; 0 lets the server choose.
	MaxMemory int64 `yaml:"max_memory"`
	// MaxStore bounds JetStream's disk use in bytes; 0 lets the server choose.
	MaxStore int64 `yaml:"max_store"`
	// ReadyTimeout bounds the wait for the embedded server to accept connections.
	ReadyTimeout time.Duration `yaml:"ready_timeout"`
}

// Default returns the configuration of a node in region "local" with an embedded server on a random loopback port.
func Default() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "stoa"
	}
	return Config{
		Region:            "local",
		Node:              host,
		Prefix:            "stoa",
		Replicas:          1,
		HeartbeatInterval: 750 * time.Millisecond,
		EdgeTTL:           2 * time.Second,
		ChannelTTL:        10 * time.Second,
		DispatcherKeyTTL:  24 * time.Hour,
		MaxBlock:          7 * 24 * time.Hour,
		EventMaxAge:       7 * 24 * time.Hour,
		EventMaxBytes:     256 << 20,
		EventBuffer:       4096,
		Embedded: Embedded{
			Listen:       "127.0.0.1:-1",
			ReadyTimeout: 10 * time.Second,
		},
	}
}

// Validate reports every problem of c at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("cluster: "+format, a...)) }

	if c.ProjectSigner != nil && len(c.ProjectSigner) != ed25519.PrivateKeySize {
		bad("project signer: %d bytes, want an Ed25519 private key", len(c.ProjectSigner))
	}
	for i, k := range c.ProjectKeys {
		if len(k) != ed25519.PublicKeySize {
			bad("project key %d: %d bytes, want an Ed25519 public key", i+1, len(k))
		}
	}
	if c.ProjectSealKey != nil && c.ProjectSealKey.Curve() != ecdh.X25519() {
		bad("project seal key: want an X25519 key")
	}
	if c.ProjectOpenKey != nil && c.ProjectOpenKey.Curve() != ecdh.X25519() {
		bad("project open key: want an X25519 key")
	}
	for _, u := range c.URLs {
		p, err := url.Parse(u)
		switch {
		case err != nil:
			bad("urls: %q: %v", u, err)
		case p.Scheme != "nats" && p.Scheme != "tls" && p.Scheme != "ws" && p.Scheme != "wss":
			bad("urls: %q: scheme must be nats, tls, ws or wss", u)
		case p.Host == "":
			bad("urls: %q: no host", u)
		}
	}
	external := len(c.URLs) > 0
	if !external {
		if c.Embedded.Authority == nil && (c.CredentialsFile != "" || c.Credentials != nil) {
			bad("credentials apply only to external servers (urls) or an embedded server with an authority")
		}
		for name, v := range map[string]string{"user": c.User,
			"password_file": c.PasswordFile, "tls_ca_file": c.TLSCAFile, "tls_cert_file": c.TLSCertFile} {
			if v != "" {
				bad("%s applies only to external servers (urls)", name)
			}
		}
	}
	if c.CredentialsFile != "" && c.Credentials != nil {
		bad("credentials_file and credentials are exclusive")
	}
	if (c.CredentialsFile != "" || c.Credentials != nil) && c.User != "" {
		bad("credentials_file and user are exclusive")
	}
	if (c.User == "") != (c.PasswordFile == "") {
		bad("user and password_file go together")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("tls_cert_file and tls_key_file go together")
	}
	for name, f := range map[string]string{"credentials_file": c.CredentialsFile, "password_file": c.PasswordFile,
		"tls_ca_file": c.TLSCAFile, "tls_cert_file": c.TLSCertFile, "tls_key_file": c.TLSKeyFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			bad("%s: %v", name, err)
		}
	}

	if !validName(c.Region, 32) {
		bad("region %q: want 1-32 characters of [A-Za-z0-9_-]", c.Region)
	}
	if c.Node == "" {
		bad("node: empty")
	}
	for _, r := range c.Regions {
		if r == "*" {
			if len(c.Regions) > 1 {
				bad("regions: \"*\" must be the only entry")
			}
			continue
		}
		if !validName(r, 32) {
			bad("regions: %q: want 1-32 characters of [A-Za-z0-9_-]", r)
		}
	}
	if !validName(c.Prefix, 32) {
		bad("prefix %q: want 1-32 characters of [A-Za-z0-9_-]", c.Prefix)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		bad("replicas %d: want 1-5", c.Replicas)
	}
	if c.HeartbeatInterval <= 0 {
		bad("heartbeat_interval %s: want > 0", c.HeartbeatInterval)
	}
	wholeSeconds := func(name string, d time.Duration) {
		if d < time.Second || d%time.Second != 0 {
			bad("%s %s: want whole seconds, at least 1s", name, d)
		}
	}
	wholeSeconds("edge_ttl", c.EdgeTTL)
	wholeSeconds("channel_ttl", c.ChannelTTL)
	wholeSeconds("dispatcher_key_ttl", c.DispatcherKeyTTL)
	if c.HeartbeatInterval > 0 && c.EdgeTTL < 2*c.HeartbeatInterval {
		bad("edge_ttl %s: want at least twice heartbeat_interval (%s)", c.EdgeTTL, c.HeartbeatInterval)
	}
	if c.MaxBlock < time.Second {
		bad("max_block %s: want at least 1s", c.MaxBlock)
	}
	if c.EventMaxAge < time.Second {
		bad("event_max_age %s: want at least 1s", c.EventMaxAge)
	}
	if c.EventMaxBytes < 1<<20 {
		bad("event_max_bytes %d: want at least 1 MiB", c.EventMaxBytes)
	}
	if c.EventBuffer < 1 {
		bad("event_buffer %d: want at least 1", c.EventBuffer)
	}

	if !external {
		if host, _, err := splitListen(c.Embedded.Listen); err != nil {
			bad("embedded.listen: %v", err)
		} else if !loopbackHost(host) {
			bad("embedded.listen %q: off loopback the bus would travel without TLS; listen on 127.0.0.1 (or ::1) and "+
				"run nats-server with TLS for other machines (docs/deploy.md)", c.Embedded.Listen)
		}
		if c.Embedded.MaxMemory < 0 || c.Embedded.MaxStore < 0 {
			bad("embedded.max_memory and max_store: want >= 0")
		}
		if c.Embedded.ReadyTimeout <= 0 {
			bad("embedded.ready_timeout %s: want > 0", c.Embedded.ReadyTimeout)
		}
	}
	return errors.Join(errs...)
}

// loopbackHost reports whether host is "localhost" or a loopback IP address.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// splitListen splits host:port, where port may be 0 or -1 (a free port). nats-server reads port 0 as its default,
// 4222, so 0 becomes -1: "127.0.0.1:0" means a free port here as it does for every other listener of Stoa.
func splitListen(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", addr)
	}
	if port == 0 {
		port = -1
	}
	return host, port, nil
}
