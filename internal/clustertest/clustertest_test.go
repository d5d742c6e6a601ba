package clustertest

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestServerRestartKeepsURL(t *testing.T) {
	s := NewServer(t)
	url := s.URL()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	s.Shutdown()
	Eventually(t, 2*time.Second, func() error {
		if nc.IsConnected() {
			return errors.New("still connected")
		}
		return nil
	})
	s.Restart()
	if s.URL() != url {
		t.Fatalf("URL changed: %s, was %s", s.URL(), url)
	}
	Eventually(t, 3*time.Second, func() error {
		if !nc.IsConnected() {
			return errors.New("not reconnected")
		}
		return nil
	})
}

func TestProxyCut(t *testing.T) {
	s := NewServer(t)
	p := NewProxy(t, s.URL())
	nc, err := nats.Connect(p.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	p.Cut()
	Eventually(t, 2*time.Second, func() error {
		if nc.IsConnected() {
			return errors.New("still connected through a cut proxy")
		}
		return nil
	})
	p.Restore()
	Eventually(t, 3*time.Second, func() error {
		if !nc.IsConnected() {
			return errors.New("not reconnected")
		}
		return nil
	})
}

func TestGoroutines(t *testing.T) {
	check := Goroutines(t)
	done := make(chan struct{})
	go func() { <-done }()
	close(done)
	check() // the goroutine ends within the grace period
}
