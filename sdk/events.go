package sdk

// Event is something that happened in the channel or to the connection. The concrete types are ParticipantJoined,
// ParticipantLeft, TrackPublished, TrackUnpublished, PrivilegeWillExpire, PrivilegeExpired, Removed, ErrorEvent,
// Reconnecting, Reconnected and Disconnected; use a type switch.
type Event interface{ isEvent() }

// ParticipantJoined tells that a participant joined the channel. The participants already present when the client
// joins (or rejoins after reconnecting) are delivered as ParticipantJoined and TrackPublished events too.
type ParticipantJoined struct{ Participant Participant }

// ParticipantLeft tells that a participant left; Reason is CodeLeft, CodeTimeout, CodeReplaced, ...
type ParticipantLeft struct {
	UID    string
	Reason Code
}

// TrackPublished tells that a participant published a track. With auto-subscription on, the track arrives on
// Client.Tracks (media) or Client.Data (data) shortly after.
type TrackPublished struct{ Track TrackInfo }

// TrackUnpublished tells that a track was unpublished; its RemoteTrack ends.
type TrackUnpublished struct{ Track TrackInfo }

// PrivilegeWillExpire warns that a privilege of the token expires soon; call Client.Renew with a fresh token.
type PrivilegeWillExpire struct{ Privilege Privilege }

// PrivilegeExpired tells that a privilege expired; the client's publications that needed it have been stopped.
type PrivilegeExpired struct{ Privilege Privilege }

// Removed tells that the edge ended the session (CodePrivilegeExpired, CodeReplaced, CodeTimeout,
// CodeShuttingDown). The client reconnects after CodeTimeout and CodeShuttingDown; otherwise Disconnected follows.
type Removed struct {
	Reason  Code
	Message string
}

// ErrorEvent reports a problem not tied to a request, such as a failed renegotiation.
type ErrorEvent struct{ Err error }

// Reconnecting tells that the session with the edge was lost (Err says why) and the client is reconnecting: local
// tracks refuse frames with ErrReconnecting and remote tracks end until Reconnected.
type Reconnecting struct{ Err error }

// Reconnected tells that the client rejoined the channel (on Edge) and published its tracks again. Remote tracks
// arrive anew on Client.Tracks; local tracks may have new ids.
type Reconnected struct{ Edge Edge }

// Disconnected is the last event: the client has lost the channel for good (Err says why) or has left (Err nil).
// Client.Done is closed and the event, track and data channels are closed after it.
type Disconnected struct{ Err error }

func (ParticipantJoined) isEvent()   {}
func (ParticipantLeft) isEvent()     {}
func (TrackPublished) isEvent()      {}
func (TrackUnpublished) isEvent()    {}
func (PrivilegeWillExpire) isEvent() {}
func (PrivilegeExpired) isEvent()    {}
func (Removed) isEvent()             {}
func (ErrorEvent) isEvent()          {}
func (Reconnecting) isEvent()        {}
func (Reconnected) isEvent()         {}
func (Disconnected) isEvent()        {}
