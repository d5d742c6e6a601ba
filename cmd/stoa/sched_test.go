package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/token"
)

func TestSchedulingFlagErrors(t *testing.T) {
	dir := t.TempDir()
	badMap := filepath.Join(dir, "bad.map")
	if err := os.WriteFile(badMap, []byte("# regions\n10.0.0.0/8 eu\n10.0.0.1/8 us\nnonsense\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	client := []string{"--url", "http://127.0.0.1:1", "--app-id", strings.Repeat("1", 32), "--app-cert", strings.Repeat("2", 32)}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"edge", "--max-sessions", "0"}, []string{"--max-sessions must be at least 1"}},
		{[]string{"dev", "--max-sessions", "-3"}, []string{"--max-sessions must be at least 1"}},
		{[]string{"dispatch", "--region-map", filepath.Join(dir, "missing")}, []string{"--region-map", "no such file"}},
		{[]string{"dispatch", "--region-map", badMap}, []string{"line 3: 10.0.0.1/8 has bits set", "line 4: want a CIDR range and a region"}},
		{[]string{"dev", "--region-map", badMap}, []string{"line 3:", "line 4:"}},
		{append([]string{"loadtest", "--regions", "eu,,us"}, client...), []string{`--regions: "" is not a region name`}},
		{append([]string{"join", "--channel", "c", "--uid", "1", "--subscribe", "--region", "e u"}, client...), []string{`--region: "e u" is not a region name`}},
	} {
		code, out, errOut := stoa(t, tc.args...)
		if code != 2 {
			t.Errorf("stoa %q = %d, want 2: %s %s", tc.args, code, out, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("stoa %q: %q lacks %q", tc.args, errOut, w)
			}
		}
	}
}

// stoa dev with edges of capacity 2 in two regions (and room for the clients that heartbeats still count after
// they left) and a region map: loadtest --regions sends its participants
// to each region in turn and reports the edges they used; join --region and the region map place clients.
func TestDevRegionsAndCapacity(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a network")
	}
	regionMap := filepath.Join(t.TempDir(), "regions.map")
	if err := os.WriteFile(regionMap, []byte("127.0.0.2/32 us # a client in the us\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDev(t, "--regions", "eu:3,us:2", "--max-sessions", "2", "--region-map", regionMap)

	loadtest := func(extra ...string) (res struct {
		Subscribers    int      `json:"subscribers"`
		Edges          int      `json:"edges"`
		Regions        []string `json:"regions"`
		FramesExpected int      `json:"frames_expected"`
		FramesReceived int      `json:"frames_received"`
	}) {
		t.Helper()
		args := append([]string{"loadtest", "--url", d.url, "--app-id", d.appID, "--app-cert", d.appCert, "--publishers", "0",
			"--duration", "500ms", "--json"}, extra...)
		code, out, errOut := stoa(t, args...)
		if code != 0 {
			t.Fatalf("loadtest: %d %s", code, errOut)
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || !strings.Contains(out, `"regions": [`) {
			t.Fatalf("loadtest printed %q: %v", out, err)
		}
		return res
	}
	// Five subscribers, in turn eu, us, eu, us, eu: the three of eu need two edges of capacity 2, the two of us
	// fill one edge. The network is fresh: later runs would meet heartbeats that still count these clients.
	if res := loadtest("--channel", "spread", "--subscribers", "5", "--regions", "eu,us"); res.Edges != 3 ||
		!slices.Equal(res.Regions, []string{"eu", "us"}) || res.Subscribers != 5 {
		t.Errorf("loadtest --regions eu,us: %+v, want 3 edges", res)
	}
	if res := loadtest("--channel", "plain", "--subscribers", "1"); res.Edges != 1 || res.Regions == nil || len(res.Regions) != 0 {
		t.Errorf("loadtest without --regions: %+v", res)
	}

	// A channel across both regions out of the box: the publisher in eu, subscribers in both regions, each on an
	// edge of its own region; relay links carry every frame to every one.
	if res := loadtest("--channel", "world", "--publishers", "1", "--subscribers", "4", "--regions", "eu,us",
		"--duration", "2s"); res.Edges < 3 || res.FramesExpected == 0 || res.FramesReceived != res.FramesExpected {
		t.Errorf("loadtest across regions: %+v, want every frame on at least 3 edges", res)
	}

	code, out, errOut := stoa(t, "join", "--url", d.url, "--app-id", d.appID, "--app-cert", d.appCert, "--channel", "j",
		"--uid", "1", "--subscribe", "--duration", "300ms", "--region", "us", "--json")
	var sum joinSummary
	if code != 0 || json.Unmarshal([]byte(out), &sum) != nil || sum.Region != "us" || !strings.HasPrefix(sum.Edge, "us-") {
		t.Errorf("join --region us: %d %q %s", code, out, errOut)
	}

	// The region map: a client at 127.0.0.2 naming no region goes to the us, one at 127.0.0.1 to the first region.
	regionFrom := func(source string) string {
		t.Helper()
		tok, err := token.BuildRTC(d.appCert, token.RTCOptions{AppID: d.appID, Channel: "m", UID: "1", Expire: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(map[string]string{"app_id": d.appID, "channel": "m", "uid": "1", "token": tok})
		dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
		hc := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true}}
		resp, err := hc.Post(d.url+"/v1/dispatch", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got struct{ Region string }
		json.NewDecoder(resp.Body).Decode(&got)
		return got.Region
	}
	if got := regionFrom("127.0.0.2"); got != "us" {
		t.Errorf("from 127.0.0.2: region %q, want us", got)
	}
	if got := regionFrom("127.0.0.1"); got != "eu" {
		t.Errorf("from 127.0.0.1: region %q, want eu", got)
	}
}
