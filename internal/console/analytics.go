package console

// Project analytics (issue 6, item 6): JSON series computed from media_events, and quality series and
// distributions from quality_reports (quality.go). The window's events and reports are fetched in time order
// with one portable query each (at most analyticsMaxRows rows each) and aggregated in Go.
//
// Sessions: events are grouped by their session id (channel and uid when it is empty). A session opens at its
// join and closes at its leave. A session whose first event in the fetched range is not a join (it began before
// the look-back that precedes the window) counts as open from the start of that look-back. A session with a
// join and no leave counts until its last seen event plus analyticsStaleAfter, the window end or now, whichever
// comes first: a live call stays counted, a session lost by a crashed edge stops being counted.

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	// analyticsMaxBuckets caps the number of buckets of a series ((to-from)/step, rounded up).
	analyticsMaxBuckets = 1000
	// analyticsStaleAfter ends a session without a leave this long after its last seen event; it is also how far
	// before the window events are read to find the sessions open at the window start.
	analyticsStaleAfter = 12 * time.Hour
)

// analyticsMaxRows caps the events read for one request; a variable so that tests can lower it.
var analyticsMaxRows = 200000

// seriesPoint is one bucket of a series: its start and value.
type seriesPoint struct {
	T time.Time `json:"t"`
	V float64   `json:"v"`
}

// ratePoint is one bucket of a series that may have no value: the join success rate (null when there was no
// join attempt) and the quality medians (null when there was no report).
type ratePoint struct {
	T time.Time `json:"t"`
	V *float64  `json:"v"`
}

// analyticsResponse is the body of GET /api/v1/projects/{id}/analytics.
type analyticsResponse struct {
	AppID           string        `json:"app_id"`
	From            time.Time     `json:"from"`
	To              time.Time     `json:"to"`
	Step            string        `json:"step"`
	ConcurrentUsers []seriesPoint `json:"concurrent_users"`
	JoinSuccessRate []ratePoint   `json:"join_success_rate"`
	Joins           []seriesPoint `json:"joins"`
	JoinsFailed     []seriesPoint `json:"joins_failed"`
	MinutesPerDay   []seriesPoint `json:"minutes_per_day"`
	// The quality series: per-bucket medians of the sessions' reports (see quality.go).
	PacketLoss  []ratePoint `json:"packet_loss"`
	JitterMs    []ratePoint `json:"jitter_ms"`
	BitrateKbps []ratePoint `json:"bitrate_kbps"`
	JoinTimeMs  []ratePoint `json:"join_time_ms"`
	// Distributions are histograms of the quality reports of the whole window.
	Distributions qualityDistributions `json:"distributions"`
	// QualityReports counts the quality reports in the window.
	QualityReports int  `json:"quality_reports"`
	Events         int  `json:"events"`
	Truncated      bool `json:"truncated"`
	// CompleteUntil is set when Truncated: the series are exact only before it.
	CompleteUntil *time.Time `json:"complete_until,omitempty"`
}

