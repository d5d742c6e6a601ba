package forward

import (
	"encoding/binary"
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
	return ReadRTCPReports(r, onKeyframeRequest, nil)
}

// ReadRTCPReports is [ReadRTCP] that also calls onReport (if not nil) for every reception report block
// (RFC 3550 §6.4.1) of the sender and receiver reports read, whichever SSRC it is about: a compound packet
// reaches every sender whose SSRC it names, so callers filter on [ReceptionReport.SSRC].
func ReadRTCPReports(r RTCPReader, onKeyframeRequest func(), onReport func(ReceptionReport)) error {
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
		if onReport != nil {
			receptionReports(buf[:n], onReport)
		}
	}
}

// ReceptionReport is one report block of an RTCP SR or RR (RFC 3550 §6.4.1): what a receiver says about the
// stream of SSRC.
type ReceptionReport struct {
	SSRC uint32
	// FractionLost is the fraction of packets lost since the previous report, in 1/256.
	FractionLost uint8
	// TotalLost is the cumulative number of packets lost (24-bit signed: duplicates can make it negative).
	TotalLost int32
	// LastSeq is the extended highest sequence number received.
	LastSeq uint32
	// Jitter is the interarrival jitter in timestamp units.
	Jitter uint32
}

// receptionReports calls fn for every report block of the SRs and RRs in a compound RTCP packet. Like
// hasKeyframeRequest it walks the bytes (RFC 3550 §6.4.1 and §6.4.2 layouts) and allocates nothing; a
// malformed packet ends the walk.
//
//	SR: header(4) sender SSRC(4) NTP(8) RTP timestamp(4) packets(4) octets(4) then the blocks
//	RR: header(4) sender SSRC(4) then the blocks
//	block: SSRC(4) fraction lost(1) cumulative lost(3) highest seq(4) jitter(4) LSR(4) DLSR(4)
func receptionReports(b []byte, fn func(ReceptionReport)) {
	const blockSize = 24
	for len(b) >= 4 {
		var h rtcp.Header
		if err := h.Unmarshal(b); err != nil {
			return
		}
		size := (int(h.Length) + 1) * 4
		if size > len(b) {
			return
		}
		off := -1
		switch h.Type {
		case rtcp.TypeSenderReport:
			off = 28
		case rtcp.TypeReceiverReport:
			off = 8
		}
		if off >= 0 {
			for i := 0; i < int(h.Count) && off+blockSize <= size; i++ {
				blk := b[off : off+blockSize]
				lost := int32(binary.BigEndian.Uint32(blk[4:8])<<8) >> 8 // sign-extend 24 bits
				fn(ReceptionReport{SSRC: binary.BigEndian.Uint32(blk[0:4]), FractionLost: blk[4], TotalLost: lost,
					LastSeq: binary.BigEndian.Uint32(blk[8:12]), Jitter: binary.BigEndian.Uint32(blk[12:16])})
				off += blockSize
			}
		}
		b = b[size:]
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
