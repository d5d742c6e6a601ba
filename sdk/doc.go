// Package sdk is Stoa's Go client: it joins a channel, publishes and receives audio, video and data, and encrypts
// all of it end to end, so that the network forwards only ciphertext.
//
// Join asks a dispatcher (POST /v1/dispatch) for the edges of the client's region and a signed edge ticket,
// connects to the first edge that accepts (the others are backups), and speaks the signaling protocol of
// docs/protocol.md over a WebSocket, with two WebRTC peer connections (Pion): a publisher connection that the client
// offers and a subscriber connection that the edge offers. By default the client subscribes to every track of the
// channel.
//
// # End-to-end encryption
//
// Encryption is always on. Every member of a channel holds the same channel secret (Config.Secret), which the
// application distributes and Stoa never sees. Each local track encrypts its frames with SFrame (RFC 9605) under
// its own random KID, with a key derived from the channel secret (the media profile of package
// github.com/stoa-rtc/stoa/sframe/media, specified in docs/e2ee.md); receivers derive the sender's key from the KID
// in each frame. A few leading codec bytes stay in the clear and authenticated (1 for Opus, 10 for VP8 key frames,
// 3 for VP8 delta frames) so that forwarding can tell key frames; everything else is ciphertext. Frames that fail
// to decrypt — another secret, tampering, replays — are dropped and counted (Stats.DecryptFailed), never fatal.
//
// # Media
//
// The application brings encoded frames and gets encoded frames back: LocalTrack.WriteFrame takes one Opus packet
// or VP8 frame, RemoteTrack.ReadFrame returns one, decrypted, with its publisher, kind, key frame flag and RTP
// timestamp. VP8 frames are rebuilt from RTP packets; a frame with a lost packet is dropped whole
// (Stats.FramesIncomplete) rather than handed to a decoder broken. A video publisher should send a key frame
// whenever LocalTrack.KeyframeRequests delivers. Data messages (DataTrack.Send, Client.Data) are encrypted the same
// way and travel reliably and in order on data channels.
//
// # Events and reconnection
//
// Client.Events delivers what happens in the channel as typed events (ParticipantJoined, TrackPublished,
// PrivilegeWillExpire, Removed, ...). If the signaling connection drops or a peer connection fails, the client
// rejoins by itself — the same edge first, then the backups, with the same token and ticket — publishes its tracks
// again (same KIDs, counters continuing) and resubscribes, reporting Reconnecting and Reconnected. Remote tracks
// end at a reconnection and arrive anew on Client.Tracks.
//
// # Lifecycle
//
// A Client is safe for concurrent use. Leave (or Close) tells the edge, stops everything and returns once every
// goroutine the client started has stopped; the Events, Tracks and Data channels are then closed after a final
// Disconnected event. The token and the channel secret never appear in logs or errors.
//
// # Example
//
//	c, err := sdk.Join(ctx, sdk.Config{
//		URL:     "https://rtc.example.com",
//		AppID:   appID,
//		Channel: "room-1",
//		UID:     "42",
//		Token:   tok,    // from your app server
//		Secret:  secret, // the channel secret, from your app, 32 bytes
//	})
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//	mic, err := c.PublishAudio(ctx)
//	if err != nil {
//		return err
//	}
//	go func() {
//		for pkt := range opusPackets { // 20 ms each
//			mic.WriteFrame(pkt, 20*time.Millisecond)
//		}
//	}()
//	for t := range c.Tracks() {
//		go func() {
//			for {
//				f, err := t.ReadFrame(ctx)
//				if err != nil {
//					return
//				}
//				play(t.UID(), f.Data)
//			}
//		}()
//	}
package sdk
