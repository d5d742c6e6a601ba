package store

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxRetention is the longest any category of data may be kept: two years.
const MaxRetention = 730 * 24 * time.Hour

// Retention says how long each category of collected data is kept before the daily purge deletes it.
type Retention struct {
	// MediaLogs is how long media server logs (join, leave, publish, failure events) are kept.
	MediaLogs time.Duration
	// Analytics is how long analytics series are kept.
	Analytics time.Duration
	// AccessLog is how long the console access log (logins) is kept.
	AccessLog time.Duration
	// AuditLog is how long audit log entries are kept; a signed checkpoint anchors what remains.
	AuditLog time.Duration
}

// DefaultRetention returns the retention used when none is configured: one year for the media server logs
// and analytics, two years for the access and audit logs.
func DefaultRetention() Retention {
	return Retention{
		MediaLogs: 365 * 24 * time.Hour,
		Analytics: 365 * 24 * time.Hour,
		AccessLog: MaxRetention,
		AuditLog:  MaxRetention,
	}
}

// Categories returns the categories by their configuration names: media_logs, analytics, access_log, audit_log.
func (r Retention) Categories() []struct {
	Name   string
	Period time.Duration
} {
	return []struct {
		Name   string
		Period time.Duration
	}{
		{"media_logs", r.MediaLogs},
		{"analytics", r.Analytics},
		{"access_log", r.AccessLog},
		{"audit_log", r.AuditLog},
	}
}

// Validate reports every category whose period is not positive or exceeds [MaxRetention], naming each.
func (r Retention) Validate() error {
	var problems []string
	for _, c := range r.Categories() {
		switch {
		case c.Period <= 0:
			problems = append(problems, fmt.Sprintf("retention for %s must be positive, not %s", c.Name, c.Period))
		case c.Period > MaxRetention:
			problems = append(problems, fmt.Sprintf("retention for %s is %s (%s); the maximum is 730 days (two years)",
				c.Name, days(c.Period), c.Period))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("store: %s", strings.Join(problems, "; "))
	}
	return nil
}

func days(d time.Duration) string {
	day := 24 * time.Hour
	if d%day == 0 {
		return fmt.Sprintf("%d days", d/day)
	}
	return fmt.Sprintf("%.2f days", float64(d)/float64(day))
}

// ParsePeriod reads a retention period: a whole number of days such as "90d", or a Go duration such as
// "720h". It does not check the range; [Retention.Validate] does.
func ParsePeriod(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.ParseInt(n, 10, 64)
		if err != nil || d < 0 || d > math.MaxInt64/int64(24*time.Hour) {
			return 0, fmt.Errorf("store: period %q: want a whole number of days such as 90d, or a duration such as 720h", s)
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("store: period %q: want a whole number of days such as 90d, or a duration such as 720h", s)
	}
	return d, nil
}

// FormatPeriod writes d as ParsePeriod reads it: in days ("90d") when it is a whole number of days, else as
// a Go duration.
func FormatPeriod(d time.Duration) string {
	if day := 24 * time.Hour; d > 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}
