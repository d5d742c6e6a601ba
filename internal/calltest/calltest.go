// Package calltest runs a call for tests: a publisher sends numbered audio frames through a Stoa network to a
// subscriber, so that a test can tell exactly which frames arrived, and when, while it disturbs the network.
package calltest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/loadtest"
	"github.com/stoa-rtc/stoa/sdk"
	"github.com/stoa-rtc/stoa/sframe/media"
)

// Call is a running call between a publisher and a subscriber.
type Call struct {
	Pub, Sub *sdk.Client

	t    testing.TB
	mu   sync.Mutex
	next uint32               // sequence number of the next frame to send
	got  map[uint32]time.Time // sequence number → arrival
	stop chan struct{}
	wg   sync.WaitGroup
}

// Start joins a subscriber ("sub") and a publisher ("pub") with the configurations config returns for their uids
// (the channel secret is filled in), checks that they met on one edge, starts 50 audio frames a second, and
// returns once frames arrive. The call ends when the test does.
func Start(t testing.TB, config func(uid string) sdk.Config) *Call {
	t.Helper()
	secret := media.GenerateSecret()
	join := func(uid string) *sdk.Client {
		cfg := config(uid)
		cfg.Secret = secret
		deadline := time.Now().Add(20 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			c, err := sdk.Join(ctx, cfg)
			cancel()
			if err == nil {
				return c
			}
			if time.Now().After(deadline) {
				t.Fatalf("join %s: %v", uid, err)
			}
			time.Sleep(100 * time.Millisecond) // retry pace while the network settles
		}
	}
	c := &Call{t: t, Sub: join("sub"), Pub: join("pub"), got: map[uint32]time.Time{}, stop: make(chan struct{})}
	t.Cleanup(c.Close)
	if pe, se := c.Pub.Edge(), c.Sub.Edge(); pe.ID != se.ID {
		// No frame could flow: edges do not forward between each other. The dispatcher scheduled the two apart
		// (it did not list the channel's edge yet?) or a client left the edge it was sent to.
		t.Fatalf("call split: publisher on edge %s, subscriber on edge %s", pe.ID, se.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	audio, err := c.Pub.PublishAudio(ctx)
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
			c.mu.Lock()
			seq := c.next
			c.next++
			c.mu.Unlock()
			audio.WriteFrame(loadtest.AudioFrame(loadtest.Marker{Seq: seq, Counted: true}), loadtest.AudioInterval)
		}
	})
	c.wg.Go(func() {
		for {
			select {
			case <-c.stop:
				return
			case tr, ok := <-c.Sub.Tracks():
				if !ok {
					return
				}
				c.wg.Go(func() { c.read(tr) })
			}
		}
	})
	c.WaitFrames(10, 20*time.Second)
	return c
}

func (c *Call) read(tr *sdk.RemoteTrack) {
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

// Mark returns the sequence number of the next frame to be sent.
func (c *Call) Mark() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next
}

// WaitFrames waits until n more frames than now have arrived.
func (c *Call) WaitFrames(n int, d time.Duration) {
	c.t.Helper()
	c.mu.Lock()
	want := len(c.got) + n
	c.mu.Unlock()
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		c.mu.Lock()
		have := len(c.got)
		c.mu.Unlock()
		if have >= want {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("only %d of %d frames arrived within %v", have, want, d)
		}
	}
}

// Lost returns how many frames numbered in [from, to) have not arrived, after waiting up to a second for those in
// flight.
func (c *Call) Lost(from, to uint32) int {
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

// ResumedAfter waits for the first frame numbered from or later and returns its arrival time less at.
func (c *Call) ResumedAfter(at time.Time, from uint32, d time.Duration) time.Duration {
	c.t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		c.mu.Lock()
		var first time.Time
		for s, got := range c.got {
			if s >= from && (first.IsZero() || got.Before(first)) {
				first = got
			}
		}
		c.mu.Unlock()
		if !first.IsZero() {
			return max(first.Sub(at), 0)
		}
	}
	c.t.Fatalf("media did not resume within %v", d)
	return 0
}

// Close ends the call; it may be called again.
func (c *Call) Close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	c.Pub.Close()
	c.Sub.Close()
	c.wg.Wait()
}
