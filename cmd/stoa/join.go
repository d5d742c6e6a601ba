package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	"github.com/stoa-rtc/stoa/internal/loadtest"
	"github.com/stoa-rtc/stoa/sdk"
	"github.com/stoa-rtc/stoa/sframe"
	"github.com/stoa-rtc/stoa/sframe/media"
	"github.com/stoa-rtc/stoa/token"
)

// clientFlags are the flags that every command acting as a client shares.
type clientFlags struct {
	url, appID, caFile, secretHex string
	appCert                       *secretFlag
}

// token returns tok, or without one a token built with the App Certificate for opts (its AppID is --app-id);
// --app-id defaults to a given token's.
func (cf *clientFlags) token(tok string, opts token.RTCOptions) (string, error) {
	if tok != "" {
		if cf.appID == "" {
			t, err := token.Parse(tok)
			if err != nil {
				return "", err
			}
			cf.appID = t.AppID
		}
		return tok, nil
	}
	cert, err := cf.appCert.require()
	if err != nil {
		return "", err
	}
	if cf.appID == "" {
		return "", usagef("--app-id is required to build a token")
	}
	opts.AppID = cf.appID
	return token.BuildRTC(cert, opts)
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "url", "", "entry URL of the network (stoa dev prints it)")
	fs.StringVar(&f.appID, "app-id", "", "App ID")
	f.appCert = newSecretFlag(fs, "app-cert", appCertEnv, "App Certificate, to build tokens")
	fs.StringVar(&f.secretHex, "e2ee-secret", "", "channel secret for end-to-end encryption, 64 hex digits (default: random)")
	fs.StringVar(&f.caFile, "ca", "", "PEM file of a CA (or self-signed certificate) to trust for https/wss")
}

// secret returns the channel secret: the given one, or a random one.
func (f *clientFlags) secret() (*sframe.Key, error) {
	if f.secretHex == "" {
		return media.GenerateSecret(), nil
	}
	b, err := hex.DecodeString(f.secretHex)
	if err != nil || len(b) != media.SecretSize {
		return nil, usagef("--e2ee-secret must be %d hexadecimal digits", 2*media.SecretSize)
	}
	k := sframe.NewKey(b)
	clear(b)
	return k, nil
}

