// Package loadtest is Stoa's own benchmark: it runs many SDK clients in one process against a network, with
// publishers that send synthetic, end-to-end encrypted frames carrying a send time and a sequence number, and
// subscribers that decrypt and check every frame. Figures are trustworthy because every frame is accounted for:
//
//   - Publishers start sending at once, but frames count only from the moment every subscriber receives every
//     track of its channel until the measured duration ends ("counted" frames carry a flag inside the ciphertext).
//   - frames_expected is, for every subscriber, each counted frame of its channel's publishers: all subscribers
//     are subscribed for the whole measured phase.
//   - A received frame counts once (duplicates are reported apart), only if it decrypts and its content checks
//     byte for byte; latency is receive time minus the send time written by the publisher, on the same clock.
package loadtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stoa-rtc/stoa/sdk"
	"github.com/stoa-rtc/stoa/sframe"
	"github.com/stoa-rtc/stoa/sframe/media"
	"github.com/stoa-rtc/stoa/token"
)

// Config describes a load test.
type Config struct {
	URL, AppID, AppCert string
	// Channel names the channel, or the name prefix when Channels > 1 ("load-0", "load-1", ...).
	Channel  string
	Channels int
	// Publishers and Subscribers per channel.
	Publishers, Subscribers int
	// Regions, if set, spreads each channel's participants over these regions: participant i of a channel
	// (publishers first, then subscribers) asks the dispatcher for region Regions[i % len(Regions)]. Empty: no
	// client names a region.
	Regions            []string
	Audio, Video, Data bool // none set: audio
	Duration           time.Duration
	// Secret is the channel secret (nil: a random one for the run).
	Secret    *sframe.Key
	TLSConfig *tls.Config
	// ServerPID, if not 0, is the process id of the server under test on this machine (Linux): its CPU time and
	// resident memory are sampled during the measured phase (see Result.ServerCPUPercent).
	ServerPID int
	// Progress receives a line a second while the test runs (nil: none).
	Progress io.Writer
	Logger   *slog.Logger
	// JoinConcurrency bounds simultaneous joins (default 8); ReadyTimeout bounds the wait for every subscriber to
	// receive every track (default 30s); Drain bounds the wait for frames in flight after the last one (default 3s).
	JoinConcurrency int
	ReadyTimeout    time.Duration
	Drain           time.Duration
}

// Result is what a run measured.
type Result struct {
	Channels    int     `json:"channels"`
	Publishers  int     `json:"publishers"`
	Subscribers int     `json:"subscribers"`
	DurationS   float64 `json:"duration_s"`

	FramesSent      uint64  `json:"frames_sent"`
	FramesExpected  uint64  `json:"frames_expected"`
	FramesReceived  uint64  `json:"frames_received"`
	Delivery        float64 `json:"delivery"`
	DecryptFailures uint64  `json:"decrypt_failures"`
	Corrupt         uint64  `json:"corrupt"`
	Duplicates      uint64  `json:"duplicates"`
	Incomplete      uint64  `json:"incomplete"`
	Reconnects      uint64  `json:"reconnects"`
	// Edges is how many distinct edges the clients were connected to at the end; Regions is Config.Regions
	// (empty when the clients named none).
	Edges   int      `json:"edges"`
	Regions []string `json:"regions"`

	JoinMS    Percentiles `json:"join_ms"`
	LatencyMS Percentiles `json:"latency_ms"`

	// CPUSeconds is this process's CPU time (user + system) during the measured phase; MaxRSSMB its peak memory.
	CPUSeconds float64 `json:"cpu_seconds"`
	MaxRSSMB   float64 `json:"max_rss_mb"`

	// Server figures, with Config.ServerPID only (omitted otherwise). ServerCPUPercent is the median of the
	// server's per-second CPU use (user + system, % of one core) during the measured phase, its steady state;
	// ServerCPUSeconds its CPU time over the measured phase, and ServerCPUPer1kFrames that
	// time per 1000 frames received; ServerRSSMB its peak resident memory, sampled each second.
	ServerCPUPercent     float64 `json:"server_cpu_percent,omitempty"`
	ServerCPUSeconds     float64 `json:"server_cpu_seconds,omitempty"`
	ServerCPUPer1kFrames float64 `json:"server_cpu_s_per_1k_frames,omitempty"`
	ServerRSSMB          float64 `json:"server_rss_mb,omitempty"`
}

