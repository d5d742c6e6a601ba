package console

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/edge"
	"github.com/stoa-rtc/stoa/internal/protocol"
)

// checkClean fails unless s is what clean(·, max) may return: valid UTF-8, no control character, at most max bytes.
func checkClean(t *testing.T, field, s string, max int) {
	t.Helper()
	if !utf8.ValidString(s) || len(s) > max || strings.ContainsFunc(s, unicode.IsControl) {
		t.Fatalf("%s %q: not cleaned to %d bytes", field, s, max)
	}
}

// FuzzDecodeLogEvent feeds any event to the log ingestion: it is refused with an error, ignored, or becomes an entry
// whose every field is cleaned. An edge event that the edge encodes decodes back to its cleaned fields.
func FuzzDecodeLogEvent(f *testing.F) {
	f.Add("join", []byte(`{"time":"2026-01-01T00:00:00Z","type":"join","app_id":"a","ip":"::ffff:1.2.3.4","user_agent":"Mozilla/5.0 (Windows NT 10.0)"}`),
		"app", "chan\x00nel", "u", "1.2.3.4", "Mozilla/5.0 (iPhone)", "reason")
	f.Add("guard_block", []byte(`{"time":"2026-01-01T00:00:00Z","node":"d1","prefix":"10.0.0.0/24","reason":"invalid_token"}`),
		"", "", "", "", "", "")
	f.Add("join_failed", []byte(`{"type":"join_failed"}`), "a\xff", strings.Repeat("é", 100), "", "zz", "", "invalid_token")
	f.Add("quality", []byte(`null`), "", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, typ string, data []byte, appID, channel, uid, ip, ua, reason string) {
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		e, ok, err := decodeLogEvent(cluster.Event{Seq: 1, Region: "eu", Type: typ, Time: at, Data: data})
		if err != nil && ok {
			t.Fatalf("ok with an error: %v", err)
		}
		if ok {
			checkEntry(t, e)
		}

		// The round trip from the edge's encoder.
		ev := edge.Event{Time: at, Type: edge.EventJoinFailed, Edge: "e1", Region: "eu", AppID: appID, Channel: channel,
			UID: uid, IP: ip, UserAgent: ua, Reason: reason}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		e, ok, err = decodeLogEvent(cluster.Event{Seq: 2, Region: "eu", Type: string(ev.Type), Time: at, Data: b})
		if !ok || err != nil { // a join failure is kept even under no project
			t.Fatalf("edge event refused: %v", err)
		}
		checkEntry(t, e)
		want := logEntry{Time: at, Type: string(ev.Type), AppID: clean(appID, maxLogField), Channel: clean(channel, maxLogField),
			UID: clean(uid, maxLogField), Edge: "e1", Region: "eu", UserAgent: clean(ua, maxLogUA), Reason: clean(reason, maxLogReason)}
		if unverifiedJoinFailures[protocol.Code(want.Reason)] {
			// Before the token verified, the App ID is only a claim: kept for operators, under no project.
			if want.AppID != "" {
				want.Detail = "claimed app_id " + want.AppID
			}
			want.AppID = ""
		}
		if a, err := netip.ParseAddr(ip); err == nil {
			want.IP = a.Unmap().String()
		}
		want.OS = userAgentOS(want.UserAgent)
		if e != want {
			t.Fatalf("round trip:\n got %+v\nwant %+v", e, want)
		}
	})
}

func checkEntry(t *testing.T, e logEntry) {
	t.Helper()
	for _, f := range []struct {
		name, v string
		max     int
	}{{"app_id", e.AppID, maxLogField}, {"channel", e.Channel, maxLogField}, {"uid", e.UID, maxLogField},
		{"edge", e.Edge, maxLogField}, {"region", e.Region, maxLogField}, {"session", e.Session, maxLogField},
		{"track_id", e.TrackID, maxLogField}, {"kind", e.Kind, maxLogField}, {"user_agent", e.UserAgent, maxLogUA},
		{"reason", e.Reason, maxLogReason}} {
		checkClean(t, f.name, f.v, f.max)
	}
	if !logEventTypes[e.Type] || e.Time.IsZero() {
		t.Fatalf("entry of type %q at %v", e.Type, e.Time)
	}
	if e.IP != "" {
		if _, err := netip.ParseAddr(e.IP); err != nil {
			if _, err := netip.ParsePrefix(e.IP); err != nil {
				t.Fatalf("ip %q is neither an address nor a prefix", e.IP)
			}
		}
	}
	if e.OS != userAgentOS(e.UserAgent) {
		t.Fatalf("os %q for user agent %q", e.OS, e.UserAgent)
	}
}

// FuzzUserAgentOS: any user agent names one of the known systems or none.
func FuzzUserAgentOS(f *testing.F) {
	for _, ua := range []string{"", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "Mozilla/5.0 (Linux; Android 14)",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)", "Mozilla/5.0 (X11; CrOS x86_64)", "curl/8", "\xff\x00"} {
		f.Add(ua)
	}
	known := map[string]bool{"": true, "Windows": true, "Android": true, "iOS": true, "ChromeOS": true, "macOS": true, "Linux": true}
	f.Fuzz(func(t *testing.T, ua string) {
		os := userAgentOS(ua)
		if !known[os] {
			t.Fatalf("userAgentOS(%q) = %q", ua, os)
		}
		if ua == "" && os != "" {
			t.Fatalf("userAgentOS of nothing = %q", os)
		}
	})
}

// FuzzParseLogQuery: any query string is parsed or refused with a 400, and what is parsed is in range. A cursor
// made the way searchLogs makes it parses back to the same position.
func FuzzParseLogQuery(f *testing.F) {
	f.Add("channel=a&type=join&from=2026-01-01T00:00:00Z&to=1767225600&limit=10&after=1767225600000000_7", int64(1767225600000000), int64(7))
	f.Add("limit=0", int64(0), int64(1))
	f.Add("after=_&type=nope&from=-1", int64(-5), int64(-1))
	f.Add("to=99999999999999999999", int64(1<<62), int64(1<<62))
	f.Fuzz(func(t *testing.T, rawQuery string, afterTime, afterID int64) {
		r := httptest.NewRequest("GET", "/api/v1/projects/1/logs", nil)
		r.URL.RawQuery = rawQuery
		q, err := parseLogQuery(r, defaultLogLimit, maxLogLimit)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != 400 || ae.code != "bad_request" {
				t.Fatalf("error %v is not a 400", err)
			}
		} else {
			if q.limit < 1 || q.limit > maxLogLimit || q.typ != "" && !logEventTypes[q.typ] || q.afterID < 0 {
				t.Fatalf("parsed out of range: %+v", q)
			}
		}
		if afterID <= 0 {
			return
		}
		cursor := strconv.FormatInt(afterTime, 10) + "_" + strconv.FormatInt(afterID, 10)
		r.URL.RawQuery = url.Values{"after": {cursor}}.Encode()
		q, err = parseLogQuery(r, defaultLogLimit, maxLogLimit)
		if err != nil || q.afterTime != afterTime || q.afterID != afterID {
			t.Fatalf("cursor %q: %+v %v", cursor, q, err)
		}
	})
}
