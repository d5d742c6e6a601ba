package connlimit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// failAfter bounds every wait of these tests: a connection the server should close but keeps open fails the test
// here instead of hanging it.
const failAfter = 10 * time.Second

// serveHolding accepts on l and keeps every connection open, sending each on accepted; it stops when l closes.
func serveHolding(t *testing.T, l net.Listener) <-chan net.Conn {
	t.Helper()
	accepted := make(chan net.Conn, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		close(accepted)
		for c := range accepted {
			c.Close()
		}
	})
	return accepted
}

// next returns the next connection the server accepted.
func next(t *testing.T, accepted <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-accepted:
		return c
	case <-time.After(failAfter):
		t.Fatal("the server accepted no connection")
		return nil
	}
}

func dialFrom(t *testing.T, addr, source string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: failAfter}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitClosed fails unless the server closes c; what it sends before closing is ignored.
func waitClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(failAfter))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the server kept the connection open", what)
	}
}

// Finding 2 and 6 (many idle or slow connections from one address): connections from one address beyond the cap
// are closed at once, while another address still connects, and a closed connection frees its place.
func TestCapPerAddress(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(raw, Config{MaxPerAddr: 3})
	accepted := serveHolding(t, l)
	addr := raw.Addr().String()
	var held []net.Conn
	for range 3 {
		dialFrom(t, addr, "127.0.0.2")
		held = append(held, next(t, accepted))
	}
	extra := dialFrom(t, addr, "127.0.0.2")
	waitClosed(t, extra, "the connection over the cap")
	dialFrom(t, addr, "127.0.0.3")
	if c := next(t, accepted); !strings.HasPrefix(c.RemoteAddr().String(), "127.0.0.3:") {
		t.Fatalf("accepted %v, want the other address", c.RemoteAddr())
	}
	if n := l.Refused(); n != 1 {
		t.Errorf("Refused = %d, want 1", n)
	}
	held[0].Close()
	held[0].Close() // a second Close must not free a second place
	dialFrom(t, addr, "127.0.0.2")
	next(t, accepted)
	waitClosed(t, dialFrom(t, addr, "127.0.0.2"), "the connection over the cap after one closed")
	if n := l.Refused(); n != 2 {
		t.Errorf("Refused = %d, want 2", n)
	}
}

// fakeListener hands out the connections queued on it, then fails.
type fakeListener struct{ conns chan net.Conn }

func (f fakeListener) Accept() (net.Conn, error) {
	c, ok := <-f.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}
func (f fakeListener) Close() error   { return nil }
func (f fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

// fakeConn is one end of a pipe with a chosen remote address.
type fakeConn struct {
	net.Conn
	remote net.Addr
}

func (c fakeConn) RemoteAddr() net.Addr { return c.remote }

// Finding 2: IPv6 addresses of one /64 are one client, IPv4-mapped addresses are their IPv4 address, and exempt
// ranges are never capped.
func TestClients(t *testing.T) {
	cfg := Config{MaxPerAddr: 2, Exempt: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}}
	remotes := []struct {
		addr   string
		admit  bool
		reason string
	}{
		{"[2001:db8:1:2::1]:1000", true, ""},
		{"[2001:db8:1:2:ffff:ffff:ffff:ffff]:1000", true, ""},
		{"[2001:db8:1:2:abcd::1%eth0]:1000", false, "a third address of the same /64"},
		{"[2001:db8:1:3::1]:1000", true, "another /64"},
		{"192.0.2.1:1000", true, ""},
		{"[::ffff:192.0.2.1]:1000", true, "the mapped form of the same IPv4 address"},
		{"192.0.2.1:2000", false, "a third connection of 192.0.2.1"},
		{"10.1.2.3:1", true, "exempt"}, {"10.1.2.3:2", true, "exempt"}, {"10.1.2.3:3", true, "exempt"},
		{"@unix", true, "not an IP address"},
	}
	q := make(chan net.Conn, len(remotes))
	peers := map[string]net.Conn{}
	for _, r := range remotes {
		ours, theirs := net.Pipe()
		var remote net.Addr = &net.UnixAddr{Name: r.addr, Net: "unix"}
		if ap, err := netip.ParseAddrPort(r.addr); err == nil {
			remote = net.TCPAddrFromAddrPort(ap)
		}
		q <- fakeConn{Conn: ours, remote: remote}
		peers[r.addr] = theirs
	}
	close(q)
	l := NewListener(fakeListener{q}, cfg)
	admitted := map[string]bool{}
	for {
		c, err := l.Accept()
		if err != nil {
			break
		}
		admitted[c.RemoteAddr().String()] = true
		defer c.Close()
	}
	for _, r := range remotes {
		got := admitted[(&fakeConn{remote: remoteOf(r.addr)}).RemoteAddr().String()]
		if got != r.admit {
			t.Errorf("%s (%s): admitted %v, want %v", r.addr, r.reason, got, r.admit)
		}
		if !r.admit {
			// The refused connection was closed: its peer reads EOF.
			if _, err := peers[r.addr].Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("%s: peer read %v, want EOF", r.addr, err)
			}
		}
	}
}