// parseStep reads a step such as 30s, 1m, 15m, 1h or 1d (a Go duration, or whole days with "d").
func parseStep(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 1 || n > 366 {
			return 0, errorf(http.StatusBadRequest, "bad_request", "step must be like 1m, 1h or 1d")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second {
		return 0, errorf(http.StatusBadRequest, "bad_request", "step must be like 1m, 1h or 1d (at least 1s)")
	}
	return d, nil
}

// analyticsWindow reads ?from=&to=&step=; defaults: the last 24 hours in 1-hour steps.
func (cs *Console) analyticsWindow(r *http.Request) (from, to time.Time, step time.Duration, stepText string, err error) {
	v := r.URL.Query()
	now := cs.now().UTC()
	to, from, stepText = now, time.Time{}, "1h"
	if s := v.Get("to"); s != "" {
		us, err := parseLogTime(s)
		if err != nil {
			return from, to, 0, "", errorf(http.StatusBadRequest, "bad_request", "to must be an RFC 3339 time or Unix seconds")
		}
		to = time.UnixMicro(us).UTC()
	}
	from = to.Add(-24 * time.Hour)
	if s := v.Get("from"); s != "" {
		us, err := parseLogTime(s)
		if err != nil {
			return from, to, 0, "", errorf(http.StatusBadRequest, "bad_request", "from must be an RFC 3339 time or Unix seconds")
		}
		from = time.UnixMicro(us).UTC()
	}
	if s := v.Get("step"); s != "" {
		stepText = s
	}
	if step, err = parseStep(stepText); err != nil {
		return from, to, 0, "", err
	}
	if !from.Before(to) {
		return from, to, 0, "", errorf(http.StatusBadRequest, "bad_request", "from must be before to")
	}
	if n := (to.Sub(from) + step - 1) / step; n > analyticsMaxBuckets {
		return from, to, 0, "", errorf(http.StatusBadRequest, "too_many_buckets",
			"the window holds %d steps; at most %d (use a larger step or a shorter window)", n, analyticsMaxBuckets)
	}
	return from, to, step, stepText, nil
}

// analyticsEvent is one row read for analytics.
type analyticsEvent struct {
	us       int64
	typ, key string
}

// loadAnalyticsEvents reads appID's session events in [start, end), oldest first, at most max rows;
// truncated reports that more remained.
func (cs *Console) loadAnalyticsEvents(ctx context.Context, appID string, start, end int64, max int) (evs []analyticsEvent, truncated bool, err error) {
	rows, err := cs.db.QueryContext(ctx, cs.db.Rebind(`SELECT time_us, event_type, channel, uid, session FROM media_events
		WHERE app_id = ? AND time_us >= ? AND time_us < ?
		AND event_type IN ('join', 'join_failed', 'leave', 'publish', 'unpublish', 'error')
		ORDER BY time_us, id LIMIT ?`), appID, start, end, max+1)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var e analyticsEvent
		var channel, uid, session string
		if err := rows.Scan(&e.us, &e.typ, &channel, &uid, &session); err != nil {
			return nil, false, err
		}
		if session != "" {
			e.key = "s\x00" + session
		} else {
			e.key = "c\x00" + channel + "\x00" + uid
		}
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	if len(evs) > max {
		return evs[:max], true, nil
	}
	return evs, false, nil
}

// interval is a session's presence, [start, end) in Unix microseconds.
type interval struct{ start, end int64 }

// sessionIntervals applies the session rule (see the package comment above) to evs, read from lookStart on;
// open sessions end at min(last seen + stale, limit).
func sessionIntervals(evs []analyticsEvent, lookStart, limit int64) []interval {
	type state struct {
		open      bool
		start     int64
		last      int64
		seen      bool
		intervals []interval
	}
	stale := analyticsStaleAfter.Microseconds()
	m := map[string]*state{}
	var order []string
	for _, e := range evs {
		if e.typ == "join_failed" {
			continue
		}
		s := m[e.key]
		if s == nil {
			s = &state{}
			m[e.key] = s
			order = append(order, e.key)
		}
		switch {
		case e.typ == "join":
			if !s.open {
				s.open, s.start = true, e.us
			}
		case e.typ == "leave":
			if s.open {
				s.intervals = append(s.intervals, interval{s.start, e.us})
				s.open = false
			} else if !s.seen {
				s.intervals = append(s.intervals, interval{lookStart, e.us}) // joined before the look-back
			}
		default:
			if !s.open && !s.seen {
				s.open, s.start = true, lookStart // joined before the look-back
			}
		}
		s.seen, s.last = true, e.us
	}
	var out []interval
	for _, k := range order {
		s := m[k]
		out = append(out, s.intervals...)
		if s.open {
			end := min(s.last+stale, limit)
			if end > s.start {
				out = append(out, interval{s.start, end})
			}
		}
	}
	return out
}

// peakConcurrency returns, for each bucket [from+i*step, from+(i+1)*step) clipped to to, the largest number of
// intervals open at once.
func peakConcurrency(ivs []interval, from, to, step int64, n int) []float64 {
	type change struct {
		us    int64
		delta int
	}
	var ch []change
	for _, iv := range ivs {
		s, e := max(iv.start, from), min(iv.end, to)
		if s < e {
			ch = append(ch, change{s, +1}, change{e, -1})
		}
	}
	// At equal times ends come first: [start, end) intervals that touch never overlap.
	sort.Slice(ch, func(i, j int) bool {
		if ch[i].us != ch[j].us {
			return ch[i].us < ch[j].us
		}
		return ch[i].delta < ch[j].delta
	})
	out := make([]float64, n)
	cur, k := 0, 0
	for b := range n {
		bs := from + int64(b)*step
		be := min(bs+step, to)
		for k < len(ch) && ch[k].us <= bs {
			cur += ch[k].delta
			k++
		}
		peak := cur
		for k < len(ch) && ch[k].us < be {
			cur += ch[k].delta
			k++
			peak = max(peak, cur)
		}
		out[b] = float64(peak)
	}
	return out
}

// minutesPerDay sums the intervals clipped to [from, to) per UTC day, in minutes (two decimals).
func minutesPerDay(ivs []interval, from, to time.Time) []seriesPoint {
	const dayUS = int64(24 * time.Hour / time.Microsecond)
	first := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, time.UTC)
	fu, tu, du := from.UnixMicro(), to.UnixMicro(), first.UnixMicro()
	n := int((tu - du + dayUS - 1) / dayUS)
	sums := make([]int64, n)
	for _, iv := range ivs {
		s, e := max(iv.start, fu), min(iv.end, tu)
		for s < e {
			d := (s - du) / dayUS
			end := min(e, du+(d+1)*dayUS)
			sums[d] += end - s
			s = end
		}
	}
	out := make([]seriesPoint, n)
	for d := range n {
		out[d] = seriesPoint{T: first.AddDate(0, 0, d), V: float64(sums[d]/600_000) / 100}
	}
	return out
}

