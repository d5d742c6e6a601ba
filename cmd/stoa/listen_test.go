package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/connlimit"
	"github.com/stoa-rtc/stoa/internal/tlsutil"
)

// Findings 2 and 6: the listener every role serves on caps connections per address beneath its TLS: a connection
// over the cap is closed before any handshake, and the connections served are still TLS to net/http.
func TestListenCapsBeneathTLS(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := tlsutil.SelfSigned(filepath.Join(dir, "tls"), []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, "tls", "cert.pem"), filepath.Join(dir, "tls", "key.pem")
	ln, scheme, err := listen("127.0.0.1:0", dir, cert, key, connlimit.Config{MaxPerAddr: 1})
	if err != nil {
		t.Fatal(err)
	}
	if scheme != "https" {
		t.Fatalf("scheme %s", scheme)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			t.Error("net/http did not see a TLS connection")
		}
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	defer func() {
		srv.Close()
		<-done
	}()
	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in cert.pem")
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	first, err := tls.Dial("tcp", ln.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := io.WriteString(first, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	first.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := first.Read(make([]byte, 1)); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	// The second connection from the address is closed before its handshake completes.
	raw, err := net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	second := tls.Client(raw, cfg)
	defer second.Close()
	second.SetDeadline(time.Now().Add(10 * time.Second))
	if err := second.Handshake(); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("second connection over the cap: handshake %v, want the connection closed", err)
	}
}
