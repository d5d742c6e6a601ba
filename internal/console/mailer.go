package console

// Mail: invitations and password reset links are sent through a [Mailer]. Two are provided: an SMTP submission
// client (RFC 5321 with STARTTLS, RFC 3207, and AUTH PLAIN, RFC 4616) and, for development only, a mailer that
// writes whole messages, links and tokens included, to a log.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/mail"
	"net/netip"
	"net/smtp"
	"strings"
	"time"
)

// Message is a plain text mail to one recipient.
type Message struct {
	To      string // a bare address
	Subject string
	Body    string // UTF-8 text; lines end with \n
}

// Mailer sends messages. Send must not log or return the message body: it may hold a token.
type Mailer interface {
	Send(ctx context.Context, m Message) error
}

// MailerFunc adapts a function to [Mailer].
type MailerFunc func(ctx context.Context, m Message) error

// Send calls f(ctx, m).
func (f MailerFunc) Send(ctx context.Context, m Message) error { return f(ctx, m) }

// NewLogMailer returns a Mailer that logs every message, body included, at level Info on l and sends nothing.
//
// It is for "stoa dev" only, where there is no mail server: the log then holds invitation and password reset
// links with their tokens, which are credentials. Never use it in production.
func NewLogMailer(l *slog.Logger) Mailer {
	return MailerFunc(func(ctx context.Context, m Message) error {
		l.InfoContext(ctx, "mail (dev mailer: not sent)", "to", m.To, "subject", m.Subject, "body", m.Body)
		return nil
	})
}

// SMTPConfig configures [NewSMTPMailer].
type SMTPConfig struct {
	// Addr is the submission server's host:port, e.g. "smtp.example.com:587".
	Addr string
	// From is the sender: a bare address or "Name <address>".
	From string
	// Username and Password authenticate with AUTH PLAIN; no authentication if Username is empty. PLAIN is
	// used only over TLS or with a loopback server.
	Username, Password string
	// ImplicitTLS connects with TLS from the start (port 465, RFC 8314) instead of STARTTLS.
	ImplicitTLS bool
	// TLS configures the TLS client; nil verifies the server's certificate for Addr's host against the
	// system roots. ServerName is set to Addr's host if empty.
	TLS *tls.Config
	// Timeout bounds a whole send (dial, exchange and data); 0 means 30 seconds.
	Timeout time.Duration
	// Clock gives the Date header; nil means time.Now.
	Clock func() time.Time
}

// String describes c without its password, should it be printed.
func (c SMTPConfig) String() string {
	return fmt.Sprintf("SMTPConfig{Addr:%s From:%s Username:%s ImplicitTLS:%v}", c.Addr, c.From, c.Username, c.ImplicitTLS)
}

// LogValue logs c without its password.
func (c SMTPConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("addr", c.Addr), slog.String("from", c.From), slog.String("username", c.Username),
		slog.Bool("implicit_tls", c.ImplicitTLS))
}

// smtpMailer is the SMTP submission client.
type smtpMailer struct {
	c        SMTPConfig
	host     string
	loopback bool
	from     string // the envelope sender
}

// NewSMTPMailer returns a Mailer that submits messages to c.Addr, one connection per message. STARTTLS is
// required unless the server is on a loopback address (a local relay), where it is still used if offered.
func NewSMTPMailer(c SMTPConfig) (Mailer, error) {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return nil, fmt.Errorf("console: SMTP address %q: %w", c.Addr, err)
	}
	if strings.ContainsAny(c.From, "\r\n") {
		return nil, errors.New("console: SMTP sender contains a line break")
	}
	from, err := mail.ParseAddress(c.From)
	if err != nil {
		return nil, fmt.Errorf("console: SMTP sender %q: %w", c.From, err)
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.TLS == nil {
		c.TLS = &tls.Config{}
	}
	c.TLS = c.TLS.Clone()
	if c.TLS.ServerName == "" {
		c.TLS.ServerName = host
	}
	if c.TLS.MinVersion == 0 {
		c.TLS.MinVersion = tls.VersionTLS12
	}
	return &smtpMailer{c: c, host: host, loopback: isLoopback(host), from: from.Address}, nil
}

// isLoopback reports whether host is "localhost" or a loopback IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func (s *smtpMailer) Send(ctx context.Context, m Message) error {
	to, err := mail.ParseAddress(m.To)
	if err != nil || to.Address != m.To || strings.ContainsAny(m.Subject, "\r\n") {
		return errors.New("console: smtp: bad recipient or subject")
	}
	ctx, cancel := context.WithTimeout(ctx, s.c.Timeout)
	defer cancel()
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", s.c.Addr)
	if err != nil {
		return fmt.Errorf("console: smtp: %w", err)
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) }) // cancellation
	defer stop()
	if s.c.ImplicitTLS {
		conn = tls.Client(conn, s.c.TLS)
	}
	// net/smtp's PlainAuth trusts a connection without TLS only for the names "localhost", "127.0.0.1" and "::1".
	name := s.host
	if s.loopback && !strings.EqualFold(name, "localhost") {
		name = "127.0.0.1"
	}
	c, err := smtp.NewClient(conn, name)
	if err != nil {
		return fmt.Errorf("console: smtp: %w", err)
	}
	defer c.Close()
	if !s.c.ImplicitTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(s.c.TLS); err != nil {
				return fmt.Errorf("console: smtp: STARTTLS: %w", err)
			}
		} else if !s.loopback {
			return errors.New("console: smtp: the server does not offer STARTTLS; refusing to send in clear")
		}
	}
	if s.c.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.c.Username, s.c.Password, name)); err != nil {
			return fmt.Errorf("console: smtp: AUTH: %w", err)
		}
	}
	if err := c.Mail(s.from); err != nil {
		return fmt.Errorf("console: smtp: MAIL: %w", err)
	}
	if err := c.Rcpt(m.To); err != nil {
		return fmt.Errorf("console: smtp: RCPT: %w", err)
	}
	wc, err := c.Data()
	if err != nil {
		return fmt.Errorf("console: smtp: DATA: %w", err)
	}
	if _, err := wc.Write(s.format(m)); err != nil {
		return fmt.Errorf("console: smtp: DATA: %w", err)
	}
	if err := wc.Close(); err != nil {
		return fmt.Errorf("console: smtp: DATA: %w", err)
	}
	return c.Quit()
}

// format returns the RFC 5322 message with \n line ends (the DATA writer sends \r\n and escapes leading dots).
// The submission server adds Message-ID (RFC 6409 §8.3).
func (s *smtpMailer) format(m Message) []byte {
	body := strings.ReplaceAll(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\r", "\n")
	var b strings.Builder
	b.WriteString("From: " + s.c.From + "\n")
	b.WriteString("To: " + m.To + "\n")
	b.WriteString("Subject: " + mime.QEncoding.Encode("utf-8", m.Subject) + "\n")
	b.WriteString("Date: " + s.c.Clock().Format(time.RFC1123Z) + "\n")
	b.WriteString("MIME-Version: 1.0\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\n")
	b.WriteString("Content-Transfer-Encoding: 8bit\n\n")
	b.WriteString(body)
	if !strings.HasSuffix(body, "\n") {
		b.WriteString("\n")
	}
	return []byte(b.String())
}
