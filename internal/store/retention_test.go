package store

import (
	"strings"
	"testing"
	"time"
)

const day = 24 * time.Hour

func TestParsePeriod(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90d", 90 * day, true},
		{"730d", MaxRetention, true},
		{"731d", 731 * day, true}, // in range or not is Validate's business
		{"0d", 0, true},
		{"720h", 720 * time.Hour, true},
		{"1h30m", 90 * time.Minute, true},
		{"", 0, false},
		{"d", 0, false},
		{"-1d", 0, false},
		{"1.5d", 0, false},
		{"90", 0, false},
		{"ninety days", 0, false},
		{"99999999999999d", 0, false}, // would overflow a Duration
	} {
		got, err := ParsePeriod(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParsePeriod(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestFormatPeriodRoundTrip(t *testing.T) {
	for _, d := range []time.Duration{day, 90 * day, MaxRetention, 36 * time.Hour, 90 * time.Minute} {
		s := FormatPeriod(d)
		got, err := ParsePeriod(s)
		if err != nil || got != d {
			t.Errorf("ParsePeriod(FormatPeriod(%v) = %q) = %v, %v", d, s, got, err)
		}
	}
	if s := FormatPeriod(365 * day); s != "365d" {
		t.Errorf("FormatPeriod(365 days) = %q", s)
	}
}

func FuzzParsePeriod(f *testing.F) {
	for _, s := range []string{"90d", "720h", "1h30m", "-1d", "0d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParsePeriod(s)
		if err != nil {
			return
		}
		if back, err := ParsePeriod(FormatPeriod(d)); err != nil || back != d {
			t.Fatalf("%q: %v formats as %q, which reads back as %v, %v", s, d, FormatPeriod(d), back, err)
		}
	})
}

func TestRetentionValidate(t *testing.T) {
	if err := DefaultRetention().Validate(); err != nil {
		t.Fatalf("default: %v", err)
	}
	r := Retention{MediaLogs: MaxRetention, Analytics: 731 * day, AccessLog: 0, AuditLog: -time.Hour}
	err := r.Validate()
	if err == nil {
		t.Fatal("invalid retention accepted")
	}
	for _, want := range []string{"analytics is 731 days", "maximum is 730 days", "access_log must be positive", "audit_log must be positive"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v: want %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "media_logs") {
		t.Errorf("%v: exactly the maximum is allowed", err)
	}
}