// computeAnalytics builds the series of [from, to) from evs, read from lookStart on, and the quality reports qs;
// now caps open sessions.
func computeAnalytics(evs []analyticsEvent, qs []qualityReport, lookStart int64, from, to time.Time, step time.Duration, now time.Time) analyticsResponse {
	fu, tu, su := from.UnixMicro(), to.UnixMicro(), step.Microseconds()
	n := int((tu - fu + su - 1) / su)
	res := analyticsResponse{From: from, To: to, ConcurrentUsers: []seriesPoint{}, JoinSuccessRate: []ratePoint{},
		Joins: []seriesPoint{}, JoinsFailed: []seriesPoint{}, MinutesPerDay: []seriesPoint{}, PacketLoss: []ratePoint{},
		JitterMs: []ratePoint{}, BitrateKbps: []ratePoint{}, JoinTimeMs: []ratePoint{}}
	computeQuality(&res, qs, fu, tu, su, n)
	joins, failed := make([]int, n), make([]int, n)
	for _, e := range evs {
		if e.us < fu || e.us >= tu {
			continue
		}
		res.Events++
		b := int((e.us - fu) / su)
		switch e.typ {
		case "join":
			joins[b]++
		case "join_failed":
			failed[b]++
		}
	}
	ivs := sessionIntervals(evs, lookStart, min(tu, now.UnixMicro()))
	peaks := peakConcurrency(ivs, fu, tu, su, n)
	for b := range n {
		t := time.UnixMicro(fu + int64(b)*su).UTC()
		res.ConcurrentUsers = append(res.ConcurrentUsers, seriesPoint{T: t, V: peaks[b]})
		res.Joins = append(res.Joins, seriesPoint{T: t, V: float64(joins[b])})
		res.JoinsFailed = append(res.JoinsFailed, seriesPoint{T: t, V: float64(failed[b])})
		rp := ratePoint{T: t}
		if total := joins[b] + failed[b]; total > 0 {
			v := float64(joins[b]) / float64(total)
			rp.V = &v
		}
		res.JoinSuccessRate = append(res.JoinSuccessRate, rp)
	}
	res.MinutesPerDay = minutesPerDay(ivs, from, to)
	return res
}

// projectAnalytics serves GET /api/v1/projects/{id}/analytics.
func (cs *Console) projectAnalytics(w http.ResponseWriter, r *http.Request, p *principal) {
	from, to, step, stepText, err := cs.analyticsWindow(r)
	if err != nil {
		cs.fail(w, err)
		return
	}
	pr, err := cs.loadProject(r.Context(), cs.db, r, p, false)
	if err != nil {
		cs.fail(w, err)
		return
	}
	lookStart := from.Add(-analyticsStaleAfter).UnixMicro()
	evs, truncated, err := cs.loadAnalyticsEvents(r.Context(), pr.AppID, lookStart, to.UnixMicro(), analyticsMaxRows)
	if err != nil {
		cs.fail(w, err)
		return
	}
	qs, qTruncated, err := cs.loadQualityReports(r.Context(), pr.AppID, from.UnixMicro(), to.UnixMicro(), analyticsMaxRows)
	if err != nil {
		cs.fail(w, err)
		return
	}
	end := to
	if truncated && len(evs) > 0 {
		// Only the events before the last one read are complete; compute up to there.
		end = time.UnixMicro(evs[len(evs)-1].us).UTC()
	}
	if qTruncated && len(qs) > 0 {
		end = minTime(end, time.UnixMicro(qs[len(qs)-1].us).UTC())
		truncated = true
	}
	res := computeAnalytics(evs, qs, lookStart, from, to, step, minTime(cs.now(), end))
	res.AppID, res.Step, res.Truncated = pr.AppID, stepText, truncated
	if truncated {
		res.CompleteUntil = &end
	}
	writeJSON(w, http.StatusOK, res)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
