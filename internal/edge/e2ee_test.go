package edge

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/stoa-rtc/stoa/internal/dispatch"
	"github.com/stoa-rtc/stoa/internal/protocol"
	"github.com/stoa-rtc/stoa/sdk"
	"github.com/stoa-rtc/stoa/sframe"
	"github.com/stoa-rtc/stoa/sframe/media"
)

// The edge forwards SFrame ciphertext only: a tap on what it sends to a subscriber finds SFrame headers where the
// media profile puts them and never the plaintext that the publisher's application wrote.
func TestEdgeForwardsOnlyCiphertext(t *testing.T) {
	e := startEdge(t)
	mux := http.NewServeMux()
	mux.Handle("/v1/dispatch", &dispatch.Handler{Verifier: e.srv.cfg.Verifier, Edges: func(dispatch.Request) (string, []dispatch.Edge, error) {
		return "local", []dispatch.Edge{{ID: e.srv.ID(), Region: "local", URL: e.url}}, nil
	}})
	entry := httptest.NewServer(mux)
	defer entry.Close()

	tap := e.dial(t)
	if r := tap.join(e.token(t, "room", "tap", nil), "room", "tap"); r.Type != protocol.TypeJoined {
		t.Fatal(errCode(r))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pub, err := sdk.Join(ctx, sdk.Config{URL: entry.URL, AppID: testApp, Channel: "room", UID: "alice",
		Token: e.token(t, "room", "alice", nil), Secret: media.GenerateSecret()})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	audio, err := pub.PublishAudio(ctx)
	if err != nil {
		t.Fatal(err)
	}
	video, err := pub.PublishVideo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	marker := []byte("PLAINTEXT-MARKER-0123456789")
	frame := func(n int, header []byte) []byte {
		b := append([]byte(nil), header...)
		for len(b) < n {
			b = append(b, marker...)
		}
		return b[:n]
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			audio.WriteFrame(frame(100, []byte{0xfc}), 20*time.Millisecond)
			if i%2 == 0 {
				key := []byte{0x10, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01} // key frame, 640x360
				if i%20 != 0 {
					key = []byte{0x11, 0, 0}
				}
				video.WriteFrame(frame(3000, key), 40*time.Millisecond)
			}
		}
	}()

	checked := map[webrtc.RTPCodecType]int{}
	for len(checked) < 2 {
		var track *webrtc.TrackRemote
		select {
		case track = <-tap.tracks:
		case <-ctx.Done():
			t.Fatalf("tracks received: %v", checked)
		}
		for n := 0; n < 40; n++ {
			pkt, _, err := track.ReadRTP()
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(pkt.Payload, marker[:12]) {
				t.Fatalf("the edge forwarded plaintext: %q", pkt.Payload)
			}
			payload := pkt.Payload
			if track.Kind() == webrtc.RTPCodecTypeVideo {
				var vp8 codecs.VP8Packet
				if payload, err = vp8.Unmarshal(pkt.Payload); err != nil {
					t.Fatal(err)
				}
				if vp8.S != 1 || vp8.PID != 0 {
					continue // only a frame's first packet starts with the clear prefix and the SFrame header
				}
			}
			prefix, ok := media.VP8.ClearPrefixLen(payload)
			if track.Kind() == webrtc.RTPCodecTypeAudio {
				prefix, ok = media.Opus.ClearPrefixLen(payload)
			}
			if !ok {
				t.Fatalf("no clear prefix in %x", payload)
			}
			kid, _, n, err := sframe.ParseHeader(payload[prefix:])
			if err != nil || media.Generation(kid) != 0 || len(payload) < prefix+n+16 {
				t.Fatalf("no SFrame header after the clear prefix: kid %x, %v", kid, err)
			}
		}
		checked[track.Kind()]++
	}
}
