package cluster

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.URLs = []string{"http://x", "nats://"}
	c.User = "u"
	c.TLSCertFile = "/nonexistent/cert.pem"
	c.Region = "eu west"
	c.Node = ""
	c.Regions = []string{"*", "us"}
	c.Prefix = "a.b"
	c.Replicas = 0
	c.EdgeTTL = 1500 * time.Millisecond
	c.ChannelTTL = 0
	c.EventBuffer = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"scheme", "no host", "user and password_file", "tls_cert_file and tls_key_file",
		"tls_cert_file: stat", "region", "node", `"*" must be the only`, "prefix", "replicas", "edge_ttl",
		"channel_ttl", "event_buffer"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing problem %q in:\n%v", want, err)
		}
	}

	e := Default()
	e.User = "u"
	e.PasswordFile = "/nonexistent"
	e.Embedded.Listen = "nope"
	err = e.Validate()
	for _, want := range []string{"applies only to external", "embedded.listen"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing problem %q in: %v", want, err)
		}
	}
}

func TestSplitListen(t *testing.T) {
	for in, ok := range map[string]bool{"127.0.0.1:-1": true, ":4222": true, "[::1]:0": true, "x": false,
		"127.0.0.1:-2": false, "127.0.0.1:70000": false} {
		if _, _, err := splitListen(in); (err == nil) != ok {
			t.Errorf("splitListen(%q): %v", in, err)
		}
	}
	// Port 0 is a free port, as for every listener; nats-server alone would read it as 4222.
	if _, port, err := splitListen("127.0.0.1:0"); err != nil || port != -1 {
		t.Errorf("splitListen(127.0.0.1:0) = port %d, %v; want -1", port, err)
	}
}

// TestEmbeddedOnlyOnLoopback (finding 9): the embedded server has no TLS, so it listens on loopback only.
func TestEmbeddedOnlyOnLoopback(t *testing.T) {
	for listen, ok := range map[string]bool{"127.0.0.1:-1": true, "[::1]:4222": true, "localhost:0": true,
		"0.0.0.0:4222": false, ":4222": false, "192.0.2.1:4222": false, "[::]:4222": false} {
		c := Default()
		c.Embedded.Listen = listen
		err := c.Validate()
		if ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), "without TLS")) {
			t.Errorf("%s: %v", listen, err)
		}
	}
}
