// Package recorder implements Stoa's customer-side recorder: it joins a channel as a hidden participant with the
// Go SDK, holding the channel secret, decrypts every audio and video track, and writes standard files as they
// arrive — Opus in Ogg (RFC 7845), VP8 in IVF — optionally encrypted with age, with a manifest signed by the
// recorder's Ed25519 key. The network never sees anything but SFrame ciphertext; docs/recording.md has the trust
// model.
package recorder

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/stoa-rtc/stoa/sdk"
)

// Config configures a Recorder. Client, Dir and Key are required.
type Config struct {
	// Client says where and as whom to join, with the token and the channel secret. The recorder joins hidden
	// (the token must grant token.PrivilegeJoinHidden: token.RoleRecorder does) and subscribes to every track.
	Client sdk.Config
	// Dir is where recordings go: each in its own directory Dir/<recording id>/.
	Dir string
	// Key signs the manifest.
	Key ed25519.PrivateKey
	// AgeRecipients are X25519 age recipients ("age1..."): each file is encrypted to all of them as it is written.
	// None: files are written in the clear.
	AgeRecipients []string
	// Logger receives the recorder's logs (default: discard).
	Logger *slog.Logger
	// FlushInterval is how often files are made durable: at most this much media is lost if the recorder is
	// killed, plus, when encrypting, the last unfinished 64 KiB age chunk (default 1s).
	FlushInterval time.Duration
	// ManifestInterval is how often the manifest is rewritten while recording (default 5s).
	ManifestInterval time.Duration
	// DecryptFailureLimit is how many frames may fail to decrypt, with none decrypting, before the recorder gives
	// up: the channel secret is wrong (default 50, about a second of audio).
	DecryptFailureLimit uint64
}

// ErrDecrypt: frames arrive but none decrypts — the recorder holds another channel secret than the publishers.
var ErrDecrypt = errors.New("recorder: frames fail to decrypt: the channel secret is wrong")

// Recorder records one channel into one recording directory.
type Recorder struct {
	cfg        Config
	id         string
	dir        string
	root       *os.Root
	recipients []age.Recipient
	log        *slog.Logger
	opts       outFileOptions

	// written, if set, sees every frame written (tests).
	written func(sdk.Frame)

	mu       sync.Mutex
	errs     []error // of the track writers: they end the recording
	segments []*segment
	names    map[string]int // file name base ("<uid>-<kind>") → segments so far
	manifest Manifest       // the fields that do not change
}

// New checks cfg and creates the recording's directory.
func New(cfg Config) (*Recorder, error) {
	var errs []error
	if cfg.Dir == "" {
		errs = append(errs, errors.New("recorder: Dir is required"))
	}
	if len(cfg.Key) != ed25519.PrivateKeySize {
		errs = append(errs, errors.New("recorder: Key is required"))
	}
	var recipients []age.Recipient
	for _, s := range cfg.AgeRecipients {
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("recorder: age recipient %q: %w", s, err))
			continue
		}
		recipients = append(recipients, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = time.Second
	}
	if cfg.ManifestInterval <= 0 {
		cfg.ManifestInterval = 5 * time.Second
	}
	if cfg.DecryptFailureLimit == 0 {
		cfg.DecryptFailureLimit = 50
	}
	now := time.Now().UTC()
	var rnd [4]byte
	rand.Read(rnd[:])
	id := now.Format("20060102T150405Z") + "-" + hex.EncodeToString(rnd[:])
	dir := filepath.Join(cfg.Dir, id)
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	r := &Recorder{cfg: cfg, id: id, dir: dir, root: root, recipients: recipients, names: map[string]int{},
		log:  cfg.Logger.With("component", "recorder", "recording", id),
		opts: outFileOptions{recipients: recipients, now: time.Now}}
	r.manifest = Manifest{Version: manifestVersion, RecordingID: id, AppID: cfg.Client.AppID,
		Channel: cfg.Client.Channel, RecorderUID: cfg.Client.UID, StartedAt: now, AgeRecipients: cfg.AgeRecipients}
	return r, nil
}

// ID returns the recording id, the name of its directory.
func (r *Recorder) ID() string { return r.id }

