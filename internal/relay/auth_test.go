package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/quic-go/quic-go"

	"github.com/stoa-rtc/stoa/internal/clustertest"
)

// fakeServer listens for relay connections and hands each, after the TLS handshake, to handle.
func fakeServer(t *testing.T, handle func(qc *quic.Conn)) string {
	t.Helper()
	cert, err := newCertificate()
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := tlsConfigs(cert)
	ln, err := quic.ListenAddr("127.0.0.1:0", srv, &quic.Config{EnableDatagrams: true})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			qc, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			wg.Go(func() {
				handle(qc)
				qc.CloseWithError(0, "")
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// dialRaw connects to a relay transport as a bare QUIC client.
func dialRaw(t *testing.T, addr string, conf *tls.Config) (*quic.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return quic.DialAddr(ctx, addr, conf, &quic.Config{EnableDatagrams: true})
}

// readHello reads the first frame of the dialler's connection stream.
func readHello(qc *quic.Conn) (*quic.Stream, frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := qc.AcceptStream(ctx)
	if err != nil {
		return nil, frame{}, err
	}
	f, err := newFrameReader(st).next()
	return st, f, err
}

func exporterOf(qc *quic.Conn) []byte {
	cs := qc.ConnectionState().TLS
	exp, _ := exporter(&cs)
	return exp
}

// TestHelloBoundToSession: a hello proves nothing outside the TLS session and role it was made for: a server
// that returns the dialler's own hello, or replays a genuine hello of the edge from another session, is
// refused, and so is a machine in the middle that relays the dialler's hello on its own session.
func TestHelloBoundToSession(t *testing.T) {
	t.Cleanup(clustertest.Goroutines(t))
	n := newNetwork(t)
	a, b := n.transport(t, "eu", "e1"), n.transport(t, "eu", "e2")
	bCreds := b.cfg.Credentials
	otherSession := make([]byte, 32)

	for _, tc := range []struct {
		name   string
		server func(t *testing.T) string
		// refuser counts the refusal with reason
		refuser *node
		reason  string
	}{
		{"reflected", func(t *testing.T) string {
			return fakeServer(t, func(qc *quic.Conn) {
				if st, f, err := readHello(qc); err == nil {
					st.Write(appendFrame(nil, &f)) // the dialler's proof, back
					<-qc.Context().Done()
				}
			})
		}, a, reasonUntrusted},
		{"replayed", func(t *testing.T) string {
			return fakeServer(t, func(qc *quic.Conn) {
				if st, _, err := readHello(qc); err == nil {
					st.Write(appendFrame(nil, newHello(bCreds, otherSession, roleServer, "eu", "e2", 1)))
					<-qc.Context().Done()
				}
			})
		}, a, reasonUntrusted},
		{"relayed", func(t *testing.T) string {
			return fakeServer(t, func(qc *quic.Conn) {
				_, f, err := readHello(qc)
				if err != nil {
					return
				}
				_, client := tlsConfigs(mustCert(t))
				up, err := dialRaw(t, b.Addr().String(), client)
				if err != nil {
					return
				}
				defer up.CloseWithError(0, "")
				if st, err := up.OpenStreamSync(context.Background()); err == nil {
					st.Write(appendFrame(nil, &f)) // A's proof, on the middle machine's session with B
					<-up.Context().Done()
				}
			})
		}, b, reasonUntrusted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(tc.refuser.m.refused.WithLabelValues(tc.reason))
			peer := Peer{Region: "eu", EdgeID: "e2", Addr: tc.server(t)}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := a.Open(ctx, peer, "app", "room", newRecorder()); err == nil {
				t.Fatal("Open succeeded")
			}
			eventually(t, 5*time.Second, func() error {
				if got := testutil.ToFloat64(tc.refuser.m.refused.WithLabelValues(tc.reason)); got != before+1 {
					return fmt.Errorf("refused{reason=%q} = %v, want %v", tc.reason, got, before+1)
				}
				return nil
			})
		})
	}
}

func mustCert(t *testing.T) tls.Certificate {
	c, err := newCertificate()
	if err != nil {
		t.Error(err)
	}
	return c
}

// TestNoHello: a client that does not start with a valid hello is refused; one without a certificate does not
// get through TLS.
func TestNoHello(t *testing.T) {
	t.Cleanup(clustertest.Goroutines(t))
	n := newNetwork(t)
	b := n.transport(t, "eu", "e2")
	_, client := tlsConfigs(mustCert(t))
	for name, first := range map[string][]byte{
		"ping first": appendFrame(nil, &frame{typ: framePing, nonce: 1}),
		"garbage":    []byte("GET / HTTP/1.1\r\n\r\n"),
		"no JWT":     appendFrame(nil, &frame{typ: frameHello, region: "eu", edgeID: "x", sig: make([]byte, sigLen)}),
	} {
		t.Run(name, func(t *testing.T) {
			before := testutil.ToFloat64(b.m.refused.WithLabelValues(reasonProtocol))
			qc, err := dialRaw(t, b.Addr().String(), client)
			if err != nil {
				t.Fatal(err)
			}
			defer qc.CloseWithError(0, "")
			st, err := qc.OpenStreamSync(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			st.Write(first)
			select {
			case <-qc.Context().Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the connection stayed open")
			}
			if got := testutil.ToFloat64(b.m.refused.WithLabelValues(reasonProtocol)); got != before+1 {
				t.Errorf("refused{reason=protocol} = %v, want %v", got, before+1)
			}
		})
	}
	t.Run("no client certificate", func(t *testing.T) {
		conf := client.Clone()
		conf.Certificates = nil
		qc, err := dialRaw(t, b.Addr().String(), conf)
		if err == nil {
			// TLS 1.3: the client may finish before the server checks its (missing) certificate.
			select {
			case <-qc.Context().Done():
				err = context.Cause(qc.Context())
			case <-time.After(5 * time.Second):
				t.Fatal("a client without a certificate stayed connected")
			}
		}
		var te *quic.TransportError
		if !errors.As(err, &te) {
			t.Errorf("a client without a certificate: %v, want a TLS error", err)
		}
	})
}
