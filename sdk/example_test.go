package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/stoa-rtc/stoa/sdk"
	"github.com/stoa-rtc/stoa/sframe/media"
)

// Examples need a running network (stoa dev), so they are compiled but not run.

var (
	appID  = "0123456789abcdef0123456789abcdef"
	tok    = "007..." // built by the application server, e.g. with token.BuildRTC
	secret = media.GenerateSecret()
)

// Join a channel, publish audio and play what the others send.
func Example() {
	ctx := context.Background()
	c, err := sdk.Join(ctx, sdk.Config{
		URL: "https://rtc.example.com", AppID: appID, Channel: "room-1", UID: "42", Token: tok, Secret: secret,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	mic, err := c.PublishAudio(ctx)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for _, pkt := range encodedOpus() {
			if err := mic.WriteFrame(pkt, 20*time.Millisecond); err != nil && !errors.Is(err, sdk.ErrReconnecting) {
				return
			}
		}
	}()

	for t := range c.Tracks() {
		go func() {
			for {
				f, err := t.ReadFrame(ctx)
				if err != nil {
					return // io.EOF: the track ended
				}
				fmt.Printf("%s %s: %d bytes at %d\n", f.UID, f.Kind, len(f.Data), f.Timestamp)
			}
		}()
	}
}

// React to what happens in the channel, renewing the token before it expires.
func ExampleClient_Events() {
	ctx := context.Background()
	c, err := sdk.Join(ctx, sdk.Config{URL: "https://rtc.example.com", AppID: appID, Channel: "room-1", UID: "42",
		Token: tok, Secret: secret})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for ev := range c.Events() {
		switch e := ev.(type) {
		case sdk.ParticipantJoined:
			fmt.Println("joined:", e.Participant.UID)
		case sdk.TrackPublished:
			fmt.Println("new track:", e.Track.UID, e.Track.Kind)
		case sdk.PrivilegeWillExpire:
			if _, err := c.Renew(ctx, freshToken()); err != nil {
				fmt.Println("renew:", err)
			}
		case sdk.Reconnecting:
			fmt.Println("reconnecting:", e.Err)
		case sdk.Disconnected:
			fmt.Println("gone:", e.Err)
		}
	}
}

// Send and receive data messages.
func ExampleClient_PublishData() {
	ctx := context.Background()
	c, err := sdk.Join(ctx, sdk.Config{URL: "https://rtc.example.com", AppID: appID, Channel: "room-1", UID: "42",
		Token: tok, Secret: secret})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	chat, err := c.PublishData(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := chat.Send([]byte("hello")); err != nil {
		log.Print(err)
	}
	for m := range c.Data() {
		fmt.Printf("%s: %s\n", m.UID, m.Data)
	}
}

// Publish VP8 video, sending a key frame when a receiver asks for one.
func ExampleLocalTrack_KeyframeRequests() {
	ctx := context.Background()
	c, err := sdk.Join(ctx, sdk.Config{URL: "https://rtc.example.com", AppID: appID, Channel: "room-1", UID: "42",
		Token: tok, Secret: secret})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	cam, err := c.PublishVideo(ctx)
	if err != nil {
		log.Fatal(err)
	}
	enc := newEncoder()
	tick := time.NewTicker(time.Second / 30)
	defer tick.Stop()
	for range tick.C {
		select {
		case <-cam.KeyframeRequests():
			enc.forceKeyframe()
		default:
		}
		cam.WriteFrame(enc.next(), time.Second/30)
	}
}

// Tell a refused token from a network problem.
func ExampleError() {
	_, err := sdk.Join(context.Background(), sdk.Config{URL: "https://rtc.example.com", AppID: appID,
		Channel: "room-1", UID: "42", Token: tok, Secret: secret})
	var e *sdk.Error
	switch {
	case errors.As(err, &e) && e.Code == sdk.CodeTokenExpired:
		fmt.Println("ask the app server for a new token")
	case err != nil:
		fmt.Println("cannot join:", err)
	}
}

func encodedOpus() [][]byte { return nil }

func freshToken() string { return tok }

type encoder struct{}

func newEncoder() *encoder      { return &encoder{} }
func (*encoder) forceKeyframe() {}
func (*encoder) next() []byte   { return []byte{0x10, 0, 0, 0x9d, 0x01, 0x2a, 0, 0, 0, 0} }