// ManifestPath returns the path of the recording's manifest.
func (r *Recorder) ManifestPath() string { return filepath.Join(r.dir, ManifestName) }

// Run joins the channel and records until ctx ends (nil), the client is disconnected, no frame decrypts
// (ErrDecrypt) or a file cannot be written. It returns once every file is closed and the final manifest written,
// and every goroutine it started has stopped. A Recorder runs once.
func (r *Recorder) Run(ctx context.Context) error {
	defer r.root.Close()
	cc := r.cfg.Client
	cc.Hidden, cc.AutoSubscribe = true, new(true)
	if cc.Logger == nil {
		cc.Logger = r.cfg.Logger
	}
	c, err := sdk.Join(ctx, cc)
	if err != nil {
		os.Remove(r.dir) // nothing was recorded
		return fmt.Errorf("recorder: join: %w", err)
	}
	r.log.Info("recording", "channel", cc.Channel, "uid", cc.UID, "edge", c.Edge().ID, "encrypted", len(r.recipients) > 0)
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	if err := r.writeManifest(nil); err != nil {
		c.Close()
		return err
	}
	var wg sync.WaitGroup
	manifestTick := time.NewTicker(r.cfg.ManifestInterval)
	defer manifestTick.Stop()
	checkTick := time.NewTicker(r.cfg.FlushInterval)
	defer checkTick.Stop()
loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case t, ok := <-c.Tracks():
			if !ok {
				break loop
			}
			wg.Go(func() {
				if err := r.record(runCtx, t); err != nil {
					r.mu.Lock()
					r.errs = append(r.errs, err)
					r.mu.Unlock()
					stop(err)
				}
			})
		case _, ok := <-c.Data(): // data messages are not recorded
			if !ok {
				break loop
			}
		case ev, ok := <-c.Events():
			if !ok {
				break loop
			}
			if d, isD := ev.(sdk.Disconnected); isD {
				stop(fmt.Errorf("recorder: disconnected: %w", d.Err))
			}
		case <-checkTick.C:
			if st := c.Stats(); st.DecryptOK == 0 && st.DecryptFailed >= r.cfg.DecryptFailureLimit {
				stop(fmt.Errorf("%w: %d frames failed to decrypt and none decrypted", ErrDecrypt, st.DecryptFailed))
			}
		case <-manifestTick.C:
			if err := r.writeManifest(nil); err != nil {
				stop(err)
			}
		}
	}
	stop(nil)
	leaveCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	c.Leave(leaveCtx)
	cancel()
	wg.Wait()
	cause := context.Cause(runCtx)
	if errors.Is(cause, context.Canceled) || ctx.Err() != nil && errors.Is(cause, ctx.Err()) {
		cause = nil // stopped by the caller, or its deadline: the normal end
	}
	r.mu.Lock()
	if len(r.errs) > 0 && !errors.Is(cause, r.errs[0]) { // a file that failed to close after the end
		cause = errors.Join(append([]error{cause}, r.errs...)...)
	}
	r.mu.Unlock()
	end := time.Now().UTC()
	if err := r.writeManifest(&end, cause); err != nil {
		return errors.Join(cause, err)
	}
	r.log.Info("recording ended", "files", len(r.segments), "err", cause)
	return cause
}

// record writes one remote track until it ends or ctx does, flushing every FlushInterval; an error is a file
// that cannot be written.
func (r *Recorder) record(ctx context.Context, t *sdk.RemoteTrack) (err error) {
	tw := &trackWriter{r: r, info: t.Info()}
	defer func() {
		err = errors.Join(err, tw.close())
		if tw.dropped > 0 {
			r.log.Warn("frames dropped", "uid", tw.info.UID, "kind", tw.info.Kind, "late_or_invalid", tw.dropped)
		}
	}()
	lastFlush := time.Now()
	for {
		fctx, cancel := context.WithTimeout(ctx, r.cfg.FlushInterval)
		f, err := t.ReadFrame(fctx)
		cancel()
		if err == nil {
			if err := tw.write(f); err != nil {
				return err
			}
		} else if ctx.Err() != nil || errors.Is(err, io.EOF) {
			return nil
		}
		if time.Since(lastFlush) >= r.cfg.FlushInterval {
			lastFlush = time.Now()
			if err := tw.flush(); err != nil {
				return err
			}
		}
	}
}

