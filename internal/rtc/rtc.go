// Package rtc holds what Stoa's edges and clients must agree on for WebRTC: the two codecs with their fixed
// payload types (docs/protocol.md), the Pion media engine and interceptors built from them, and the bridge from
// Pion's logs to slog.
package rtc

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// The codecs Stoa negotiates: Opus for audio, VP8 for video. Payload types are fixed so that they are the same on
// every connection, which keeps forwarding a copy, not a translation.
var (
	Opus = webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType: 111,
	}
	VP8 = webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000,
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"},
				{Type: "nack"}, {Type: "nack", Parameter: "pli"}}},
		PayloadType: 96,
	}
)

// Codec returns the codec of a media kind: VP8 for video, Opus otherwise.
func Codec(video bool) webrtc.RTPCodecParameters {
	if video {
		return VP8
	}
	return Opus
}

// MediaEngine returns the clients' media engine: Stoa's codecs and Pion's default interceptors (NACK generation
// and response, RTCP reports, TWCC feedback, the statistics behind GetStats).
func MediaEngine() (*webrtc.MediaEngine, *interceptor.Registry, error) {
	m, err := codecs()
	if err != nil {
		return nil, nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, nil, err
	}
	return m, ir, nil
}

// EdgeMediaEngine returns the edge's media engine: Stoa's codecs and only the interceptors the edge needs, since
// the ones on a subscriber leg run for every packet to every subscriber. Publisher legs: NACKs for lost packets
// (RFC 4585 §6.2.1), receiver reports, TWCC feedback. Subscriber legs: sender reports (RFC 3550 §6.4.1, which
// subscribers need to synchronise audio and video). Left out:
//   - Pion's NACK responder, which copied every packet into a buffer per subscriber leg: the edge answers NACKs
//     from one copy per packet for all subscribers (forward.Track.ReadRTCP);
//   - Pion's statistics recorder, which only feeds PeerConnection.GetStats: the edge measures what it reports
//     itself (internal/edge/quality.go).
func EdgeMediaEngine() (*webrtc.MediaEngine, *interceptor.Registry, error) {
	m, err := codecs()
	if err != nil {
		return nil, nil, err
	}
	ir := &interceptor.Registry{}
	// NACK feedback is in the VP8 codec's parameters already.
	generator, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, nil, err
	}
	ir.Add(generator)
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, nil, err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return nil, nil, err
	}
	if err := webrtc.ConfigureTWCCSender(m, ir); err != nil {
		return nil, nil, err
	}
	return m, ir, nil
}

// codecs returns a media engine with Stoa's two codecs and nothing else.
func codecs() (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(Opus, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	if err := m.RegisterCodec(VP8, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	return m, nil
}

// Logs sends Pion's logs to a slog logger, one level quieter than Pion rates them (Pion reports routine events,
// such as a socket closed at shutdown, as errors); scopes listed in Quiet go to debug level altogether.
type Logs struct {
	Log   *slog.Logger
	Quiet []string
}

// NewLogger implements logging.LoggerFactory.
func (f Logs) NewLogger(scope string) logging.LeveledLogger {
	l := logger{log: f.Log.With("component", "pion", "scope", scope)}
	for _, q := range f.Quiet {
		l.quiet = l.quiet || q == scope
	}
	return l
}

type logger struct {
	log   *slog.Logger
	quiet bool
}

func (l logger) at(level slog.Level, msg string) {
	if l.quiet {
		level = slog.LevelDebug
	}
	l.log.Log(context.Background(), level, msg)
}

func (l logger) atf(level slog.Level, format string, a ...any) {
	if l.quiet {
		level = slog.LevelDebug
	}
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, a...))
	}
}

func (logger) Trace(string)                     {}
func (logger) Tracef(string, ...any)            {}
func (logger) Debug(string)                     {}
func (logger) Debugf(string, ...any)            {}
func (l logger) Info(msg string)                { l.at(slog.LevelDebug, msg) }
func (l logger) Infof(format string, a ...any)  { l.atf(slog.LevelDebug, format, a...) }
func (l logger) Warn(msg string)                { l.at(slog.LevelDebug, msg) }
func (l logger) Warnf(format string, a ...any)  { l.atf(slog.LevelDebug, format, a...) }
func (l logger) Error(msg string)               { l.at(slog.LevelWarn, msg) }
func (l logger) Errorf(format string, a ...any) { l.atf(slog.LevelWarn, format, a...) }
