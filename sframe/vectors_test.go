package sframe

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// rfcFile returns the RFC vector file decoded generically, for tests that corrupt it.
func rfcFile(t *testing.T) map[string][]map[string]any {
	t.Helper()
	b, err := os.ReadFile(rfcVectors)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var f map[string][]map[string]any
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	return f
}

func check(t *testing.T, v any) *VectorReport {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := CheckVectors(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestCheckVectorsCorrupted corrupts one field per case and checks that exactly those cases fail, each with a
// reason naming what differed.
func TestCheckVectorsCorrupted(t *testing.T) {
	f := rfcFile(t)
	flip := func(section string, i int, field string) {
		s := f[section][i][field].(string)
		last := "0"
		if strings.HasSuffix(s, "0") {
			last = "1"
		}
		f[section][i][field] = s[:len(s)-1] + last
	}
	flip("header", 3, "encoded")
	f["header"][10]["ctr"] = json.Number("18446744073709551616") // 2^64: not a uint64
	f["header"][11]["kid"] = json.Number("1.0")
	flip("aes_ctr_hmac", 0, "enc_key")
	flip("aes_ctr_hmac", 1, "ct")
	flip("aes_ctr_hmac", 2, "pt")
	flip("sframe", 0, "sframe_key")
	flip("sframe", 1, "sframe_salt")
	flip("sframe", 2, "ct")
	flip("sframe", 3, "metadata")
	delete(f["sframe"][4], "pt")
	rep := check(t, f)
	want := map[string]string{
		"header[3]":       "encoded header differs",
		"header[10]":      "ctr: 18446744073709551616 is not an unsigned 64-bit integer",
		"header[11]":      "kid: 1.0 is not",
		"aes_ctr_hmac[0]": "enc_key (key[:16]) differs at byte 15",
		"aes_ctr_hmac[1]": "sealed ct differs",
		"aes_ctr_hmac[2]": "opened pt differs",
		"sframe[0]":       "sframe_key differs at byte 47",
		"sframe[1]":       "sframe_salt differs",
		"sframe[2]":       "open: sframe: authentication failed",
		"sframe[3]":       "open: sframe: authentication failed",
		"sframe[4]":       "missing pt",
	}
	if rep.Failed() != len(want) || rep.Passed != 297-len(want) {
		t.Errorf("%d passed, %d failed: %v", rep.Passed, rep.Failed(), rep.Failures)
	}
	for _, fail := range rep.Failures {
		line := fail.String()
		name, _, _ := strings.Cut(line, ":")
		if !strings.Contains(line, want[name]) || want[name] == "" {
			t.Errorf("unexpected failure %q, want it to contain %q", line, want[name])
		}
	}
}

func TestCheckVectorsFileErrors(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{``, "malformed JSON"},
		{`{"header": [`, "malformed JSON"},
		{`[]`, "malformed JSON"},
		{`{"header": []} {}`, "unexpected data"},
		{`{"header": {}}`, `section "header" is not an array`},
		{`{}`, "no cases"},
		{`{"header": null, "sframes": [{}]}`, "no cases"},
	} {
		_, err := CheckVectors(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "sframe: ") {
			t.Errorf("CheckVectors(%q) = %v, want error containing %q", tc.in, err, tc.err)
		}
	}
}

func TestCheckVectorsPartialAndIgnored(t *testing.T) {
	rep, err := CheckVectors(strings.NewReader(`{"comment": "x", "header": [
		{"kid": 18446744073709551615, "ctr": 18446744073709551614, "encoded": "ffffffffffffffffffffffffffffffffff"},
		{"kid": 8, "ctr": 0, "encoded": "8008"},
		{"kid": 0, "ctr": 0, "encoded": "8000"},
		{"kid": 0, "encoded": "00"},
		{"kid": 0, "ctr": 0, "encoded": "zz"},
		[1]]}`))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed != 1 || rep.Failed() != 5 || len(rep.Ignored) != 1 || rep.Ignored[0] != "comment" {
		t.Errorf("passed %d, failures %v, ignored %v", rep.Passed, rep.Failures, rep.Ignored)
	}
	for i, want := range []string{"encoded header differs at byte 16", "", "encoded header differs at byte 0", "missing ctr", "encoded: invalid hex", "malformed case"} {
		if i == 1 {
			continue
		}
		found := false
		for _, f := range rep.Failures {
			if f.Index == i && strings.Contains(f.Reason, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("case %d: no failure containing %q in %v", i, want, rep.Failures)
		}
	}
}
