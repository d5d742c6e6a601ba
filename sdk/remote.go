package sdk

import (
	"context"
	"io"
	"sync"
)

// frameQueue is how many decrypted frames a RemoteTrack holds for the application; when it is full the oldest is
// dropped (and counted in FramesDropped), so that a slow reader gets the newest media, not a growing delay.
const frameQueue = 64

// RemoteTrack is an audio or video track of another participant, received through the edge. Read its decrypted
// frames with ReadFrame. A RemoteTrack ends when the track is unpublished, when the client unsubscribes, when the
// client reconnects (the track then arrives anew on Client.Tracks) and when the client closes.
type RemoteTrack struct {
	info     TrackInfo
	counters *trackCounters
	frames   chan Frame
	ended    chan struct{}
	endOnce  sync.Once
}

func newRemoteTrack(info TrackInfo, counters *trackCounters) *RemoteTrack {
	return &RemoteTrack{info: info, counters: counters, frames: make(chan Frame, frameQueue), ended: make(chan struct{})}
}

// ID returns the track id.
func (t *RemoteTrack) ID() string { return t.info.ID }

// UID returns the publisher's uid.
func (t *RemoteTrack) UID() string { return t.info.UID }

// Kind returns KindAudio or KindVideo.
func (t *RemoteTrack) Kind() Kind { return t.info.Kind }

// Info returns the track's id, publisher and kind.
func (t *RemoteTrack) Info() TrackInfo { return t.info }

// ReadFrame returns the next decrypted frame. Frames that fail to decrypt (wrong channel secret, tampering,
// replays) are never returned, only counted in Stats. ReadFrame returns io.EOF once the track has ended and its
// remaining frames have been read, or ctx's error.
func (t *RemoteTrack) ReadFrame(ctx context.Context) (Frame, error) {
	select {
	case f := <-t.frames:
		return f, nil
	default:
	}
	select {
	case f := <-t.frames:
		return f, nil
	case <-t.ended:
		select {
		case f := <-t.frames:
			return f, nil
		default:
			return Frame{}, io.EOF
		}
	case <-ctx.Done():
		return Frame{}, ctx.Err()
	}
}

// Done returns a channel that is closed when the track ends.
func (t *RemoteTrack) Done() <-chan struct{} { return t.ended }

// Stats returns the track's counters. They continue across reconnections for the same track id.
func (t *RemoteTrack) Stats() TrackStats {
	return t.counters.snapshot(t.info.ID, t.info.UID, t.info.Kind, false)
}

// push queues a frame, dropping the oldest when the queue is full. Only the track's reader calls it.
func (t *RemoteTrack) push(f Frame) {
	select {
	case t.frames <- f:
		return
	default:
	}
	select {
	case <-t.frames:
		t.counters.dropped()
	default:
	}
	select {
	case t.frames <- f:
	default:
		t.counters.dropped()
	}
}

func (t *RemoteTrack) end() { t.endOnce.Do(func() { close(t.ended) }) }
