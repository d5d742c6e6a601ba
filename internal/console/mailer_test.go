package console

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// smtpServer is a minimal in-process SMTP server recording what it receives. It offers STARTTLS when tls is set.
type smtpServer struct {
	ln    net.Listener
	tls   *tls.Config
	greet bool // send the greeting; false makes a server that never answers
	wg    sync.WaitGroup

	mu   sync.Mutex
	cmds []string // verbs, with "+tls" once the connection is encrypted
	auth string   // the decoded AUTH PLAIN response
	data string   // the raw DATA lines, CRLFs and final dot included
}

func startSMTP(t *testing.T, tlsConf *tls.Config, greet bool) *smtpServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, tls: tlsConf, greet: greet}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer conn.Close()
				s.serve(conn)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *smtpServer) record(f func()) { s.mu.Lock(); defer s.mu.Unlock(); f() }

func (s *smtpServer) serve(conn net.Conn) {
	if !s.greet {
		conn.Read(make([]byte, 1)) // until the client gives up
		return
	}
	tp := textproto.NewConn(conn)
	encrypted := false
	tp.PrintfLine("220 fake ESMTP")
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		suffix := ""
		if encrypted {
			suffix = "+tls"
		}
		s.record(func() { s.cmds = append(s.cmds, verb+suffix) })
		switch verb {
		case "EHLO":
			tp.PrintfLine("250-fake")
			if s.tls != nil && !encrypted {
				tp.PrintfLine("250-STARTTLS")
			}
			tp.PrintfLine("250 AUTH PLAIN")
		case "STARTTLS":
			tp.PrintfLine("220 go ahead")
			tc := tls.Server(conn, s.tls)
			if tc.Handshake() != nil {
				return
			}
			conn, tp, encrypted = tc, textproto.NewConn(tc), true
		case "AUTH":
			b, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(arg, "PLAIN "))
			s.record(func() { s.auth = string(b) })
			tp.PrintfLine("235 ok")
		case "MAIL", "RCPT":
			tp.PrintfLine("250 ok %s", arg)
		case "DATA":
			tp.PrintfLine("354 go ahead")
			var b strings.Builder
			for {
				l, err := tp.R.ReadString('\n')
				if err != nil {
					return
				}
				b.WriteString(l)
				if l == ".\r\n" {
					break
				}
			}
			s.record(func() { s.data = b.String() })
			tp.PrintfLine("250 queued")
		case "QUIT":
			tp.PrintfLine("221 bye")
			return
		default:
			tp.PrintfLine("502 unknown")
		}
	}
}

func (s *smtpServer) got() (cmds []string, auth, data string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.cmds...), s.auth, s.data
}

// testCert returns a server TLS config for 127.0.0.1 and a client config trusting it.
func testCert(t *testing.T) (server, client *tls.Config) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, &tls.Config{RootCAs: pool}
}

var mailDate = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testMessage() Message {
	return Message{To: "bob@example.com", Subject: "Welcome", Body: "Hello Bob,\n.dotted line\r\nbye\n"}
}

const wantData = "From: Stoa <noreply@example.com>\r\n" +
	"To: bob@example.com\r\n" +
	"Subject: Welcome\r\n" +
	"Date: Sun, 01 Mar 2026 12:00:00 +0000\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: 8bit\r\n" +
	"\r\n" +
	"Hello Bob,\r\n" +
	"..dotted line\r\n" +
	"bye\r\n" +
	".\r\n"

