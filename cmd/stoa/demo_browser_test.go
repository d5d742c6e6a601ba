package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stoa-rtc/stoa/internal/browsertest"
	"github.com/stoa-rtc/stoa/sdk"
	"github.com/stoa-rtc/stoa/sframe"
	"github.com/stoa-rtc/stoa/token"
)

// demoStats is what window.stoaDemo.stats() resolves to (the contract of issue 12).
type demoStats struct {
	Joined bool `json:"joined"`
	Remote []struct {
		UID             string `json:"uid"`
		Kind            string `json:"kind"`
		FramesDecoded   int    `json:"frames_decoded"`
		DecryptFailures int    `json:"decrypt_failures"`
	} `json:"remote"`
}

// decoded returns the frames decoded of uid's track of kind (0 if none).
func (s demoStats) decoded(uid, kind string) int {
	for _, r := range s.Remote {
		if r.UID == uid && r.Kind == kind {
			return r.FramesDecoded
		}
	}
	return 0
}

// TestDemoInBrowser is issue 12's acceptance: two Chromium pages of the demo (fake camera and microphone, real
// VP8 and Opus from Chromium's encoders, SFrame in the encoded-transform worker) and one Go SDK client in one
// channel of stoa dev. Each page decodes the other's video and audio; the Go client decrypts both pages' frames; a
// third page with another secret decodes nothing and counts decrypt failures.
func TestDemoInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a network and a browser")
	}
	browser := browsertest.Start(t, browsertest.MediaFlags...)
	d := startDev(t)
	secretHex := randomHex(32)
	b, _ := hex.DecodeString(secretHex)
	secret := sframe.NewKey(b)

	// The Go client first: it sees the pages' tracks as they publish.
	tok, err := token.BuildRTC(d.appCert, token.RTCOptions{AppID: d.appID, Channel: "browsers", UID: "go", Role: token.RolePublisher, Expire: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	goc, err := sdk.Join(ctx, sdk.Config{URL: d.url, AppID: d.appID, Channel: "browsers", UID: "go", Token: tok, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer goc.Close()
	go func() {
		for tr := range goc.Tracks() {
			go func() {
				for {
					if _, err := tr.ReadFrame(ctx); err != nil {
						return
					}
				}
			}()
		}
	}()

	page := func(uid, secret string) context.Context {
		tab, cancelTab := chromedp.NewContext(browser)
		t.Cleanup(cancelTab)
		u := fmt.Sprintf("%s/demo/#channel=browsers&uid=%s&secret=%s&publish=audio,video&autojoin=1", d.url, uid, secret)
		if err := chromedp.Do(tab, chromedp.Navigate(u)); err != nil {
			t.Fatalf("opening the demo as %s: %v", uid, err)
		}
		return tab
	}
	stats := func(tab context.Context) demoStats {
		sctx, cancel := context.WithTimeout(tab, 10*time.Second)
		defer cancel()
		text, err := chromedp.Run(sctx, chromedp.Evaluate[string](`window.stoaDemo ? window.stoaDemo.stats().then(JSON.stringify) : '{}'`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("stats: %v", err)
		}
		var s demoStats
		json.Unmarshal([]byte(text), &s)
		return s
	}
	status := func(tab context.Context) string {
		s, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector('#status').textContent`))
		return s
	}
	start := time.Now()
	a, bTab := page("alice", secretHex), page("bob", secretHex)

	// waitFor polls cond until it holds, with a generous deadline for a loaded machine.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(90 * time.Second); !cond(); time.Sleep(250 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 90 s; alice: %+v %q; bob: %+v %q; go: %+v", what, stats(a), status(a), stats(bTab), status(bTab), goc.Stats())
			}
		}
	}
	waitFor("each page decodes the other's audio and video", func() bool {
		sa, sb := stats(a), stats(bTab)
		return sa.Joined && sb.Joined && sa.decoded("bob", "video") > 0 && sa.decoded("bob", "audio") > 0 &&
			sb.decoded("alice", "video") > 0 && sb.decoded("alice", "audio") > 0
	})
	t.Logf("both pages decoding each other %v after opening them", time.Since(start).Round(time.Millisecond))

	// The Go client decrypts both pages' audio and video.
	waitFor("the Go client decrypts both pages", func() bool {
		got := map[string]bool{}
		for _, ts := range goc.Stats().Tracks {
			if !ts.Local && ts.DecryptOK > 0 {
				got[ts.UID+"/"+string(ts.Kind)] = true
			}
		}
		return got["alice/audio"] && got["alice/video"] && got["bob/audio"] && got["bob/video"]
	})
	if st := goc.Stats(); st.DecryptFailed != 0 {
		t.Errorf("the Go client failed to decrypt %d of the pages' frames", st.DecryptFailed)
	}

	// A page with another secret decodes nothing, and counts its failures.
	eve := page("eve", randomHex(32))
	waitFor("the page with another secret counts failures", func() bool {
		s := stats(eve)
		failures := 0
		for _, r := range s.Remote {
			failures += r.DecryptFailures
		}
		return s.Joined && failures > 10
	})
	for _, r := range stats(eve).Remote {
		if r.FramesDecoded != 0 {
			t.Errorf("the page with another secret decoded %d frames of %s's %s", r.FramesDecoded, r.UID, r.Kind)
		}
	}
}
