package sframe

import (
	"os"
	"testing"
)

const rfcVectors = "testdata/rfc9605-test-vectors.json"

// TestRFCVectors checks every test vector of RFC 9605 Appendix C.
func TestRFCVectors(t *testing.T) {
	f, err := os.Open(rfcVectors)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := CheckVectors(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, fail := range rep.Failures {
		t.Errorf("%v", fail)
	}
	if rep.Passed != 289+3+5 || len(rep.Ignored) != 0 {
		t.Errorf("passed %d cases, ignored %v; want 297 and none", rep.Passed, rep.Ignored)
	}
}
