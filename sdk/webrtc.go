package sdk

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// The codecs Stoa negotiates, with the payload types and parameters the edge uses, so that forwarding is a copy.
var (
	codecOpus = webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType: 111,
	}
	codecVP8 = webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000,
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"},
				{Type: "nack"}, {Type: "nack", Parameter: "pli"}}},
		PayloadType: 96,
	}
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
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(codecOpus, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("sdk: %w", err)
	}
	if err := m.RegisterCodec(codecVP8, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("sdk: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("sdk: %w", err)
	}
	se := webrtc.SettingEngine{LoggerFactory: pionLogs{log.With("component", "pion")}}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(iceDisconnected, iceFailed, iceKeepalive)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// pionLogs sends Pion's warnings and errors to a slog.Logger and drops the rest.
type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.log.With("scope", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (pionLogger) Trace(string)          {}
func (pionLogger) Tracef(string, ...any) {}
func (pionLogger) Debug(string)          {}
func (pionLogger) Debugf(string, ...any) {}
func (pionLogger) Info(string)           {}
func (pionLogger) Infof(string, ...any)  {}
func (l pionLogger) Warn(msg string)     { l.log.Warn(msg) }
func (l pionLogger) Warnf(format string, a ...any) {
	if l.log.Enabled(context.Background(), slog.LevelWarn) {
		l.log.Warn(fmt.Sprintf(format, a...))
	}
}
func (l pionLogger) Error(msg string) { l.log.Error(msg) }
func (l pionLogger) Errorf(format string, a ...any) {
	if l.log.Enabled(context.Background(), slog.LevelError) {
		l.log.Error(fmt.Sprintf(format, a...))
	}
}
