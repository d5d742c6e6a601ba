package edge

import "time"

// EventType names what happened.
type EventType string

const (
	EventJoin       EventType = "join"
	EventJoinFailed EventType = "join_failed"
	EventLeave      EventType = "leave"
	EventPublish    EventType = "publish"
	EventUnpublish  EventType = "unpublish"
	EventError      EventType = "error"
	// EventQuality reports a session's media quality every Config.QualityInterval and once after its leave
	// (Final); see quality.go.
	EventQuality EventType = "quality"
)

// Event is a structured record of a session's life, for logs and analytics. It never carries tokens, keys or
// media, only who, where, when and why. AppID names the project the event belongs to; a join_failed belongs to
// one only when the token verified with one of the project's certificates (a failed ticket, an internal error).
type Event struct {
	Time      time.Time `json:"time"`
	Type      EventType `json:"type"`
	Edge      string    `json:"edge"`
	Region    string    `json:"region"`
	AppID     string    `json:"app_id,omitempty"`
	Channel   string    `json:"channel,omitempty"`
	UID       string    `json:"uid,omitempty"`
	Session   string    `json:"session,omitempty"`
	TrackID   string    `json:"track_id,omitempty"`
	Kind      string    `json:"kind,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`

	// ClaimedAppID is, in a join_failed before the token verified, the App ID the client named. Anyone can name
	// one: such a failure belongs to no project (AppID is empty), and this is for operators.
	ClaimedAppID string `json:"claimed_app_id,omitempty"`

	// Quality events only.
	// JoinMs is the session's join time in milliseconds (join request to its subscriber connection being
	// connected), in the one quality event after it is known; 0 (absent) otherwise.
	JoinMs int64 `json:"join_ms,omitempty"`
	// IntervalMs is the time the report covers.
	IntervalMs int64 `json:"interval_ms,omitempty"`
	// Final marks the report that follows the session's leave.
	Final  bool           `json:"final,omitempty"`
	Tracks []TrackQuality `json:"tracks,omitempty"`
}
