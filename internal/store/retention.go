package store

import (
	"fmt"
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
