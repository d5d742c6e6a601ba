package console

import (
	"testing"
	"time"
)

// TestTOTPRFC6238 checks the SHA-1 test vectors of RFC 6238 appendix B (8 digits, 30-second steps, the ASCII
// seed "12345678901234567890").
func TestTOTPRFC6238(t *testing.T) {
	key := []byte("12345678901234567890")
	for _, tc := range []struct {
		unix int64
		step int64
		code string
	}{
		{59, 0x1, "94287082"},
		{1111111109, 0x23523EC, "07081804"},
		{1111111111, 0x23523ED, "14050471"},
		{1234567890, 0x273EF07, "89005924"},
		{2000000000, 0x3F940AA, "69279037"},
		{20000000000, 0x27BC86AA, "65353130"},
	} {
		now := time.Unix(tc.unix, 0)
		if s := totpStep(now); s != tc.step {
			t.Errorf("T at %d = %#x, want %#x", tc.unix, s, tc.step)
		}
		if got := hotp(key, uint64(tc.step), 8); got != tc.code {
			t.Errorf("TOTP at %d = %s, want %s", tc.unix, got, tc.code)
		}
		// The 6-digit code is the last 6 digits of the 8-digit one (both are the same number mod 10^d).
		if got := hotp(key, uint64(tc.step), 6); got != tc.code[2:] {
			t.Errorf("6-digit TOTP at %d = %s, want %s", tc.unix, got, tc.code[2:])
		}
		if s, ok := verifyTOTP(key, tc.code, now, 0, 8); !ok || s != tc.step {
			t.Errorf("verify at %d = %d %v", tc.unix, s, ok)
		}
	}
}

// TestHOTPRFC4226 checks RFC 4226 appendix D.
func TestHOTPRFC4226(t *testing.T) {
	key := []byte("12345678901234567890")
	for i, want := range []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"} {
		if got := hotp(key, uint64(i), 6); got != want {
			t.Errorf("HOTP(%d) = %s, want %s", i, got, want)
		}
	}
}

func TestVerifyTOTPWindow(t *testing.T) {
	key := []byte("12345678901234567890")
	now := time.Unix(1111111111, 0)
	cur := totpStep(now)
	for _, tc := range []struct {
		name     string
		step     int64
		lastStep int64
		ok       bool
	}{
		{"current", cur, 0, true},
		{"previous", cur - 1, 0, true},
		{"next", cur + 1, 0, true},
		{"two back", cur - 2, 0, false},
		{"two ahead", cur + 2, 0, false},
		{"reused", cur, cur, false},
		{"older than last used", cur - 1, cur, false},
		{"after last used", cur + 1, cur, true},
	} {
		s, ok := verifyTOTP(key, hotp(key, uint64(tc.step), 6), now, tc.lastStep, 6)
		if ok != tc.ok || (ok && s != tc.step) {
			t.Errorf("%s: step %d ok %v", tc.name, s, ok)
		}
	}
	if _, ok := verifyTOTP(key, "", now, 0, 6); ok {
		t.Error("empty code accepted")
	}
}
