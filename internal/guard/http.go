package guard

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// Middleware returns a handler that checks every request against class c and serves only the allowed ones with
// next; the others get WriteDenied's answer and never reach next. Inside next, ReportBad scores the request's
// client.
func (g *Guard) Middleware(c Class, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := g.Check(g.ClientIP(r), c)
		if !d.Allowed() {
			WriteDenied(w, d)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), guardKey{}, g)))
	})
}

type guardKey struct{}

// ReportBad scores a bad request (see Guard.Bad) from the client of r, which must have passed through
// Guard.Middleware, and reports whether the client is blocked after it. Without the middleware it does nothing
// and returns false.
func ReportBad(r *http.Request, reason string) bool {
	g, _ := r.Context().Value(guardKey{}).(*Guard)
	if g == nil {
		return false
	}
	return g.Bad(g.ClientIP(r), reason)
}

// FromContext returns the Guard of Guard.Middleware, or nil.
func FromContext(ctx context.Context) *Guard {
	g, _ := ctx.Value(guardKey{}).(*Guard)
	return g
}

// ClientIP returns the address of r's client: the host of r.RemoteAddr, unless that is one of
// Config.TrustedProxies, in which case it is the rightmost X-Forwarded-For address that is not itself a trusted
// proxy (each trusted proxy appends the address it received the request from; everything left of the first
// untrusted address is the client's own claim). It returns the zero Addr if r.RemoteAddr is not an address (a
// Unix socket).
func (g *Guard) ClientIP(r *http.Request) netip.Addr {
	ip := parseHost(r.RemoteAddr)
	if len(g.proxies) == 0 || !contains(g.proxies, ip) {
		return ip
	}
	vals := r.Header.Values("X-Forwarded-For")
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for v != "" {
			hop := v
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				hop, v = v[j+1:], v[:j]
			} else {
				v = ""
			}
			hop = strings.TrimSpace(hop)
			if hop == "" {
				continue
			}
			a := parseHost(hop)
			if !a.IsValid() {
				// A trusted proxy wrote something that is not an address: the proxy is the last client we can name.
				return ip
			}
			if !contains(g.proxies, a) {
				return a
			}
			ip = a
		}
	}
	return ip // every hop was a trusted proxy
}

// parseHost parses "IP", "IP:port" or "[IPv6]:port" into a normalized address, or returns the zero Addr.
func parseHost(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalize(ap.Addr())
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return normalize(a)
	}
	return netip.Addr{}
}

var (
	bodyLimited = []byte(`{"error":{"code":"rate_limited","message":"too many requests from this address; retry after the Retry-After delay"}}` + "\n")
	bodyBlocked = []byte(`{"error":{"code":"blocked","message":"this address is blocked after repeated bad requests; retry after the Retry-After delay"}}` + "\n")
)

// WriteDenied answers a refused request: 429 with error code "rate_limited" for Limited, 403 with "blocked" for
// Blocked, a Retry-After header in seconds and the JSON body {"error":{"code":...,"message":...}} of every Stoa
// error. The body does not say why a key was blocked.
func WriteDenied(w http.ResponseWriter, d Decision) {
	status, body := http.StatusTooManyRequests, bodyLimited
	if d.Verdict == Blocked {
		status, body = http.StatusForbidden, bodyBlocked
	}
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(d.RetryAfterSeconds()))
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}