func (c *Config) defaults() error {
	if c.URL == "" || c.AppID == "" || c.AppCert == "" {
		return errors.New("loadtest: URL, AppID and AppCert are required")
	}
	if c.Channel == "" {
		c.Channel = "load"
	}
	c.Channels = max(c.Channels, 1)
	if c.Publishers < 0 || c.Subscribers < 0 || c.Publishers+c.Subscribers == 0 {
		return errors.New("loadtest: need at least one publisher or subscriber")
	}
	if !c.Audio && !c.Video && !c.Data {
		c.Audio = true
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Secret == nil {
		c.Secret = media.GenerateSecret()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.JoinConcurrency <= 0 {
		c.JoinConcurrency = 8
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 30 * time.Second
	}
	if c.Drain <= 0 {
		c.Drain = 3 * time.Second
	}
	return nil
}

// run is the state of one load test.
type run struct {
	cfg       Config
	start     time.Time
	measuring atomic.Bool
	stop      chan struct{} // closed when publishers stop sending

	mu        sync.Mutex
	clients   []*sdk.Client
	joinMS    []float64
	latencyMS []float64

	sent       []atomic.Uint64 // counted frames sent, per channel
	received   atomic.Uint64
	corrupt    atomic.Uint64
	duplicates atomic.Uint64
	ready      atomic.Int64 // subscribers that receive every track
	wg         sync.WaitGroup
}

func (r *run) now() int64 { return time.Since(r.start).Nanoseconds() }

// tracksPerPublisher is how many tracks each subscriber must receive from each publisher.
func (r *run) tracksPerPublisher() int {
	n := 0
	for _, on := range []bool{r.cfg.Audio, r.cfg.Video, r.cfg.Data} {
		if on {
			n++
		}
	}
	return n
}

// Run runs a load test and returns its figures. Cancelling ctx ends the measured phase early.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	r := &run{cfg: cfg, start: time.Now(), stop: make(chan struct{}), sent: make([]atomic.Uint64, cfg.Channels)}
	defer r.closeAll()

	r.progressf("joining %d subscribers and %d publishers in %d channel(s)\n",
		cfg.Subscribers*cfg.Channels, cfg.Publishers*cfg.Channels, cfg.Channels)
	if err := r.joinAll(ctx); err != nil {
		close(r.stop)
		return Result{}, err
	}
	// Wait until every subscriber receives every track of its channel.
	want := int64(cfg.Subscribers * cfg.Channels)
	if cfg.Publishers > 0 {
		deadline := time.Now().Add(cfg.ReadyTimeout)
		for r.ready.Load() < want {
			if time.Now().After(deadline) || ctx.Err() != nil {
				close(r.stop)
				return Result{}, fmt.Errorf("loadtest: only %d of %d subscribers received every track within %s", r.ready.Load(), want, cfg.ReadyTimeout)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	var server *serverMeter
	if cfg.ServerPID != 0 {
		var err error
		if server, err = newServerMeter(cfg.ServerPID); err != nil {
			close(r.stop)
			return Result{}, err
		}
	}
	cpu0 := cpuTime()
	r.measuring.Store(true)
	measureStart := time.Now()
	r.progressf("measuring for %s\n", cfg.Duration)
	tick := time.NewTicker(time.Second)
	end := time.After(cfg.Duration)
loop:
	for {
		select {
		case <-tick.C:
			if server != nil {
				server.sample()
			}
			r.progressf("[%3.0fs] %s\n", time.Since(measureStart).Seconds(), r.progressLine())
		case <-end:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	tick.Stop()
	if server != nil {
		server.sample()
	}
	r.measuring.Store(false)
	measured := time.Since(measureStart)

	// Let frames in flight arrive: wait until nothing new arrives for 500 ms, at most Drain.
	drainEnd := time.Now().Add(cfg.Drain)
	last, lastChange := r.received.Load(), time.Now()
	for time.Now().Before(drainEnd) && time.Since(lastChange) < 500*time.Millisecond {
		time.Sleep(50 * time.Millisecond)
		if n := r.received.Load(); n != last {
			last, lastChange = n, time.Now()
		}
	}
	cpu := cpuTime() - cpu0
	close(r.stop)

	res := Result{Channels: cfg.Channels, Publishers: cfg.Publishers, Subscribers: cfg.Subscribers,
		DurationS: round3(measured.Seconds()), CPUSeconds: round3(cpu.Seconds()), MaxRSSMB: maxRSSMB(),
		Regions: append([]string{}, cfg.Regions...)}
	for ch := range r.sent {
		n := r.sent[ch].Load()
		res.FramesSent += n
		res.FramesExpected += n * uint64(cfg.Subscribers)
	}
	res.FramesReceived = r.received.Load()
	res.Corrupt, res.Duplicates = r.corrupt.Load(), r.duplicates.Load()
	if res.FramesExpected > 0 {
		res.Delivery = float64(res.FramesReceived) / float64(res.FramesExpected)
	}
	r.mu.Lock()
	edges := map[sdk.Edge]bool{}
	for _, c := range r.clients {
		st := c.Stats()
		res.DecryptFailures += st.DecryptFailed
		res.Incomplete += st.FramesIncomplete
		res.Reconnects += st.Reconnects
		edges[c.Edge()] = true
	}
	res.Edges = len(edges)
	if server != nil {
		server.result(&res)
	}
	res.JoinMS = percentiles(r.joinMS)
	res.LatencyMS = percentiles(r.latencyMS)
	r.mu.Unlock()
	return res, nil
}

func (r *run) progressf(format string, a ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, format, a...)
	}
}

func (r *run) progressLine() string {
	var sent uint64
	for ch := range r.sent {
		sent += r.sent[ch].Load() * uint64(r.cfg.Subscribers)
	}
	got := r.received.Load()
	pct := 100.0
	if sent > 0 {
		pct = 100 * float64(got) / float64(sent)
	}
	r.mu.Lock()
	lat := percentiles(append([]float64(nil), r.latencyMS...))
	var failed uint64
	for _, c := range r.clients {
		failed += c.Stats().DecryptFailed
	}
	r.mu.Unlock()
	return fmt.Sprintf("received %d of %d expected (%.2f%%), latency p50 %.1f ms p99 %.1f ms, decrypt failures %d",
		got, sent, pct, lat.P50, lat.P99, failed)
}

// joinAll joins every subscriber, then every publisher, JoinConcurrency at a time: subscribers are in their
// channels before media starts.
func (r *run) joinAll(ctx context.Context) error {
	for _, pub := range []bool{false, true} {
		n := r.cfg.Subscribers
		if pub {
			n = r.cfg.Publishers
		}
		sem := make(chan struct{}, r.cfg.JoinConcurrency)
		errs := make(chan error, n*r.cfg.Channels)
		var wg sync.WaitGroup
		for ch := range r.cfg.Channels {
			for i := range n {
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					errs <- r.join(ctx, ch, i, pub)
				})
			}
		}
		wg.Wait()
		close(errs)
		var failed []error
		for err := range errs {
			if err != nil {
				failed = append(failed, err)
			}
		}
		if len(failed) > 0 {
			return fmt.Errorf("loadtest: %d of %d clients failed to join; first: %w", len(failed), n*r.cfg.Channels, failed[0])
		}
	}
	return nil
}

func (r *run) channelName(ch int) string {
	if r.cfg.Channels == 1 {
		return r.cfg.Channel
	}
	return fmt.Sprintf("%s-%d", r.cfg.Channel, ch)
}

// region is the region that the idx-th publisher or subscriber of a channel asks for: participants are numbered
// publishers first, and take Config.Regions in turn.
func (r *run) region(idx int, pub bool) string {
	if len(r.cfg.Regions) == 0 {
		return ""
	}
	if !pub {
		idx += r.cfg.Publishers
	}
	return r.cfg.Regions[idx%len(r.cfg.Regions)]
}

func (r *run) join(ctx context.Context, ch, idx int, pub bool) error {
	uid := fmt.Sprintf("sub-%d-%d", ch, idx)
	role := token.RoleSubscriber
	if pub {
		uid, role = fmt.Sprintf("pub-%d-%d", ch, idx), token.RolePublisher
	}
	channel := r.channelName(ch)
	tok, err := token.BuildRTC(r.cfg.AppCert, token.RTCOptions{AppID: r.cfg.AppID, Channel: channel, UID: uid,
		Role: role, Expire: r.cfg.Duration + r.cfg.ReadyTimeout + 10*time.Minute})
	if err != nil {
		return err
	}
	autoSubscribe := !pub
	t0 := time.Now()
	c, err := sdk.Join(ctx, sdk.Config{URL: r.cfg.URL, Region: r.region(idx, pub), AppID: r.cfg.AppID, Channel: channel,
		UID: uid, Token: tok, Secret: r.cfg.Secret, AutoSubscribe: &autoSubscribe, TLSConfig: r.cfg.TLSConfig,
		Logger: r.cfg.Logger})
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.clients = append(r.clients, c)
	r.joinMS = append(r.joinMS, float64(time.Since(t0).Microseconds())/1000)
	r.mu.Unlock()
	if pub {
		return r.startPublisher(ctx, c, ch, idx)
	}
	r.startSubscriber(c, ch)
	return nil
}

func (r *run) startPublisher(ctx context.Context, c *sdk.Client, ch, idx int) error {
	m := Marker{Channel: uint16(ch), Publisher: uint16(idx)}
	if r.cfg.Audio {
		t, err := c.PublishAudio(ctx)
		if err != nil {
			return err
		}
		r.goSend(AudioInterval, ch, func(seq uint32) error {
			m := m
			m.Seq, m.Sent, m.Counted = seq, r.now(), r.measuring.Load()
			return r.count(ch, m, t.WriteFrame(AudioFrame(m), AudioInterval))
		})
	}
	if r.cfg.Video {
		t, err := c.PublishVideo(ctx)
		if err != nil {
			return err
		}
		r.goSend(VideoInterval, ch, func(seq uint32) error {
			m := m
			m.Seq, m.Sent, m.Counted = seq, r.now(), r.measuring.Load()
			key := seq%VideoKeyEvery == 0
			select {
			case <-t.KeyframeRequests():
				key = true
			default:
			}
			return r.count(ch, m, t.WriteFrame(VideoFrame(m, key), VideoInterval))
		})
	}
	if r.cfg.Data {
		t, err := c.PublishData(ctx)
		if err != nil {
			return err
		}
		r.goSend(VideoInterval, ch, func(seq uint32) error {
			m := m
			m.Seq, m.Sent, m.Counted = seq, r.now(), r.measuring.Load()
			return r.count(ch, m, t.Send(DataMessage(m)))
		})
	}
	return nil
}

// count records a counted frame that was sent.
func (r *run) count(ch int, m Marker, err error) error {
	if err == nil && m.Counted {
		r.sent[ch].Add(1)
	}
	return err
}

// goSend calls send with sequence numbers 0, 1, ... every interval until the run stops.
func (r *run) goSend(interval time.Duration, ch int, send func(seq uint32) error) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for seq := uint32(0); ; seq++ {
			select {
			case <-r.stop:
				return
			case <-t.C:
			}
			if err := send(seq); err != nil {
				r.cfg.Logger.Debug("send", "err", err)
			}
		}
	}()
}