func (f *clientFlags) tlsConfig() (*tls.Config, error) {
	if f.caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(f.caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca %s: no certificate found", f.caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func joinCommand() *command {
	var (
		cf                     clientFlags
		tok, channel, uid, pub string
		input, region          string
		subscribe, jsonOut     bool
		duration               time.Duration
	)
	return &command{
		name:    "join",
		summary: "join a channel from the terminal: publish, subscribe, print stats",
		usage: `stoa join --url URL (--token T | --app-id ID --app-cert CERT) --channel C --uid U [--publish audio,video,data]
          [--subscribe] [--region NAME] [--e2ee-secret HEX] [--duration 10s] [--input FILE.ogg|FILE.ivf] [--json]

Publishes synthetic audio (Opus-shaped, 50 frames/s), video (VP8-shaped, 30 frames/s) and data, or the
Opus of an Ogg file / the VP8 of an IVF file given with --input, and/or subscribes to everything in the
channel. Media is end-to-end encrypted with the channel secret: members with another secret decrypt
nothing. --region asks the dispatcher for edges of that region (default: the dispatcher chooses). Prints
live stats each second, and with --json a summary at the end:
{"frames_sent","frames_received","decrypt_ok","decrypt_failed",...,"edge","region"}.`,
		flags: func(fs *flag.FlagSet) {
			cf.register(fs)
			fs.StringVar(&tok, "token", "", "token (default: built with --app-id and --app-cert)")
			fs.StringVar(&channel, "channel", "", "channel name")
			fs.StringVar(&uid, "uid", "", "uid or user account")
			fs.StringVar(&pub, "publish", "", "comma-separated kinds to publish: audio, video, data")
			fs.BoolVar(&subscribe, "subscribe", false, "subscribe to every track of the channel")
			fs.DurationVar(&duration, "duration", 10*time.Second, "how long to stay")
			fs.StringVar(&input, "input", "", "publish this Ogg/Opus or IVF/VP8 file instead of synthetic media")
			fs.StringVar(&region, "region", "", "ask the dispatcher for edges of this region (default: the dispatcher chooses)")
			fs.BoolVar(&jsonOut, "json", false, "print a JSON summary at the end")
		},
		run: func(ctx context.Context, args []string, env *cmdEnv) error {
			if err := env.parseNoArgs(args); err != nil {
				return err
			}
			if cf.url == "" || channel == "" || uid == "" {
				return usagef("--url, --channel and --uid are required")
			}
			kinds, err := parseKinds(pub)
			if err != nil {
				return err
			}
			if region != "" {
				if err := checkRegion("--region", region); err != nil {
					return err
				}
			}
			if input != "" {
				ext := strings.ToLower(filepath.Ext(input))
				if ext != ".ogg" && ext != ".opus" && ext != ".ivf" {
					return usagef("--input must be an .ogg/.opus or .ivf file")
				}
			}
			if len(kinds) == 0 && !subscribe {
				return usagef("nothing to do: give --publish and/or --subscribe")
			}
			if tok, err = cf.token(tok, token.RTCOptions{Channel: channel, UID: uid, Expire: duration + time.Hour}); err != nil {
				return err
			}
			secret, err := cf.secret()
			if err != nil {
				return err
			}
			tlsCfg, err := cf.tlsConfig()
			if err != nil {
				return err
			}
			return runJoin(ctx, env, sdk.Config{URL: cf.url, Region: region, AppID: cf.appID, Channel: channel, UID: uid,
				Token: tok, Secret: secret, AutoSubscribe: &subscribe, TLSConfig: tlsCfg}, kinds, input, duration, jsonOut)
		},
	}
}

func parseKinds(s string) (map[sdk.Kind]bool, error) {
	kinds := map[sdk.Kind]bool{}
	for _, k := range strings.Split(s, ",") {
		switch k = strings.TrimSpace(k); k {
		case "":
		case "audio", "video", "data":
			kinds[sdk.Kind(k)] = true
		default:
			return nil, usagef("--publish: unknown kind %q (audio, video, data)", k)
		}
	}
	return kinds, nil
}

// joinSummary is the --json output of stoa join.
type joinSummary struct {
	FramesSent       uint64      `json:"frames_sent"`
	FramesReceived   uint64      `json:"frames_received"`
	DecryptOK        uint64      `json:"decrypt_ok"`
	DecryptFailed    uint64      `json:"decrypt_failed"`
	FramesIncomplete uint64      `json:"frames_incomplete"`
	Reconnects       uint64      `json:"reconnects"`
	JoinMS           float64     `json:"join_ms"`
	DurationS        float64     `json:"duration_s"`
	Edge             string      `json:"edge"`
	Region           string      `json:"region"`
	Tracks           []joinTrack `json:"tracks"`
}

// joinTrack is one track's figures in joinSummary.
type joinTrack struct {
	ID             string `json:"id"`
	UID            string `json:"uid"`
	Kind           string `json:"kind"`
	Local          bool   `json:"local"`
	FramesSent     uint64 `json:"frames_sent"`
	FramesReceived uint64 `json:"frames_received"`
	DecryptOK      uint64 `json:"decrypt_ok"`
	DecryptFailed  uint64 `json:"decrypt_failed"`
}

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func runJoin(ctx context.Context, env *cmdEnv, cfg sdk.Config, kinds map[sdk.Kind]bool, input string, duration time.Duration, jsonOut bool) error {
	// Events, tracks and stats are reported from several goroutines.
	env = &cmdEnv{fs: env.fs, stdout: env.stdout, stderr: &lockedWriter{w: env.stderr}}
	t0 := time.Now()
	c, err := sdk.Join(ctx, cfg)
	if err != nil {
		return err
	}
	joinMS := float64(time.Since(t0).Microseconds()) / 1000
	fmt.Fprintf(env.stderr, "joined %q as %q on %s (region %s) in %.0f ms\n", cfg.Channel, cfg.UID, c.Edge().ID, c.Region(), joinMS)

	// The stay (--duration) starts once the tracks are published: under load, negotiating them may take longer
	// than a short stay.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()

	// Read and discard what arrives: the SDK counts and decrypts.
	wg.Go(func() {
		for {
			select {
			case <-runCtx.Done():
				return
			case t, ok := <-c.Tracks():
				if !ok {
					return
				}
				fmt.Fprintf(env.stderr, "receiving %s from %q\n", t.Kind(), t.UID())
				wg.Go(func() {
					for {
						if _, err := t.ReadFrame(runCtx); err != nil {
							return
						}
					}
				})
			case _, ok := <-c.Data():
				if !ok {
					return
				}
			case ev, ok := <-c.Events():
				if !ok {
					return
				}
				fmt.Fprintf(env.stderr, "event: %T %+v\n", ev, ev)
			}
		}
	})
	if err := publish(ctx, runCtx, &wg, c, kinds, input); err != nil {
		c.Close()
		return err
	}
	stay := time.AfterFunc(duration, stop)
	defer stay.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-tick.C:
			st := c.Stats()
			fmt.Fprintf(env.stderr, "[%3.0fs] sent %d, received %d, decrypted %d, failed %d\n",
				time.Since(t0).Seconds(), st.FramesSent, st.FramesReceived, st.DecryptOK, st.DecryptFailed)
		case <-runCtx.Done():
			done = true
		case <-c.Done():
			done = true
		}
	}
	st := c.Stats()
	leaveCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	leaveErr := c.Leave(leaveCtx)
	if err := c.Err(); err != nil {
		leaveErr = err
	}

	sum := joinSummary{FramesSent: st.FramesSent, FramesReceived: st.FramesReceived, DecryptOK: st.DecryptOK,
		DecryptFailed: st.DecryptFailed, FramesIncomplete: st.FramesIncomplete, Reconnects: st.Reconnects,
		JoinMS: joinMS, DurationS: time.Since(t0).Seconds(), Edge: c.Edge().ID, Region: c.Region()}
	for _, ts := range st.Tracks {
		sum.Tracks = append(sum.Tracks, joinTrack{ts.TrackID, ts.UID, string(ts.Kind), ts.Local, ts.FramesSent, ts.FramesReceived, ts.DecryptOK, ts.DecryptFailed})
	}
	if jsonOut {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(sum)
	} else {
		fmt.Fprintf(env.stdout, "sent %d frames, received %d, decrypted %d, failed to decrypt %d\n",
			sum.FramesSent, sum.FramesReceived, sum.DecryptOK, sum.DecryptFailed)
	}
	if leaveErr != nil && !errors.Is(leaveErr, context.Canceled) {
		return fmt.Errorf("left the channel: %w", leaveErr)
	}
	return nil
}

