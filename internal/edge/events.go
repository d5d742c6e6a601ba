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
)

// Event is a structured record of a session's life, for logs and analytics. It never carries tokens, keys or
// media, only who, where, when and why.
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
}
