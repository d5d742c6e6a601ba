package dispatch

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// Origins is a list of browser origins allowed to call an API from another origin (CORS, and the edges' WebSocket
// Origin check): "*" for any, or origins "scheme://host[:port]" whose host may hold path.Match wildcards
// ("https://*.example.com"). The zero value allows no other origin.
type Origins []string

// ParseOrigins reads a comma-separated --allow-origin value, checking each entry.
func ParseOrigins(s string) (Origins, error) {
	var out Origins
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if o != "*" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" ||
				u.RawQuery != "" || u.Fragment != "" || u.User != nil {
				return nil, fmt.Errorf("origin %q is not \"*\" or scheme://host[:port] (http or https, no path)", o)
			}
			if _, err := path.Match(o, ""); err != nil {
				return nil, fmt.Errorf("origin %q: bad wildcard pattern", o)
			}
			o = strings.ToLower(o)
		}
		out = append(out, o)
	}
	return out, nil
}

// Allows reports whether a request with the Origin header origin may be answered.
func (o Origins) Allows(origin string) bool {
	origin = strings.ToLower(origin)
	for _, p := range o {
		if p == "*" || p == origin {
			return true
		}
		if ok, _ := path.Match(p, origin); ok {
			return true
		}
	}
	return false
}

// corsMaxAge is how long (seconds) a browser may cache a preflight's answer.
const corsMaxAge = "600"

// CORS lets the browser pages of the allowed origins call next (POST /v1/dispatch): it answers their preflight
// requests itself and marks next's answers readable by them. Requests of other origins pass through without CORS
// headers, so the browser withholds the answer from their page; requests without an Origin header (servers, the Go
// SDK) are untouched.
func CORS(allowed Origins, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		ok := allowed.Allows(origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if !ok {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", http.MethodPost)
			h.Set("Access-Control-Allow-Headers", "Content-Type")
			h.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if ok {
			h.Set("Access-Control-Allow-Origin", origin)
		}
		next.ServeHTTP(w, r)
	})
}