// publish negotiates a track of each kind with ctx and starts its sender, which runs until run ends; it returns
// once they are running.
func publish(ctx, run context.Context, wg *sync.WaitGroup, c *sdk.Client, kinds map[sdk.Kind]bool, input string) error {
	m := loadtest.Marker{Counted: true}
	every := func(d time.Duration, send func(seq uint32)) {
		wg.Go(func() {
			t := time.NewTicker(d)
			defer t.Stop()
			for seq := uint32(0); ; seq++ {
				select {
				case <-run.Done():
					return
				case <-t.C:
					send(seq)
				}
			}
		})
	}
	if kinds[sdk.KindAudio] {
		t, err := c.PublishAudio(ctx)
		if err != nil {
			return err
		}
		if strings.HasSuffix(input, ".ogg") || strings.HasSuffix(input, ".opus") {
			wg.Go(func() { playOgg(run, input, t) })
		} else {
			every(loadtest.AudioInterval, func(seq uint32) {
				m := m
				m.Seq = seq
				t.WriteFrame(loadtest.AudioFrame(m), loadtest.AudioInterval)
			})
		}
	}
	if kinds[sdk.KindVideo] {
		t, err := c.PublishVideo(ctx)
		if err != nil {
			return err
		}
		if strings.HasSuffix(input, ".ivf") {
			wg.Go(func() { playIVF(run, input, t) })
		} else {
			every(loadtest.VideoInterval, func(seq uint32) {
				m := m
				m.Seq = seq
				key := seq%loadtest.VideoKeyEvery == 0
				select {
				case <-t.KeyframeRequests():
					key = true
				default:
				}
				t.WriteFrame(loadtest.VideoFrame(m, key), loadtest.VideoInterval)
			})
		}
	}
	if kinds[sdk.KindData] {
		t, err := c.PublishData(ctx)
		if err != nil {
			return err
		}
		every(time.Second/10, func(seq uint32) {
			m := m
			m.Seq = seq
			t.Send(loadtest.DataMessage(m))
		})
	}
	return nil
}

// playOgg publishes the Opus packets of an Ogg file in real time, looping until ctx ends.
func playOgg(ctx context.Context, path string, t *sdk.LocalTrack) {
	for ctx.Err() == nil {
		f, err := os.Open(path)
		if err != nil {
			return
		}
		ogg, _, err := oggreader.NewWith(f)
		if err != nil {
			f.Close()
			return
		}
		var last uint64
		tick := time.NewTicker(20 * time.Millisecond)
		for ctx.Err() == nil {
			page, hdr, err := ogg.ParseNextPage()
			if err != nil {
				break
			}
			d := time.Duration(hdr.GranulePosition-last) * time.Second / 48000
			last = hdr.GranulePosition
			<-tick.C
			t.WriteFrame(page, d)
		}
		tick.Stop()
		f.Close()
	}
}

// playIVF publishes the VP8 frames of an IVF file in real time, looping until ctx ends.
func playIVF(ctx context.Context, path string, t *sdk.LocalTrack) {
	for ctx.Err() == nil {
		f, err := os.Open(path)
		if err != nil {
			return
		}
		ivf, hdr, err := ivfreader.NewWith(f)
		if err != nil || hdr.TimebaseDenominator == 0 {
			f.Close()
			return
		}
		d := time.Duration(hdr.TimebaseNumerator) * time.Second / time.Duration(hdr.TimebaseDenominator)
		tick := time.NewTicker(d)
		for ctx.Err() == nil {
			frame, _, err := ivf.ParseNextFrame()
			if errors.Is(err, io.EOF) || err != nil {
				break
			}
			<-tick.C
			t.WriteFrame(frame, d)
		}
		tick.Stop()
		f.Close()
	}
}
