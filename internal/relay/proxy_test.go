package relay

import (
	"container/heap"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// impairment is what a udpProxy does to each packet in one direction.
type impairment struct {
	delay, jitter time.Duration // each packet waits delay ± jitter (uniform), so packets may be reordered
	loss          float64       // each packet is dropped with this probability
}

// udpProxy stands between one client and a UDP server, delaying, reordering and dropping packets, or
// swallowing them all (blackhole). Its randomness is seeded: the same seed gives the same decisions for the same
// sequence of packets.
type udpProxy struct {
	front *net.UDPConn // the client sends here
	back  *net.UDPConn // connected to the server

	mu        sync.Mutex
	client    *net.UDPAddr
	blackhole bool
	rng       *rand.Rand

	up, down *delayLine
	stop     chan struct{}
	wg       sync.WaitGroup
}

func newUDPProxy(t testing.TB, target string, imp impairment, seed uint64) *udpProxy {
	t.Helper()
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp", nil, ta)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*net.UDPConn{front, back} {
		c.SetReadBuffer(4 << 20)
	}
	p := &udpProxy{front: front, back: back, rng: rand.New(rand.NewPCG(seed, seed+1)), stop: make(chan struct{})}
	p.up = newDelayLine(imp, func(b []byte) { back.Write(b) })
	p.down = newDelayLine(imp, func(b []byte) {
		p.mu.Lock()
		c := p.client
		p.mu.Unlock()
		if c != nil {
			front.WriteToUDP(b, c)
		}
	})
	p.wg.Go(func() { p.up.run(p.stop) })
	p.wg.Go(func() { p.down.run(p.stop) })
	p.wg.Go(func() { p.pump(front, p.up, true) })
	p.wg.Go(func() { p.pump(back, p.down, false) })
	t.Cleanup(p.close)
	return p
}

func (p *udpProxy) addr() string { return p.front.LocalAddr().String() }

func (p *udpProxy) setBlackhole(on bool) {
	p.mu.Lock()
	p.blackhole = on
	p.mu.Unlock()
}

func (p *udpProxy) pump(c *net.UDPConn, d *delayLine, fromClient bool) {
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		if fromClient {
			p.client = from
		}
		drop := p.blackhole || p.rng.Float64() < d.imp.loss
		wait := d.imp.delay
		if d.imp.jitter > 0 {
			wait += time.Duration(p.rng.Int64N(int64(2*d.imp.jitter))) - d.imp.jitter
		}
		p.mu.Unlock()
		if !drop {
			d.add(append([]byte(nil), buf[:n]...), time.Now().Add(wait))
		}
	}
}

func (p *udpProxy) close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.front.Close()
	p.back.Close()
	p.wg.Wait()
}

// delayLine sends packets when they are due.
type delayLine struct {
	imp  impairment
	send func([]byte)
	mu   sync.Mutex
	q    pktHeap
	wake chan struct{}
}

func newDelayLine(imp impairment, send func([]byte)) *delayLine {
	return &delayLine{imp: imp, send: send, wake: make(chan struct{}, 1)}
}

func (d *delayLine) add(b []byte, due time.Time) {
	d.mu.Lock()
	heap.Push(&d.q, delayed{due: due, b: b})
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *delayLine) run(stop <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.mu.Lock()
		now := time.Now()
		var due [][]byte
		for len(d.q) > 0 && !d.q[0].due.After(now) {
			due = append(due, heap.Pop(&d.q).(delayed).b)
		}
		wait := time.Hour
		if len(d.q) > 0 {
			wait = d.q[0].due.Sub(now)
		}
		d.mu.Unlock()
		for _, b := range due {
			d.send(b)
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-d.wake:
		case <-stop:
			return
		}
	}
}

type delayed struct {
	due time.Time
	b   []byte
}

type pktHeap []delayed

func (h pktHeap) Len() int           { return len(h) }
func (h pktHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h pktHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pktHeap) Push(x any)        { *h = append(*h, x.(delayed)) }
func (h *pktHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