// trackWriter writes one remote track into its segments; one goroutine owns it.
type trackWriter struct {
	r       *Recorder
	info    sdk.TrackInfo
	seg     *segment
	dropped int
}

func (tw *trackWriter) write(f sdk.Frame) error {
	if tw.seg != nil {
		err := tw.seg.write(f, time.Now())
		switch {
		case err == nil:
			tw.r.observe(f)
			return nil
		case errors.Is(err, errLate), errors.Is(err, errBadFrame):
			tw.dropped++
			return nil
		case !errors.Is(err, errDiscontinuity):
			return err
		}
		if err := tw.close(); err != nil {
			return err
		}
	}
	seg, err := tw.r.newSegment(tw.info, f)
	if errors.Is(err, errBadFrame) {
		tw.dropped++
		return nil
	}
	tw.seg = seg // nil while a video track waits for its key frame
	if seg != nil {
		tw.r.observe(f)
	}
	return err
}

func (r *Recorder) observe(f sdk.Frame) {
	if r.written != nil {
		r.written(f)
	}
}

func (tw *trackWriter) flush() error {
	if tw.seg == nil {
		return nil
	}
	return tw.seg.flush()
}

func (tw *trackWriter) close() error {
	if tw.seg == nil {
		return nil
	}
	err := tw.seg.close()
	tw.seg = nil
	if err != nil {
		return fmt.Errorf("recorder: closing a file of %s's %s: %w", tw.info.UID, tw.info.Kind, err)
	}
	return nil
}

// newSegment opens the next file of uid's track of a kind with frame f: <uid>-<kind>.<ext>, then
// <uid>-<kind>-2.<ext> and so on, never replacing a file.
func (r *Recorder) newSegment(info sdk.TrackInfo, f sdk.Frame) (*segment, error) {
	base := fileBase(info.UID) + "-" + string(info.Kind)
	ext := ".ogg"
	if info.Kind == sdk.KindVideo {
		ext = ".ivf"
	}
	if len(r.recipients) > 0 {
		ext += ".age"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		n := r.names[base] + 1
		r.names[base] = n
		name := base + ext
		if n > 1 {
			name = base + "-" + strconv.Itoa(n) + ext
		}
		seg, err := openSegment(r.root, name, File{UID: info.UID, Kind: string(info.Kind), TrackID: info.ID, Segment: n}, f, &r.opts)
		if errors.Is(err, os.ErrExist) {
			continue // a uid whose name collides with another's
		}
		if err != nil || seg == nil {
			r.names[base]-- // nothing was created
			return nil, err
		}
		r.segments = append(r.segments, seg)
		r.log.Info("file", "name", name, "uid", info.UID, "kind", info.Kind)
		return seg, nil
	}
}

// fileBase returns a uid as it appears in file names: itself when it is a safe name, otherwise "uid_" and a digest
// (the manifest maps every file to its exact uid).
func fileBase(uid string) string {
	if len(uid) <= 64 && validFileName(uid) && !strings.HasPrefix(uid, "uid_") {
		return uid
	}
	d := sha256.Sum256([]byte(uid))
	return "uid_" + hex.EncodeToString(d[:8])
}

// writeManifest writes the manifest as it stands; with end set, as the final one.
func (r *Recorder) writeManifest(end *time.Time, cause ...error) error {
	r.mu.Lock()
	m := r.manifest
	m.Files = make([]File, 0, len(r.segments))
	for _, s := range r.segments {
		m.Files = append(m.Files, s.snapshot())
	}
	r.mu.Unlock()
	if end != nil {
		m.EndedAt, m.Complete = end, true
		if err := errors.Join(cause...); err != nil {
			m.Error = err.Error()
		}
	}
	if err := writeManifest(r.root, &m, r.cfg.Key); err != nil {
		return fmt.Errorf("recorder: manifest: %w", err)
	}
	return nil
}
