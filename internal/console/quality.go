package console

// Quality reports (console issue, items 5 and 6): the edges' "quality" events (internal/edge/quality.go) are
// summarised per event into quality_reports, for analytics, and kept as a media server log row with a short
// human-readable detail. Values are validated: loss is clamped to [0, 1], jitter and bitrate must be finite and
// not negative (and are capped), a join time must be positive; anything else makes the event malformed.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/stoa-rtc/stoa/internal/cluster"
)

// Limits of the values accepted from a quality event.
const (
	maxQualityTracks = 1024
	maxJitterMs      = 60_000     // a minute: anything above is clamped
	maxBitrateKbps   = 10_000_000 // 10 Gbit/s
	maxJoinMs        = 3_600_000  // an hour
	maxLogDetail     = 256
)

// qualityTrack is the JSON of internal/edge.TrackQuality.
type qualityTrack struct {
	TrackID     string  `json:"track_id"`
	Kind        string  `json:"kind"`
	Direction   string  `json:"direction"`
	Packets     uint64  `json:"packets"`
	Lost        uint64  `json:"lost"`
	Loss        float64 `json:"loss"`
	JitterMs    float64 `json:"jitter_ms"`
	BitrateKbps float64 `json:"bitrate_kbps"`
}

// qualityEvent is the JSON of an internal/edge.Event of type "quality", the fields used.
type qualityEvent struct {
	edgeEvent
	JoinMs     int64          `json:"join_ms"`
	IntervalMs int64          `json:"interval_ms"`
	Final      bool           `json:"final"`
	Tracks     []qualityTrack `json:"tracks"`
}

// qualityRow is one row of quality_reports.
type qualityRow struct {
	intervalMs              int64
	upPackets, downPackets  int64
	loss, jitterMs, bitrate float64
	joinMs                  sql.NullInt64
}

