package recorder

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/stoa-rtc/stoa/sdk"
)

// maxGap is the longest pause a segment bridges (with concealed frames for audio, a timestamp jump for video);
// after a longer one, or a timestamp that jumps back, the track goes on in a new segment.
const maxGap = 10 * time.Minute

// Frames a segment does not take.
var (
	// errDiscontinuity: the frame belongs in a new segment (a timestamp jump, a new video resolution).
	errDiscontinuity = errors.New("recorder: discontinuity")
	// errLate: the frame is older than one already written; it is dropped.
	errLate = errors.New("recorder: late frame")
	// errBadFrame: the frame is not valid for its codec; it is dropped.
	errBadFrame = errors.New("recorder: invalid frame")
)

// segment is one output file of one track: a continuous stretch of its frames. One goroutine writes it; mu
// guards entry, which the manifest writer reads.
type segment struct {
	file *outFile
	kind sdk.Kind
	ogg  *oggWriter // audio

	clockRate int64
	lastTS    uint32
	pos       int64  // the last frame's timestamp, counted from the segment's first frame
	samples   int64  // audio: samples written, concealment included
	last      []byte // audio: the last packet, whose configuration concealment repeats

	mu    sync.Mutex
	entry File
}

// openSegment creates the file of a segment that starts with frame f: audio at once, video at a key frame (it
// returns nil, nil for a video frame that is not one).
func openSegment(root *os.Root, name string, info File, f sdk.Frame, o *outFileOptions) (*segment, error) {
	s := &segment{kind: f.Kind, lastTS: f.Timestamp}
	switch f.Kind {
	case sdk.KindAudio:
		if opusSamples(f.Data) == 0 {
			return nil, errBadFrame
		}
		info.Codec, info.ClockRate, info.Channels = "opus", 48000, opusChannels(f.Data)
	case sdk.KindVideo:
		w, h, ok := vp8Keyframe(f.Data)
		if !ok {
			return nil, nil
		}
		info.Codec, info.ClockRate, info.Width, info.Height = "vp8", videoClockRate, w, h
	default:
		return nil, errBadFrame
	}
	file, err := createFile(root, name, o.recipients)
	if err != nil {
		return nil, err
	}
	s.file, s.clockRate = file, int64(info.ClockRate)
	if f.Kind == sdk.KindAudio {
		var serial [4]byte
		rand.Read(serial[:])
		s.ogg, err = newOggWriter(file, binary.LittleEndian.Uint32(serial[:]), info.Channels)
	} else {
		err = writeIVFHeader(file, info.Width, info.Height)
	}
	if err != nil {
		file.close(nil)
		return nil, err
	}
	info.Name, info.Encrypted, info.FirstTimestamp, info.FirstAt = name, file.encrypted(), f.Timestamp, o.now()
	info.Size, info.SHA256 = file.size(), file.digest()
	s.entry = info
	if err := s.put(f, info.FirstAt); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// outFileOptions are what every segment of a recording shares.
type outFileOptions struct {
	recipients []age.Recipient
	now        func() time.Time
}

// write adds frame f, bridging a gap since the previous one; errDiscontinuity asks for a new segment.
func (s *segment) write(f sdk.Frame, now time.Time) error {
	d := int64(int32(f.Timestamp - s.lastTS))
	switch {
	case d > int64(maxGap.Seconds())*s.clockRate || d < -s.clockRate:
		return errDiscontinuity
	case d <= 0:
		return errLate
	}
	if s.kind == sdk.KindVideo {
		if w, h, ok := vp8Keyframe(f.Data); ok && (w != s.entry.Width || h != s.entry.Height) {
			return errDiscontinuity
		}
	} else if opusSamples(f.Data) == 0 {
		return errBadFrame
	}
	s.pos += d
	s.lastTS = f.Timestamp
	return s.put(f, now)
}

// put writes f at s.pos.
func (s *segment) put(f sdk.Frame, now time.Time) error {
	var concealed int64
	var err error
	if s.kind == sdk.KindAudio {
		if s.last != nil {
			c := opusConcealment(s.last)
			n := int64(opusSamples(c))
			for ; s.pos-s.samples >= n && err == nil; concealed++ {
				s.samples += n
				err = s.ogg.writePacket(c, s.samples+opusPreSkip)
			}
		}
		s.samples += int64(opusSamples(f.Data))
		if err == nil {
			err = s.ogg.writePacket(f.Data, s.samples+opusPreSkip)
		}
		s.last = append(s.last[:0], f.Data[0])
	} else {
		err = writeIVFFrame(s.file, f.Data, uint64(s.pos))
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.entry.Frames++
	s.entry.Concealed += concealed
	s.entry.LastTimestamp, s.entry.LastAt = f.Timestamp, now
	s.mu.Unlock()
	return nil
}

// flush writes the pending Ogg page, makes the file durable and updates the manifest's size and digest.
func (s *segment) flush() error {
	var err error
	if s.ogg != nil {
		err = s.ogg.flush()
	}
	err = errors.Join(err, s.file.sync())
	s.mu.Lock()
	s.entry.Size, s.entry.SHA256 = s.file.size(), s.file.digest()
	s.mu.Unlock()
	return err
}

// close ends the file: the last Ogg page, or a plain IVF file's frame count.
func (s *segment) close() error {
	var err error
	var fix func(*os.File) error
	if s.ogg != nil {
		err = s.ogg.close()
	} else {
		s.mu.Lock()
		frames := uint32(s.entry.Frames)
		s.mu.Unlock()
		fix = func(f *os.File) error {
			_, err := f.WriteAt(binary.LittleEndian.AppendUint32(nil, frames), ivfFrameCountAt)
			return err
		}
	}
	err = errors.Join(err, s.file.close(fix))
	s.mu.Lock()
	s.entry.Size, s.entry.SHA256, s.entry.Closed = s.file.size(), s.file.digest(), err == nil
	s.mu.Unlock()
	return err
}

// snapshot returns the manifest's row for the segment.
func (s *segment) snapshot() File {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entry
}