// startSubscriber reads every track and data message the client receives.
func (r *run) startSubscriber(c *sdk.Client, ch int) {
	want := r.cfg.Publishers * r.tracksPerPublisher()
	var got atomic.Int64
	arrived := func() {
		if int(got.Add(1)) == want {
			r.ready.Add(1)
		}
	}
	if want == 0 {
		r.ready.Add(1)
	}
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		for {
			select {
			case <-r.stop:
				return
			case t, ok := <-c.Tracks():
				if !ok {
					return
				}
				arrived()
				r.wg.Add(1)
				go func() {
					defer r.wg.Done()
					r.readTrack(t, ch)
				}()
			}
		}
	}()
	go func() {
		defer r.wg.Done()
		seen := map[uint16]*seqSet{}
		first := map[string]bool{}
		for {
			select {
			case <-r.stop:
				return
			case d, ok := <-c.Data():
				if !ok {
					return
				}
				if !first[d.TrackID] {
					first[d.TrackID] = true
					arrived()
				}
				r.check(d.Data, 0, ch, seen)
			}
		}
	}()
}

func (r *run) readTrack(t *sdk.RemoteTrack, ch int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	seen := map[uint16]*seqSet{}
	for {
		f, err := t.ReadFrame(ctx)
		if err != nil {
			return
		}
		header := 1
		if f.Kind == sdk.KindVideo {
			header = VideoHeaderLen(f.Data)
		}
		r.check(f.Data, header, ch, seen)
	}
}

// check verifies one decrypted frame and records it.
func (r *run) check(frame []byte, header, ch int, seen map[uint16]*seqSet) {
	m, err := ParseFrame(frame, header)
	if err != nil || int(m.Channel) != ch {
		r.corrupt.Add(1) // altered, or delivered to the wrong channel
		return
	}
	if !m.Counted {
		return
	}
	s := seen[m.Publisher]
	if s == nil {
		s = &seqSet{}
		seen[m.Publisher] = s
	}
	if !s.add(m.Seq) {
		r.duplicates.Add(1)
		return
	}
	r.received.Add(1)
	lat := float64(r.now()-m.Sent) / 1e6
	r.mu.Lock()
	r.latencyMS = append(r.latencyMS, lat)
	r.mu.Unlock()
}

func (r *run) closeAll() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.mu.Lock()
	clients := r.clients
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c.Leave(ctx)
		})
	}
	wg.Wait()
	r.wg.Wait()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func maxRSSMB() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return round3(float64(ru.Maxrss) / 1024) // kilobytes on Linux
}
