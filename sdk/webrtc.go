package sdk

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/internal/rtc"
)

// ICE timeouts: a connection that hears nothing for iceFailed is failed, and the client reconnects.
const (
	iceDisconnected = 4 * time.Second
	iceFailed       = 10 * time.Second
	iceKeepalive    = 2 * time.Second
)

// newAPI returns the Pion API of a client: only Opus and VP8, the default interceptors (NACK, RTCP reports),
// loopback candidates allowed (edges on the same host in development and tests), mDNS off, and Pion's logs at
// warning level and above sent to log.
func newAPI(log *slog.Logger) (*webrtc.API, error) {
	m, ir, err := rtc.MediaEngine()
	if err != nil {
		return nil, fmt.Errorf("sdk: %w", err)
	}
	se := webrtc.SettingEngine{LoggerFactory: rtc.Logs{Log: log}}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(iceDisconnected, iceFailed, iceKeepalive)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}
