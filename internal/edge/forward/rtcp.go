package forward

import (
	"errors"
	"fmt"
	"io"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
)

// RTCPReader is the part of a subscriber's *webrtc.RTPSender that ReadRTCP
// uses.
type RTCPReader interface {
	Read(b []byte) (n int, a interceptor.Attributes, err error)
}

// rtcpBufferSize holds any SRTCP packet Pion hands up: its receive MTU
// defaults to 1460 bytes, and a short buffer would end the loop.
const rtcpBufferSize = 1 << 13

// ReadRTCP reads the RTCP a subscriber sends for one RTPSender until reading
// fails, and calls onKeyframeRequest (if not nil) for every compound packet
// that holds a PLI or FIR (RFC 4585 §6.3.1, RFC 5104 §4.3.1); pass
// [Track.RequestKeyframe] to forward them, throttled, to the publisher.
//
// Every sender needs a reader: Pion's interceptors see a subscriber's RTCP
// only as it is read, so without one its NACKs go unanswered and its
// reports unprocessed. Run ReadRTCP in its own goroutine after AddTrack. It
// returns nil once the sender is stopped (RemoveTrack, or the
// PeerConnection's Close) and the error otherwise.
func ReadRTCP(r RTCPReader, onKeyframeRequest func()) error {
	buf := make([]byte, rtcpBufferSize)
	for {
		n, _, err := r.Read(buf)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) {
				return nil
			}
			return fmt.Errorf("forward: read rtcp: %w", err)
		}
		if onKeyframeRequest != nil && hasKeyframeRequest(buf[:n]) {
			onKeyframeRequest()
		}
	}
}

// hasKeyframeRequest reports whether a compound RTCP packet (RFC 3550 §6.1)
// holds a PLI or FIR. It walks the common headers only, so it allocates
// nothing and skips what it does not need; a malformed tail ends the walk.
func hasKeyframeRequest(b []byte) bool {
	for len(b) >= 4 {
		var h rtcp.Header
		if err := h.Unmarshal(b); err != nil {
			return false
		}
		if h.Type == rtcp.TypePayloadSpecificFeedback && (h.Count == rtcp.FormatPLI || h.Count == rtcp.FormatFIR) {
			return true
		}
		size := (int(h.Length) + 1) * 4 // length is in 32-bit words minus one
		if size > len(b) {
			return false
		}
		b = b[size:]
	}
	return false
}