func TestSMTPMailer(t *testing.T) {
	serverTLS, clientTLS := testCert(t)
	for _, tc := range []struct {
		name     string
		tls      bool
		user     string
		wantCmds []string
	}{
		{"loopback in clear", false, "", []string{"EHLO", "MAIL", "RCPT", "DATA", "QUIT"}},
		{"loopback in clear with PLAIN", false, "stoa", []string{"EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"}},
		{"STARTTLS when offered", true, "stoa", []string{"EHLO", "STARTTLS", "EHLO+tls", "AUTH+tls", "MAIL+tls", "RCPT+tls", "DATA+tls", "QUIT+tls"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st *tls.Config
			if tc.tls {
				st = serverTLS
			}
			srv := startSMTP(t, st, true)
			m, err := NewSMTPMailer(SMTPConfig{Addr: srv.ln.Addr().String(), From: "Stoa <noreply@example.com>", Username: tc.user, Password: "s3cret",
				TLS: clientTLS, Timeout: 5 * time.Second, Clock: func() time.Time { return mailDate }})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Send(context.Background(), testMessage()); err != nil {
				t.Fatal(err)
			}
			cmds, auth, data := srv.got()
			if strings.Join(cmds, " ") != strings.Join(tc.wantCmds, " ") {
				t.Errorf("commands %v, want %v", cmds, tc.wantCmds)
			}
			if data != wantData {
				t.Errorf("DATA:\n%q\nwant\n%q", data, wantData)
			}
			if wantAuth := "\x00stoa\x00s3cret"; tc.user != "" && auth != wantAuth {
				t.Errorf("AUTH PLAIN %q", auth)
			}
		})
	}
}

func TestSMTPMailerRefuses(t *testing.T) {
	srv := startSMTP(t, nil, true)
	cfg := SMTPConfig{Addr: srv.ln.Addr().String(), From: "noreply@example.com", Username: "stoa", Password: "s3cret"}
	m, err := NewSMTPMailer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A server that is not on loopback must offer STARTTLS: nothing is authenticated or sent in clear.
	m.(*smtpMailer).loopback = false
	if err := m.Send(context.Background(), testMessage()); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("send without STARTTLS: %v", err)
	}
	if cmds, auth, _ := srv.got(); len(cmds) != 1 || auth != "" {
		t.Errorf("server got %v", cmds)
	}
	// Header injection.
	m.(*smtpMailer).loopback = true
	for _, bad := range []Message{
		{To: "bob@example.com", Subject: "hi\r\nBcc: eve@example.com", Body: "x"},
		{To: "bob@example.com\r\nBcc: eve@example.com", Subject: "hi", Body: "x"},
		{To: "Bob <bob@example.com>", Subject: "hi", Body: "x"},
	} {
		if err := m.Send(context.Background(), bad); err == nil {
			t.Errorf("sent %q", bad.To+bad.Subject)
		}
	}
	for _, c := range []SMTPConfig{{Addr: "nohost", From: "a@example.com"}, {Addr: "h:25", From: "not an address"}, {Addr: "h:25", From: "a@example.com\r\nX: y"}} {
		if _, err := NewSMTPMailer(c); err == nil {
			t.Errorf("NewSMTPMailer(%+v) accepted", c)
		}
	}
	// A server that never answers: the send gives up after Timeout.
	mute := startSMTP(t, nil, false)
	m, _ = NewSMTPMailer(SMTPConfig{Addr: mute.ln.Addr().String(), From: "noreply@example.com", Timeout: 50 * time.Millisecond})
	if err := m.Send(context.Background(), testMessage()); err == nil {
		t.Error("send to a mute server succeeded")
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{"localhost": true, "LOCALHOST": true, "127.0.0.1": true, "127.1.2.3": true, "::1": true,
		"::ffff:127.0.0.1": true, "smtp.example.com": false, "10.0.0.1": false, "localhost.example.com": false, "": false} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v", host, got)
		}
	}
}

func TestLogMailer(t *testing.T) {
	var buf bytes.Buffer
	m := NewLogMailer(slog.New(slog.NewTextHandler(&buf, nil)))
	if err := m.Send(context.Background(), Message{To: "bob@example.com", Subject: "s", Body: "link?token=abc"}); err != nil {
		t.Fatal(err)
	}
	// The SMTP password never prints.
	c := SMTPConfig{Addr: "smtp.example.com:587", From: "a@example.com", Username: "u", Password: "hunter2-password"}
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "smtp", c)
	if s := buf.String() + fmt.Sprint(c) + fmt.Sprintf("%+v", c); strings.Contains(s, "hunter2") || !strings.Contains(s, "smtp.example.com") {
		t.Errorf("printed: %s", s)
	}
	if !strings.Contains(buf.String(), "bob@example.com") || !strings.Contains(buf.String(), "token=abc") {
		t.Errorf("log: %s", buf.String())
	}
}