// decodeQualityEvent validates a quality event and summarises it: the log entry (with its detail) and the row.
func decodeQualityEvent(ev cluster.Event) (logEntry, qualityRow, error) {
	var x qualityEvent
	var row qualityRow
	if err := json.Unmarshal(ev.Data, &x); err != nil {
		return logEntry{}, row, err
	}
	if x.Type != ev.Type {
		return logEntry{}, row, errors.New("type differs from the subject's")
	}
	e := logEntry{Time: x.Time, Type: x.Type, AppID: clean(x.AppID, maxLogField), Channel: clean(x.Channel, maxLogField),
		UID: clean(x.UID, maxLogField), Edge: clean(x.Edge, maxLogField), Region: clean(x.Region, maxLogField),
		Session: clean(x.Session, maxLogField)}
	if e.AppID == "" {
		return e, row, errors.New("no app_id")
	}
	if e.Time.IsZero() {
		e.Time = ev.Time
	}
	if e.Time.IsZero() {
		return e, row, errors.New("no time")
	}
	if len(x.Tracks) > maxQualityTracks {
		return e, row, fmt.Errorf("%d tracks", len(x.Tracks))
	}
	if x.JoinMs < 0 || x.JoinMs > maxJoinMs || x.IntervalMs < 0 {
		return e, row, errors.New("join_ms or interval_ms out of range")
	}
	row.intervalMs = min(x.IntervalMs, int64(analyticsStaleAfter/time.Millisecond))
	if x.JoinMs > 0 {
		row.joinMs = sql.NullInt64{Int64: x.JoinMs, Valid: true}
	}
	var lost, expected uint64
	var ups, downs int
	for i := range x.Tracks {
		q := &x.Tracks[i]
		if !finite(q.Loss) || !finite(q.JitterMs) || !finite(q.BitrateKbps) || q.JitterMs < 0 || q.BitrateKbps < 0 {
			return e, row, errors.New("a track's figures are negative or not finite")
		}
		if q.Packets > 1<<40 || q.Lost > 1<<40 {
			return e, row, errors.New("a track's packet counts are out of range")
		}
		q.Loss = math.Min(math.Max(q.Loss, 0), 1)
		q.JitterMs = math.Min(q.JitterMs, maxJitterMs)
		q.BitrateKbps = math.Min(q.BitrateKbps, maxBitrateKbps)
		switch q.Direction {
		case "up":
			ups++
			row.upPackets += int64(q.Packets)
			row.bitrate += q.BitrateKbps
		case "down":
			downs++
			row.downPackets += int64(q.Packets)
		default:
			continue // a direction this console does not know
		}
		lost += q.Lost
		expected += q.Packets + q.Lost
		row.jitterMs = math.Max(row.jitterMs, q.JitterMs)
	}
	if expected > 0 {
		row.loss = float64(lost) / float64(expected)
	}
	row.bitrate = math.Min(row.bitrate, maxBitrateKbps)

	var d []string
	if ups+downs > 0 {
		d = append(d, fmt.Sprintf("loss %.1f%% jitter %.1f ms %.0f kbps (%d up, %d down)", row.loss*100, row.jitterMs,
			row.bitrate, ups, downs))
	}
	if row.joinMs.Valid {
		d = append(d, fmt.Sprintf("joined in %d ms", row.joinMs.Int64))
	}
	if x.Final {
		d = append(d, "final")
	}
	e.Detail = clean(strings.Join(d, "; "), maxLogDetail)
	return e, row, nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// ingestQuality stores a quality event: its log row and its quality_reports row, each once per seq.
func (in *Ingester) ingestQuality(ctx context.Context, x *sql.Tx, ev cluster.Event, e logEntry, q qualityRow) error {
	if err := in.insertLog(ctx, x, ev, e); err != nil {
		return err
	}
	_, err := x.ExecContext(ctx, in.db.Rebind(`INSERT INTO quality_reports (seq, time_us, app_id, channel, uid,
		session, edge, region, interval_ms, up_packets, down_packets, loss, jitter_ms, bitrate_kbps, join_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING`), int64(ev.Seq),
		e.Time.UnixMicro(), e.AppID, e.Channel, e.UID, e.Session, e.Edge, e.Region, q.intervalMs, q.upPackets,
		q.downPackets, q.loss, q.jitterMs, q.bitrate, q.joinMs)
	return err
}

// Quality analytics: per-bucket medians and whole-window histograms of the reports in [from, to).
//
// A report counts for packet loss and jitter when the session received or sent packets in its interval, for
// bitrate when it sent packets (the bitrate is what it publishes), and for join time when it carries one. The
// median of an even number of values is the mean of the middle two; a bucket without reports is null.

// Histogram bucket upper bounds, inclusive; a last bucket (le null) counts the values above the last bound.
var (
	lossBuckets     = []float64{0.001, 0.01, 0.02, 0.05, 0.1, 0.2}
	jitterBuckets   = []float64{5, 10, 20, 30, 50, 100}
	bitrateBuckets  = []float64{32, 64, 128, 256, 512, 1000, 2000, 4000}
	joinTimeBuckets = []float64{250, 500, 1000, 2000, 3000, 5000, 10000}
)

// histBucket is one bucket of a distribution: the values in (previous le, le], or above the last le when Le is
// nil. Counts are not cumulative.
type histBucket struct {
	Le    *float64 `json:"le"`
	Count int      `json:"count"`
}

// qualityDistributions are the histograms of the window's reports.
type qualityDistributions struct {
	PacketLoss  []histBucket `json:"packet_loss"`
	JitterMs    []histBucket `json:"jitter_ms"`
	BitrateKbps []histBucket `json:"bitrate_kbps"`
	JoinTimeMs  []histBucket `json:"join_time_ms"`
}

// qualityReport is one row read for analytics.
type qualityReport struct {
	us                      int64
	upPackets, downPackets  int64
	loss, jitterMs, bitrate float64
	joinMs                  sql.NullInt64
}

// loadQualityReports reads appID's reports in [start, end), oldest first, at most max rows; truncated reports
// that more remained.
func (cs *Console) loadQualityReports(ctx context.Context, appID string, start, end int64, max int) (qs []qualityReport, truncated bool, err error) {
	rows, err := cs.db.QueryContext(ctx, cs.db.Rebind(`SELECT time_us, up_packets, down_packets, loss, jitter_ms,
		bitrate_kbps, join_ms FROM quality_reports WHERE app_id = ? AND time_us >= ? AND time_us < ?
		ORDER BY time_us, id LIMIT ?`), appID, start, end, max+1)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var q qualityReport
		if err := rows.Scan(&q.us, &q.upPackets, &q.downPackets, &q.loss, &q.jitterMs, &q.bitrate, &q.joinMs); err != nil {
			return nil, false, err
		}
		qs = append(qs, q)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	if len(qs) > max {
		return qs[:max], true, nil
	}
	return qs, false, nil
}

// computeQuality fills res's quality series and distributions from qs for the n buckets of step su from fu.
func computeQuality(res *analyticsResponse, qs []qualityReport, fu, tu, su int64, n int) {
	loss, jitter, bitrate, join := make([][]float64, n), make([][]float64, n), make([][]float64, n), make([][]float64, n)
	var allLoss, allJitter, allBitrate, allJoin []float64
	for _, q := range qs {
		if q.us < fu || q.us >= tu {
			continue
		}
		res.QualityReports++
		b := int((q.us - fu) / su)
		if q.upPackets+q.downPackets > 0 {
			loss[b] = append(loss[b], q.loss)
			jitter[b] = append(jitter[b], q.jitterMs)
			allLoss, allJitter = append(allLoss, q.loss), append(allJitter, q.jitterMs)
		}
		if q.upPackets > 0 {
			bitrate[b] = append(bitrate[b], q.bitrate)
			allBitrate = append(allBitrate, q.bitrate)
		}
		if q.joinMs.Valid {
			join[b] = append(join[b], float64(q.joinMs.Int64))
			allJoin = append(allJoin, float64(q.joinMs.Int64))
		}
	}
	for b := range n {
		t := time.UnixMicro(fu + int64(b)*su).UTC()
		res.PacketLoss = append(res.PacketLoss, ratePoint{T: t, V: median(loss[b])})
		res.JitterMs = append(res.JitterMs, ratePoint{T: t, V: median(jitter[b])})
		res.BitrateKbps = append(res.BitrateKbps, ratePoint{T: t, V: median(bitrate[b])})
		res.JoinTimeMs = append(res.JoinTimeMs, ratePoint{T: t, V: median(join[b])})
	}
	res.Distributions = qualityDistributions{PacketLoss: countBuckets(allLoss, lossBuckets),
		JitterMs: countBuckets(allJitter, jitterBuckets), BitrateKbps: countBuckets(allBitrate, bitrateBuckets),
		JoinTimeMs: countBuckets(allJoin, joinTimeBuckets)}
}

// median returns the median of vs (reordering it), or nil when vs is empty.
func median(vs []float64) *float64 {
	if len(vs) == 0 {
		return nil
	}
	sort.Float64s(vs)
	m := vs[len(vs)/2]
	if len(vs)%2 == 0 {
		m = (vs[len(vs)/2-1] + m) / 2
	}
	return &m
}

// countBuckets counts vs into the buckets of bounds, plus one for the values above the last bound.
func countBuckets(vs, bounds []float64) []histBucket {
	out := make([]histBucket, len(bounds)+1)
	for i := range bounds {
		out[i].Le = &bounds[i]
	}
	for _, v := range vs {
		out[sort.SearchFloat64s(bounds, v)].Count++ // the first bound >= v
	}
	return out
}
