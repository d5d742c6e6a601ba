package sdk

import (
	"time"

	"github.com/stoa-rtc/stoa/internal/protocol"
	"github.com/stoa-rtc/stoa/sframe/media"
)

// Kind is the kind of a track.
type Kind string

// The three kinds of track.
const (
	KindAudio Kind = "audio" // Opus
	KindVideo Kind = "video" // VP8
	KindData  Kind = "data"  // data-channel messages
)

// codec returns the media profile codec of k.
func (k Kind) codec() media.Codec {
	switch k {
	case KindAudio:
		return media.Opus
	case KindVideo:
		return media.VP8
	}
	return media.Data
}

// Edge is an edge server that the dispatcher scheduled the client onto.
type Edge struct {
	ID     string `json:"id"`
	Region string `json:"region"`
	// URL is the edge's signaling WebSocket URL (wss://HOST/v1/signal).
	URL string `json:"url"`
}

// TrackInfo describes a track published in the channel.
type TrackInfo struct {
	// ID is the track id the edge assigned.
	ID string
	// UID is the publisher's uid.
	UID  string
	Kind Kind
}

// Participant is another member of the channel.
type Participant struct {
	UID    string
	Tracks []TrackInfo
}

// Privilege tells until when the token grants an action. ID uses the token's numbers: 1 join channel, 2 publish
// audio, 3 publish video, 4 publish data, 100 join hidden.
type Privilege struct {
	ID        uint16
	Name      string
	ExpiresAt time.Time
}

// Privilege numbers.
const (
	PrivilegeJoinChannel  uint16 = 1
	PrivilegePublishAudio uint16 = 2
	PrivilegePublishVideo uint16 = 3
	PrivilegePublishData  uint16 = 4
	PrivilegeJoinHidden   uint16 = 100
)

// Frame is a decrypted media frame of a remote track.
type Frame struct {
	// Data is the encoded frame (an Opus packet or a VP8 frame) as the publisher's encoder produced it.
	Data []byte
	// TrackID and UID name the track and its publisher.
	TrackID string
	UID     string
	Kind    Kind
	// Keyframe is true for a VP8 key frame, and for every audio frame.
	Keyframe bool
	// Timestamp is the frame's RTP timestamp (48 kHz for audio, 90 kHz for video).
	Timestamp uint32
}

// DataMessage is a decrypted data message of a remote data track.
type DataMessage struct {
	// TrackID is the publisher's data track; UID the publisher ("" if the client has not learnt whose the track is).
	TrackID string
	UID     string
	Data    []byte
}

// MaxDataMessage is the largest encrypted data message the edge forwards; DataTrack.Send accepts messages up to
// this size less the SFrame overhead (about 33 bytes).
const MaxDataMessage = protocol.MaxDataMessage

// MaxDataBuffered is how many bytes may wait in a data channel's send buffer before DataTrack.Send refuses more.
const MaxDataBuffered = 1 << 20

func privilegesFrom(ps []protocol.PrivilegeState) []Privilege {
	out := make([]Privilege, 0, len(ps))
	for _, p := range ps {
		out = append(out, privilegeFrom(p))
	}
	return out
}

func privilegeFrom(p protocol.PrivilegeState) Privilege {
	return Privilege{ID: p.Privilege, Name: p.Name, ExpiresAt: time.Unix(p.ExpiresAt, 0)}
}

func trackFrom(t protocol.Track) TrackInfo {
	return TrackInfo{ID: t.ID, UID: t.UID, Kind: Kind(t.Kind)}
}
