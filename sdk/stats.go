package sdk

import "sync/atomic"

// TrackStats counts the frames of one track. For a local track only FramesSent and FramesDropped move; for a
// remote track the others. Data messages count as frames.
type TrackStats struct {
	// TrackID, UID (the publisher) and Kind identify the track; Local is true for the client's own tracks.
	TrackID string
	UID     string
	Kind    Kind
	Local   bool

	// FramesSent counts frames encrypted and handed to the network.
	FramesSent uint64
	// FramesReceived counts complete frames received; each is then either DecryptOK or DecryptFailed (another
	// channel secret, tampering, a replay).
	FramesReceived uint64
	DecryptOK      uint64 // decrypted and delivered
	DecryptFailed  uint64 // rejected by SFrame; never delivered
	// FramesIncomplete counts received frames given up on because packets were lost.
	FramesIncomplete uint64
	// FramesDropped counts frames not sent because the client was reconnecting, and decrypted frames discarded
	// because the application did not read them fast enough.
	FramesDropped uint64
}

// Stats are the client's counters: totals over every track since Join, and a TrackStats per live track.
type Stats struct {
	// Totals over every track since Join, counted as in TrackStats.
	FramesSent       uint64
	FramesReceived   uint64
	DecryptOK        uint64
	DecryptFailed    uint64
	FramesIncomplete uint64
	FramesDropped    uint64
	// EventsDropped counts events, tracks and data messages not delivered because the application did not drain
	// Events, Tracks or Data.
	EventsDropped uint64
	// Reconnects counts successful reconnections.
	Reconnects uint64
	// Tracks has one entry per live local and remote track, sorted by track id.
	Tracks []TrackStats
}

// counters are the atomic counters behind TrackStats and Stats.
type counters struct {
	sent, received, ok, failed, incomplete, dropped atomic.Uint64
}

// trackCounters count for one track and into the client's totals.
type trackCounters struct {
	own   counters
	total *counters
}

func (t *trackCounters) sent()        { t.own.sent.Add(1); t.total.sent.Add(1) }
func (t *trackCounters) received()    { t.own.received.Add(1); t.total.received.Add(1) }
func (t *trackCounters) decryptOK()   { t.own.ok.Add(1); t.total.ok.Add(1) }
func (t *trackCounters) decryptFail() { t.own.failed.Add(1); t.total.failed.Add(1) }
func (t *trackCounters) dropped()     { t.own.dropped.Add(1); t.total.dropped.Add(1) }
func (t *trackCounters) incomplete(n int) {
	t.own.incomplete.Add(uint64(n))
	t.total.incomplete.Add(uint64(n))
}

func (t *trackCounters) snapshot(id, uid string, kind Kind, local bool) TrackStats {
	return TrackStats{
		TrackID: id, UID: uid, Kind: kind, Local: local,
		FramesSent:       t.own.sent.Load(),
		FramesReceived:   t.own.received.Load(),
		DecryptOK:        t.own.ok.Load(),
		DecryptFailed:    t.own.failed.Load(),
		FramesIncomplete: t.own.incomplete.Load(),
		FramesDropped:    t.own.dropped.Load(),
	}
}
