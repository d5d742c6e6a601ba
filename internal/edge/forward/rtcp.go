package forward

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
)

// RTCPReader is the part of a subscriber's *webrtc.RTPSender that
// Track.ReadRTCP uses.
type RTCPReader interface {
	Read(b []byte) (n int, a interceptor.Attributes, err error)
}

// rtcpBufferSize holds any SRTCP packet Pion hands up: its receive MTU
// defaults to 1460 bytes, and a short buffer would end the loop.
const rtcpBufferSize = 1 << 13

// ReadRTCP reads the RTCP a subscriber sends for the Track's RTPSender
// until reading fails. It answers the subscriber's generic NACKs (RFC 4585
// §6.2.1) for video from the Track's history, turns every compound packet
// that holds a PLI or FIR (RFC 4585 §6.3.1, RFC 5104 §4.3.1) into a
// throttled [Track.RequestKeyframe], and calls onReport (if not nil) for
// every reception report block (RFC 3550 §6.4.1) of its sender and receiver
// reports, whichever SSRC it is about: a compound packet reaches every
// sender whose SSRC it names, so callers filter on [ReceptionReport.SSRC].
//
// Every sender needs a reader: the edge's connections have no NACK
// responder interceptor (internal/rtc), and Pion's other interceptors see
// a subscriber's RTCP only as it is read. Run ReadRTCP in its own
// goroutine after AddTrack. It returns nil once the sender is stopped
// (RemoveTrack, or the PeerConnection's Close) and the error otherwise.
func (t *Track) ReadRTCP(r RTCPReader, onReport func(ReceptionReport)) error {
	var scratch resend
	return readRTCP(r, rtcpHandler{
		keyframe: t.RequestKeyframe,
		report:   onReport,
		nack:     func(ssrc uint32, seq uint16) { t.resend(ssrc, seq, &scratch) },
	})
}

// rtcpHandler is what readRTCP does with what it reads; nil fields are
// skipped.
type rtcpHandler struct {
	keyframe func()
	report   func(ReceptionReport)
	nack     func(mediaSSRC uint32, seq uint16)
}

func readRTCP(r RTCPReader, h rtcpHandler) error {
	buf := make([]byte, rtcpBufferSize)
	for {
		n, _, err := r.Read(buf)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) {
				return nil
			}
			return fmt.Errorf("forward: read rtcp: %w", err)
		}
		if h.nack != nil {
			nacks(buf[:n], h.nack)
		}
		if h.keyframe != nil && hasKeyframeRequest(buf[:n]) {
			h.keyframe()
		}
		if h.report != nil {
			receptionReports(buf[:n], h.report)
		}
	}
}

// nacks calls fn for every sequence number that the generic NACKs (RFC 4585
// §6.2.1) of a compound RTCP packet name, with the media SSRC they are
// about. Like receptionReports it walks the bytes and allocates nothing; a
// malformed packet ends the walk.
//
//	header(4: V=2, FMT=1, PT=205 RTPFB) sender SSRC(4) media SSRC(4) then entries:
//	PID(2) BLP(2): PID is lost, and PID+i+1 for every bit i (from the least significant) set in BLP
func nacks(b []byte, fn func(mediaSSRC uint32, seq uint16)) {
	for len(b) >= 4 {
		var h rtcp.Header
		if err := h.Unmarshal(b); err != nil {
			return
		}
		size := (int(h.Length) + 1) * 4
		if size > len(b) {
			return
		}
		if h.Type == rtcp.TypeTransportSpecificFeedback && h.Count == rtcp.FormatTLN && size >= 12 {
			ssrc := binary.BigEndian.Uint32(b[8:12])
			for e := b[12:size]; len(e) >= 4; e = e[4:] {
				pid, blp := binary.BigEndian.Uint16(e[0:2]), binary.BigEndian.Uint16(e[2:4])
				fn(ssrc, pid)
				for i := range uint16(16) {
					if blp&(1<<i) != 0 {
						fn(ssrc, pid+i+1)
					}
				}
			}
		}
		b = b[size:]
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
