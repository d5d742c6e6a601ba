package console

// Template functions of the web UI, and its charts: inline SVG drawn on the server from the analytics API's
// series, so that the pages need no charting script.

import (
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

var templateFuncs = template.FuncMap{
	"when":      when,
	"lineChart": func(id, title, unit string, s any) template.HTML { return chart(id, title, unit, points(s), false) },
	"barChart":  func(id, title, unit string, s any) template.HTML { return chart(id, title, unit, points(s), true) },
	"histogram": histogram,
	"changes":   changes,
	"num":       num,
	"has":       func(m map[string]any, k string) bool { _, ok := m[k]; return ok },
	"list":      func(s ...string) []string { return s },
}

// when formats an RFC 3339 time from the API for people: "2026-11-29 16:40:05 UTC".
func when(v any) string {
	s, _ := v.(string)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// changes lists what an audit entry changed, field by field ("name: a → b"); a creation lists the new values
// and a deletion the old ones. Documents that are not objects are shown whole.
func changes(before, after any) []string {
	b, bObj := before.(map[string]any)
	a, aObj := after.(map[string]any)
	if (before != nil && !bObj) || (after != nil && !aObj) {
		return []string{compact(before) + " → " + compact(after)}
	}
	keys := make([]string, 0, len(b)+len(a))
	for k := range b {
		keys = append(keys, k)
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		bv, inB := b[k]
		av, inA := a[k]
		switch {
		case inB && inA:
			if compact(bv) != compact(av) {
				out = append(out, k+": "+compact(bv)+" → "+compact(av))
			}
		case inA:
			out = append(out, k+": "+compact(av))
		default:
			out = append(out, k+": "+compact(bv)+" (removed)")
		}
	}
	return out
}

// compact renders a JSON value briefly: strings without quotes, anything else as JSON.
func compact(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	return string(b)
}

// num formats a number with at most two decimals.
func num(v any) string {
	f, ok := v.(float64)
	if !ok {
		return "—"
	}
	return strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64)
}

// point is one value of a series; ok is false where the API gave null (no data in that bucket).
type point struct {
	t  time.Time
	v  float64
	ok bool
}

// points reads a series as the API encodes it: [{"t": RFC 3339, "v": number or null}, ...].
func points(s any) []point {
	items, _ := s.([]any)
	out := make([]point, 0, len(items))
	for _, it := range items {
		m, _ := it.(map[string]any)
		ts, _ := m["t"].(string)
		t, _ := time.Parse(time.RFC3339Nano, ts)
		v, ok := m["v"].(float64)
		out = append(out, point{t: t, v: v, ok: ok})
	}
	return out
}

// Chart geometry, in SVG user units; the SVG scales to its container.
const (
	chartW, chartH           = 640.0, 200.0
	chartLeft, chartRight    = 56.0, 12.0
	chartTop, chartBottom    = 12.0, 28.0
	chartPlotW, chartPlotH   = chartW - chartLeft - chartRight, chartH - chartTop - chartBottom
	chartTimeLayoutShort     = "15:04"
	chartTimeLayoutLong      = "Jan 2"
	chartLongSpanForDateAxis = 48 * time.Hour
)

// chart draws s as a line (or bars) with a labelled value axis and the first and last times. The SVG carries
// data-series, data-points and data-max so that tests and scripts can read what it shows.
func chart(id, title, unit string, s []point, bars bool) template.HTML {
	var b strings.Builder
	maxV, n := 0.0, 0
	for _, p := range s {
		if p.ok {
			maxV = math.Max(maxV, p.v)
			n++
		}
	}
	top := niceCeil(maxV)
	openChart(&b, id, title, n, maxV)
	lines := gridLines(top)
	for i := 0; i <= lines; i++ {
		v := top * float64(i) / float64(lines)
		y := chartTop + chartPlotH*(1-float64(i)/float64(lines))
		fmt.Fprintf(&b, `<line class="grid" x1="%g" y1="%.1f" x2="%g" y2="%.1f"/>`, chartLeft, y, chartW-chartRight, y)
		fmt.Fprintf(&b, `<text class="axis" x="%g" y="%.1f" text-anchor="end">%s</text>`, chartLeft-6, y+4, html.EscapeString(axisLabel(v, unit)))
	}
	if len(s) > 0 {
		layout := chartTimeLayoutShort
		daily := len(s) == 1 || s[1].t.Sub(s[0].t) >= 24*time.Hour
		if daily || s[len(s)-1].t.Sub(s[0].t) >= chartLongSpanForDateAxis {
			layout = chartTimeLayoutLong
		}
		fmt.Fprintf(&b, `<text class="axis" x="%g" y="%g">%s</text>`, chartLeft, chartH-8, s[0].t.UTC().Format(layout))
		fmt.Fprintf(&b, `<text class="axis" x="%g" y="%g" text-anchor="end">%s</text>`, chartW-chartRight, chartH-8, s[len(s)-1].t.UTC().Format(layout))
	}
	if n == 0 {
		fmt.Fprintf(&b, `<text class="empty" x="%g" y="%g" text-anchor="middle">no data in this period</text>`, chartLeft+chartPlotW/2, chartTop+chartPlotH/2)
	}
	y := func(v float64) float64 { return chartTop + chartPlotH*(1-v/top) }
	if bars {
		w := chartPlotW / float64(max(len(s), 1))
		for i, p := range s {
			if p.ok && p.v > 0 {
				fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %s</title></rect>`,
					chartLeft+float64(i)*w+w*0.1, y(p.v), w*0.8, chartTop+chartPlotH-y(p.v), p.t.UTC().Format(time.RFC3339), axisLabel(p.v, unit))
			}
		}
	} else {
		step := chartPlotW / float64(max(len(s)-1, 1))
		var line []string
		flush := func() {
			switch len(line) {
			case 0:
			case 1: // a lone point would draw nothing as a line
				fmt.Fprintf(&b, `<circle class="dot" cx="%s" r="3"/>`, strings.Replace(line[0], ",", `" cy="`, 1))
			default:
				fmt.Fprintf(&b, `<polyline class="line" points="%s"/>`, strings.Join(line, " "))
			}
			line = line[:0]
		}
		for i, p := range s {
			if !p.ok {
				flush()
				continue
			}
			line = append(line, fmt.Sprintf("%.1f,%.1f", chartLeft+float64(i)*step, y(p.v)))
		}
		flush()
	}
	b.WriteString(`</svg></figure>`)
	return template.HTML(b.String())
}

// histogram draws a distribution given as [{"le": upper bound or null for the rest, "count": n}, ...].
func histogram(id, title, unit string, d any) template.HTML {
	items, _ := d.([]any)
	s := make([]point, 0, len(items))
	labels := make([]string, 0, len(items))
	for _, it := range items {
		m, _ := it.(map[string]any)
		c, _ := m["count"].(float64)
		s = append(s, point{v: c, ok: true})
		if le, ok := m["le"].(float64); ok {
			labels = append(labels, "≤ "+axisLabel(le, unit))
		} else {
			labels = append(labels, "more")
		}
	}
	var b strings.Builder
	maxV, total := 0.0, 0.0
	for _, p := range s {
		maxV = math.Max(maxV, p.v)
		total += p.v
	}
	top := niceCeil(maxV)
	openChart(&b, id, title, len(s), maxV)
	if total == 0 {
		fmt.Fprintf(&b, `<text class="empty" x="%g" y="%g" text-anchor="middle">no reports in this period</text>`, chartLeft+chartPlotW/2, chartTop+chartPlotH/2)
	}
	w := chartPlotW / float64(max(len(s), 1))
	for i, p := range s {
		x := chartLeft + float64(i)*w
		h := chartPlotH * p.v / top
		fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %g</title></rect>`,
			x+w*0.1, chartTop+chartPlotH-h, w*0.8, h, html.EscapeString(labels[i]), p.v)
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%g" text-anchor="middle">%s</text>`, x+w/2, chartH-8, html.EscapeString(labels[i]))
	}
	fmt.Fprintf(&b, `<text class="axis" x="%g" y="%g" text-anchor="end">%g</text>`, chartLeft-6, chartTop+4, top)
	b.WriteString(`</svg></figure>`)
	return template.HTML(b.String())
}

// openChart writes the figure, its caption and the opening svg tag, whose data-series, data-points and data-max
// attributes say what the chart shows.
func openChart(b *strings.Builder, id, title string, points int, maxV float64) {
	fmt.Fprintf(b, `<figure class="chart"><figcaption id="%s-title">%s</figcaption>`, id, html.EscapeString(title))
	fmt.Fprintf(b, `<svg viewBox="0 0 %g %g" role="img" aria-labelledby="%s-title" data-series="%s" data-points="%d" data-max="%g">`,
		chartW, chartH, id, id, points, maxV)
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1), so that axis labels are round.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// gridLines divides an axis topped by niceCeil's 1, 2 or 5 times a power of ten into round steps.
func gridLines(top float64) int {
	if m := top / math.Pow(10, math.Floor(math.Log10(top))); math.Abs(m-2) < 1e-9 {
		return 4
	}
	return 5
}

func axisLabel(v float64, unit string) string {
	s := strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
	if unit == "%" {
		return strconv.FormatFloat(math.Round(v*1000)/10, 'f', -1, 64) + "%"
	}
	if unit != "" {
		return s + " " + unit
	}
	return s
}
