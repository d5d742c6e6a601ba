package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/stoa-rtc/stoa/internal/loadtest"
)

func loadtestCommand() *command {
	var (
		cf                                clientFlags
		channel, regions                  string
		channels, publishers, subscribers int
		serverPID                         int
		audio, video, data, jsonOut       bool
		duration                          time.Duration
	)
	return &command{
		name:    "loadtest",
		summary: "measure a network: many clients in one process, every frame checked",
		usage: `stoa loadtest --url URL --app-id ID --app-cert CERT [--channel NAME] [--channels 1] [--publishers 1]
              [--subscribers 10] [--audio] [--video] [--data] [--duration 10s] [--regions eu,us]
              [--e2ee-secret HEX] [--server-pid PID] [--json]

Publishers send synthetic end-to-end encrypted frames that carry a send time and a sequence number:
Opus-shaped audio (120 B, 50/s) and VP8-shaped video (1.8 kB, 30/s, a 9 kB key frame every 2 s), both
unless --audio, --video or --data picks the kinds;
subscribers decrypt and check every one. Counting starts once every subscriber receives every track and
ends after --duration; frames_expected counts, for every subscriber, each frame published meanwhile.
--regions spreads each channel's participants over regions in turn (publishers first: participant i asks
for region i mod the list). --server-pid samples that process (the server under test, on this Linux
machine) from /proc during the measured phase. Prints progress each second and a summary; --json prints
{"frames_sent","frames_expected","frames_received","decrypt_failures","join_ms":{...},"latency_ms":{...},
"edges","regions",...}: edges counts the distinct edges the clients ended on, regions is --regions ([] without);
with --server-pid also "server_cpu_percent" (median of its per-second CPU use, % of one core),
"server_cpu_seconds", "server_cpu_s_per_1k_frames" (its CPU seconds per 1000 frames received) and
"server_rss_mb" (its peak resident memory).`,
		flags: func(fs *flag.FlagSet) {
			cf.register(fs)
			fs.StringVar(&channel, "channel", "load", "channel name, or name prefix with --channels > 1")
			fs.IntVar(&channels, "channels", 1, "number of channels")
			fs.IntVar(&publishers, "publishers", 1, "publishers per channel")
			fs.IntVar(&subscribers, "subscribers", 10, "subscribers per channel")
			fs.BoolVar(&audio, "audio", false, "publish audio (with --video, the default if no kind is given)")
			fs.BoolVar(&video, "video", false, "publish video (with --audio, the default if no kind is given)")
			fs.BoolVar(&data, "data", false, "publish data messages")
			fs.DurationVar(&duration, "duration", 10*time.Second, "measured duration")
			fs.BoolVar(&jsonOut, "json", false, "print the summary as JSON")
			fs.IntVar(&serverPID, "server-pid", 0, "process id of the server under test on this machine: report its CPU and memory (Linux)")
			fs.StringVar(&regions, "regions", "", "regions that each channel's participants ask for in turn, comma-separated (default: none, the dispatcher chooses)")
		},
		run: func(ctx context.Context, args []string, env *cmdEnv) error {
			if err := env.parseNoArgs(args); err != nil {
				return err
			}
			cert, err := cf.appCert.require()
			if err != nil {
				return err
			}
			if cf.url == "" || cf.appID == "" {
				return usagef("--url and --app-id are required")
			}
			if channels < 1 || publishers < 0 || subscribers < 0 || duration <= 0 || serverPID < 0 {
				return usagef("--channels must be at least 1, counts and --server-pid not negative, --duration positive")
			}
			if !audio && !video && !data {
				audio, video = true, true // the workload of the published figures (docs/running.md)
			}
			regionList, err := parseRegionList("--regions", regions)
			if err != nil {
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
			res, err := loadtest.Run(ctx, loadtest.Config{URL: cf.url, AppID: cf.appID, AppCert: cert, Channel: channel,
				Channels: channels, Publishers: publishers, Subscribers: subscribers, Regions: regionList, Audio: audio, Video: video, Data: data,
				Duration: duration, Secret: secret, TLSConfig: tlsCfg, ServerPID: serverPID, Progress: env.stderr})
			if err != nil {
				return err
			}
			if jsonOut {
				enc := json.NewEncoder(env.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			fmt.Fprintf(env.stdout, "delivered %d of %d expected frames (%.3f%%), %d decrypt failures, %d corrupt\n",
				res.FramesReceived, res.FramesExpected, 100*res.Delivery, res.DecryptFailures, res.Corrupt)
			fmt.Fprintf(env.stdout, "join ms p50 %.1f p95 %.1f max %.1f; latency ms p50 %.2f p95 %.2f p99 %.2f max %.2f\n",
				res.JoinMS.P50, res.JoinMS.P95, res.JoinMS.Max, res.LatencyMS.P50, res.LatencyMS.P95, res.LatencyMS.P99, res.LatencyMS.Max)
			fmt.Fprintf(env.stdout, "cpu %.2f s over %.1f s, peak memory %.0f MB\n", res.CPUSeconds, res.DurationS, res.MaxRSSMB)
			fmt.Fprintf(env.stdout, "clients ended on %d edge(s)\n", res.Edges)
			if serverPID != 0 {
				fmt.Fprintf(env.stdout, "server cpu %.1f%% of a core (median per second), %.3f s per 1000 frames, peak memory %.0f MB\n",
					res.ServerCPUPercent, res.ServerCPUPer1kFrames, res.ServerRSSMB)
			}
			return nil
		},
	}
}
