package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/loadtest"
	"github.com/stoa-rtc/stoa/sdk"
	"github.com/stoa-rtc/stoa/sframe"
	"github.com/stoa-rtc/stoa/sframe/media"
)

// party is a call of many participants in one channel, each joining through a dispatcher of its choice: publishers
// send numbered audio frames (50 a second), and every participant records which frames of which publisher it
// received, so a test can tell exactly what reached whom while it disturbs the network.
type party struct {
	t       testing.TB
	n       *testNet
	channel string
	secret  *sframe.Key

	mu      sync.Mutex
	clients map[string]*sdk.Client
	next    map[string]uint32                     // publisher → sequence number of its next frame
	got     map[string]map[string]map[uint32]bool // receiver → publisher → frames received
	stop    chan struct{}
	wg      sync.WaitGroup
}

func (n *testNet) newParty(channel string) *party {
	p := &party{t: n.t, n: n, channel: channel, secret: media.GenerateSecret(), clients: map[string]*sdk.Client{},
		next: map[string]uint32{}, got: map[string]map[string]map[uint32]bool{}, stop: make(chan struct{})}
	n.t.Cleanup(p.close)
	return p
}

// join joins uid through the dispatcher entry (asking for region, if set) and, if publish, starts its frames; mods
// change the client's configuration.
func (p *party) join(entry *runningNode, uid, region string, publish bool, mods ...func(*sdk.Config)) *sdk.Client {
	p.t.Helper()
	cfg := sdk.Config{URL: entry.url, Region: region, AppID: testApp, Channel: p.channel, UID: uid,
		Token: p.n.token(p.channel, uid), Secret: p.secret, ReconnectTimeout: 30 * time.Second}
	for _, m := range mods {
		m(&cfg)
	}
	var c *sdk.Client
	for deadline := time.Now().Add(20 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var err error
		c, err = sdk.Join(ctx, cfg)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("join %s: %v", uid, err)
		}
		time.Sleep(100 * time.Millisecond) // retry pace while the network settles
	}
	p.mu.Lock()
	p.clients[uid] = c
	p.got[uid] = map[string]map[uint32]bool{}
	p.mu.Unlock()
	p.wg.Go(func() { p.receive(uid, c) })
	if publish {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		audio, err := c.PublishAudio(ctx)
		if err != nil {
			p.t.Fatalf("publish %s: %v", uid, err)
		}
		p.wg.Go(func() { p.send(uid, audio) })
	}
	return c
}

func (p *party) send(uid string, audio *sdk.LocalTrack) {
	tick := time.NewTicker(loadtest.AudioInterval)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		seq := p.next[uid]
		p.next[uid]++
		p.mu.Unlock()
		audio.WriteFrame(loadtest.AudioFrame(loadtest.Marker{Seq: seq, Counted: true}), loadtest.AudioInterval)
	}
}

func (p *party) receive(uid string, c *sdk.Client) {
	for {
		select {
		case <-p.stop:
			return
		case tr, ok := <-c.Tracks():
			if !ok {
				return
			}
			p.wg.Go(func() { p.read(uid, tr) })
		}
	}
}

func (p *party) read(uid string, tr *sdk.RemoteTrack) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.stop:
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
			p.t.Errorf("%s: corrupt frame from %s: %v", uid, tr.UID(), err)
			continue
		}
		p.mu.Lock()
		if p.got[uid][tr.UID()] == nil {
			p.got[uid][tr.UID()] = map[uint32]bool{}
		}
		p.got[uid][tr.UID()][m.Seq] = true
		p.mu.Unlock()
	}
}

// mark returns the sequence number of publisher pub's next frame.
func (p *party) mark(pub string) uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next[pub]
}

// marks returns mark of every publisher.
func (p *party) marks() map[string]uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]uint32, len(p.next))
	for pub, n := range p.next {
		out[pub] = n
	}
	return out
}

// flowing waits until every participant but a publisher itself has received n frames sent from now on by every
// publisher, and fails the test after d.
func (p *party) flowing(n uint32, d time.Duration) {
	p.t.Helper()
	from := p.marks()
	eventually(p.t, d, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		for recv := range p.clients {
			for pub, start := range from {
				if pub == recv {
					continue
				}
				have := uint32(0)
				for seq := range p.got[recv][pub] {
					if seq >= start {
						have++
					}
				}
				if have < n {
					return fmt.Errorf("%s has %d of %d new frames of %s", recv, have, n, pub)
				}
			}
		}
		return nil
	})
}

// missing returns how many frames of pub numbered [from, to) recv has not received, after waiting up to two
// seconds for those in flight.
func (p *party) missing(recv, pub string, from, to uint32) int {
	deadline := time.Now().Add(2 * time.Second)
	for {
		n := 0
		p.mu.Lock()
		for s := from; s < to; s++ {
			if !p.got[recv][pub][s] {
				n++
			}
		}
		p.mu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// edgesUsed returns the edges the participants are connected to.
func (p *party) edgesUsed() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for _, c := range p.clients {
		out[c.Edge().ID]++
	}
	return out
}

// drop ends participant uid's client and leaves it out of what flowing checks.
func (p *party) drop(uid string) {
	p.mu.Lock()
	c := p.clients[uid]
	delete(p.clients, uid)
	p.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

func (p *party) close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.mu.Lock()
	clients := p.clients
	p.mu.Unlock()
	for _, c := range clients {
		c.Close()
	}
	p.wg.Wait()
}