func remoteOf(s string) net.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return &net.UnixAddr{Name: s, Net: "unix"}
}

func TestValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
	err := Config{MaxPerAddr: -1, IPv6PrefixLen: 16, Exempt: []netip.Prefix{{}}, ReadTimeout: -time.Second}.Validate()
	for _, want := range []string{"MaxPerAddr", "IPv6PrefixLen", "Exempt", "ReadTimeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want a problem with %s", err, want)
		}
	}
}

// startServer serves h with cfg's timeouts on a capped loopback listener.
func startServer(t *testing.T, cfg Config, h http.Handler) string {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := cfg.Server(h, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(NewListener(raw, cfg))
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return raw.Addr().String()
}

// Finding 6: a client that sends its body slowly, byte by byte, is cut off at ReadTimeout.
func TestSlowBodyClosed(t *testing.T) {
	addr := startServer(t, Config{ReadTimeout: 200 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	c := dialFrom(t, addr, "127.0.0.1")
	fmt.Fprint(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
	stop := make(chan struct{})
	dripped := make(chan struct{})
	go func() {
		defer close(dripped)
		tick := time.NewTicker(20 * time.Millisecond) // the attacker's pace
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	waitClosed(t, c, "a slow body")
	close(stop)
	<-dripped
}

// Finding 6: a keep-alive connection left idle after a request is closed at IdleTimeout.
func TestIdleKeepAliveClosed(t *testing.T) {
	addr := startServer(t, Config{IdleTimeout: 200 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	c := dialFrom(t, addr, "127.0.0.1")
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(failAfter))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close {
		t.Fatal("the server closed the connection after the request: keep-alive is not tested")
	}
	if _, err := br.ReadByte(); err != io.EOF {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server kept the idle connection open")
		}
		t.Fatalf("read after the response: %v, want EOF", err)
	}
}

// A handler may outlast ReadTimeout once it has read its request (a CSV export): its context is not cancelled
// and its answer arrives, with or without a request body.
func TestLongResponseOutlivesReadTimeout(t *testing.T) {
	const readTimeout = 100 * time.Millisecond
	addr := startServer(t, Config{ReadTimeout: readTimeout}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
			io.WriteString(w, "cancelled")
		case <-time.After(5 * readTimeout): // the long work: time must pass beyond ReadTimeout
			io.WriteString(w, "done")
		}
	}))
	for _, body := range []string{"", "a small body"} {
		req, _ := http.NewRequest("POST", "http://"+addr+"/", strings.NewReader(body))
		if body == "" {
			req.Method, req.Body = "GET", nil
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "done" {
			t.Errorf("body %q: the handler answered %q", body, b)
		}
	}
}
