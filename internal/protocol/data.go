package protocol

import "errors"

// Data messages travel on WebRTC data channels, not on the signaling socket. A publisher sends each message, an
// SFrame-encrypted payload, on the data channel it opened with its data track's id as label. The edge forwards it
// to every subscriber on the subscriber connection's single data channel, labelled DataChannelLabel, framed as
//
//	u8 len(track_id) || track_id || payload
//
// so that the subscriber knows whose key opens it (the track tells the publisher).
const DataChannelLabel = "stoa-data"

// MaxDataMessage is the largest data payload the edge forwards.
const MaxDataMessage = 16 << 10

// ErrDataFrame reports a data frame that cannot be parsed.
var ErrDataFrame = errors.New("protocol: malformed data frame")

// AppendDataFrame appends the subscriber-side framing of payload from trackID to dst.
func AppendDataFrame(dst []byte, trackID string, payload []byte) []byte {
	dst = append(dst, byte(len(trackID)))
	dst = append(dst, trackID...)
	return append(dst, payload...)
}

// ParseDataFrame splits a subscriber-side data frame. The returned slices alias b.
func ParseDataFrame(b []byte) (trackID string, payload []byte, err error) {
	if len(b) < 1 || int(b[0]) > len(b)-1 || b[0] == 0 || int(b[0]) > MaxTrackIDLen {
		return "", nil, ErrDataFrame
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], nil
}
