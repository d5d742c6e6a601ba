package node

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/loadtest"
	"github.com/stoa-rtc/stoa/sdk"
	"github.com/stoa-rtc/stoa/sframe/media"
)

// call is a running call between a publisher and a subscriber through the network, with every audio frame
// numbered so that a test can tell exactly which frames arrived.
type call struct {
	t        testing.TB
	pub, sub *sdk.Client
	sent     atomic.Uint32 // frames sent so far; frame i has sequence number i
	mu       sync.Mutex
	got      map[uint32]time.Time // sequence number → arrival
	stop     chan struct{}
	wg       sync.WaitGroup
}

func (n *testNet) startCall(entry *runningNode, channel string) *call {
	t := n.t
	t.Helper()
	secret := media.GenerateSecret()
	join := func(uid string) *sdk.Client {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := sdk.Join(ctx, sdk.Config{URL: entry.url, AppID: testApp, Channel: channel, UID: uid,
			Token: n.token(channel, uid), Secret: secret, ReconnectTimeout: 30 * time.Second})
		if err != nil {
			t.Fatalf("join %s: %v", uid, err)
		}
		return c
	}
	c := &call{t: t, sub: join("sub"), pub: join("pub"), got: map[uint32]time.Time{}, stop: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	audio, err := c.pub.PublishAudio(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.wg.Go(func() {
		tick := time.NewTicker(loadtest.AudioInterval)
		defer tick.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-tick.C:
			}
			seq := c.sent.Load()
			audio.WriteFrame(loadtest.AudioFrame(loadtest.Marker{Seq: seq, Counted: true}), loadtest.AudioInterval)
			c.sent.Add(1)
		}
	})
	c.wg.Go(func() {
		for {
			select {
			case <-c.stop:
				return
			case tr, ok := <-c.sub.Tracks():
				if !ok {
					return
				}
				c.wg.Go(func() { c.read(tr) })
			}
		}
	})
	t.Cleanup(c.close)
	c.waitFrames(10, 20*time.Second)
	return c
}

func (c *call) read(tr *sdk.RemoteTrack) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		f, err := tr.ReadFrame(ctx)
		if err != nil {
			return
		}
		m, err := loadtest.ParseFrame(f.Data, 1)
		if err != nil {
			c.t.Errorf("corrupt frame: %v", err)
			continue
		}
		c.mu.Lock()
		if _, dup := c.got[m.Seq]; !dup {
			c.got[m.Seq] = time.Now()
		}
		c.mu.Unlock()
	}
}

// waitFrames waits until n more frames than now have arrived.
func (c *call) waitFrames(n int, d time.Duration) {
	c.t.Helper()
	c.mu.Lock()
	want := len(c.got) + n
	c.mu.Unlock()
	deadline := time.Now().Add(d)
	for {
		c.mu.Lock()
		have := len(c.got)
		c.mu.Unlock()
		if have >= want {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("only %d of %d frames arrived within %v", have, want, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mark returns the sequence number of the next frame to be sent.
func (c *call) mark() uint32 { return c.sent.Load() }

// lost returns how many frames with sequence numbers in [from, to) have not arrived, after waiting up to a
// second for those in flight.
func (c *call) lost(from, to uint32) int {
	deadline := time.Now().Add(time.Second)
	for {
		missing := 0
		c.mu.Lock()
		for s := from; s < to; s++ {
			if _, ok := c.got[s]; !ok {
				missing++
			}
		}
		c.mu.Unlock()
		if missing == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// resumedAfter returns how long after t the first frame sent after t arrived.
func (c *call) resumedAfter(t time.Time, from uint32, d time.Duration) time.Duration {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		var first time.Time
		for s, at := range c.got {
			if s >= from && (first.IsZero() || at.Before(first)) {
				first = at
			}
		}
		c.mu.Unlock()
		if !first.IsZero() {
			return first.Sub(t)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("media did not resume within %v", d)
	return 0
}

func (c *call) close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	c.wg.Wait()
	c.pub.Close()
	c.sub.Close()
}
