package main

import (
	"flag"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"
)

// The admin listener: Go's profiling endpoints (net/http/pprof) for stoa edge and stoa dev, on a port of their own,
// never the public one. It is off unless --admin-listen names an address, and that address must be a loopback one:
// profiles show what a process does (and its heap holds tokens and keys), so they are for someone on the machine,
// e.g. through an SSH tunnel.

func registerAdminListen(fs *flag.FlagSet, addr *string) {
	fs.StringVar(addr, "admin-listen", "", "loopback address (127.0.0.1:PORT or [::1]:PORT) serving Go's profiles at /debug/pprof/ (default: none)")
}

// checkAdminListen refuses an address that is not a loopback IP and port.
func checkAdminListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("--admin-listen %q: want IP:PORT: %v", addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() || port == "" {
		return usagef("--admin-listen %q: must be a loopback address and port, e.g. 127.0.0.1:6060", addr)
	}
	return nil
}

// adminMux serves the profiles. The command line is left out: it may hold an App Certificate (stoa dev --app-cert).
func adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // the index, and every named profile: heap, goroutine, allocs, ...
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/cmdline", http.NotFound)
	return mux
}

// startAdmin serves the profiles on addr (checked with checkAdminListen). It returns the address it listens on
// and a function that stops the server, ending profiles in progress, and returns once it has stopped.
func startAdmin(addr string) (net.Addr, func(), error) {
	if err := checkAdminListen(addr); err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	// No write timeout: a CPU profile or trace takes as long as its ?seconds= asks.
	srv := &http.Server{Handler: adminMux(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln) // returns ErrServerClosed once stopped
	}()
	return ln.Addr(), func() { srv.Close(); <-done }, nil
}
