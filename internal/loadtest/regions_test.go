package loadtest

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// Participant i of a channel, publishers first, asks for region i mod the list.
func TestRegionsInTurn(t *testing.T) {
	r := &run{cfg: Config{Publishers: 2, Subscribers: 3, Regions: []string{"eu", "us"}}}
	var got []string
	for i := range 2 {
		got = append(got, r.region(i, true))
	}
	for i := range 3 {
		got = append(got, r.region(i, false))
	}
	if want := []string{"eu", "us", "eu", "us", "eu"}; !slices.Equal(got, want) {
		t.Errorf("regions %q, want %q", got, want)
	}
	r.cfg.Regions = nil
	if got := r.region(1, false); got != "" {
		t.Errorf("no regions: %q", got)
	}
}

// "edges" and "regions" are always in the JSON result; "regions" is a list even when empty.
func TestResultJSON(t *testing.T) {
	b, err := json.Marshal(Result{Regions: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"edges":0`, `"regions":[]`, `"frames_sent":0`, `"join_ms":{`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
}
