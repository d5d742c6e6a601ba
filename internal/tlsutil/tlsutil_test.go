package tlsutil

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

func TestSelfSigned(t *testing.T) {
	dir := t.TempDir()
	c, path, err := SelfSigned(dir, []string{"10.0.0.5", "edge.example"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.VerifyHostname("edge.example"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("10.0.0.5"); err != nil {
		t.Error(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v %v", fi.Mode(), err)
	}
	again, path2, err := SelfSigned(dir, nil)
	if err != nil || path2 != path || Fingerprint(again) != Fingerprint(c) {
		t.Errorf("a second call should load the same certificate")
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:80": true, "127.0.0.3:1": true, "[::1]:9": true, "localhost:1": true,
		"0.0.0.0:80": false, "10.1.2.3:4": false, ":80": false, "nonsense": false} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v", addr, got)
		}
	}
}
