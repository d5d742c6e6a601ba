package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/stoa-rtc/stoa/internal/protocol"
	"github.com/stoa-rtc/stoa/token"
)

// demoTokenTTL is how long the demo's tokens live: a demo call, not a session of work.
const demoTokenTTL = 2 * time.Hour

// demoToken serves GET /demo/token?channel=C&uid=U in stoa dev only: a publisher token of the demo project, for
// the demo page on this machine. It answers loopback clients only, so that dev's certificate signs nothing for
// anyone else; {"app_id", "token"}.
func demoToken(proj devProject) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if addr, err := netip.ParseAddr(host); err != nil || !addr.IsLoopback() {
			http.Error(w, "the demo token endpoint answers this machine only", http.StatusForbidden)
			return
		}
		channel, uid := r.URL.Query().Get("channel"), r.URL.Query().Get("uid")
		if err := protocol.CheckChannel(channel); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := protocol.CheckUID(uid); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		tok, err := token.BuildRTC(proj.AppCert, token.RTCOptions{AppID: proj.AppID, Channel: channel, UID: uid,
			Role: token.RolePublisher, Expire: demoTokenTTL})
		if err != nil {
			http.Error(w, "could not build the token", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(map[string]string{"app_id": proj.AppID, "token": tok})
	})
}
