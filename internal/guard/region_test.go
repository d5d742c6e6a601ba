package guard

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestRegionSharing plays a dispatcher and an edge of one region sharing a store: a block made by one is enforced
// by the other once Run has published it, and an operator's deletion from the store lifts it everywhere.
func TestRegionSharing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &MemStore{}
		logA, logB := &eventLog{}, &eventLog{}
		a, err := New(Config{Store: store, Node: "dispatch-1", Events: logA.add})
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(Config{Store: store, Node: "edge-1", Events: logB.add})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 2)
		go func() { done <- a.Run(ctx) }()
		go func() { done <- b.Run(ctx) }()

		for range 20 {
			a.Bad(attacker, ReasonInvalidToken)
		}
		if d := a.Check(attacker, Dispatch); d.Verdict != Blocked {
			t.Fatalf("dispatcher: %+v", d)
		}
		synctest.Wait() // Run has published the block
		blk, ok := store.Blocked(a.Key(attacker))
		if !ok || blk.Node != "dispatch-1" || blk.Reason != ReasonInvalidToken || blk.Count != 20 || !blk.Until.Equal(time.Now().Add(10*time.Minute)) {
			t.Fatalf("stored block %+v, %v", blk, ok)
		}
		for _, c := range []Class{Connect, Message} {
			if d := b.Check(attacker, c); d.Verdict != Blocked || d.RetryAfter != 10*time.Minute || d.Reason != ReasonInvalidToken {
				t.Fatalf("edge, %v: %+v", c, d)
			}
			if d := b.Check(victim, c); !d.Allowed() {
				t.Fatalf("edge, victim: %+v", d)
			}
		}
		// Remote blocks are not reported as blocks made by the edge; its refusals are summarized.
		if len(logB.of(EventBlock)) != 0 {
			t.Fatal("the edge reported the dispatcher's block as its own")
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if s := logB.of(EventBlockedRequests); len(s) != 1 || s[0].Count != 2 || s[0].Node != "edge-1" {
			t.Fatalf("edge summaries %+v", s)
		}

		// An operator lifts the block in the store (stoa cluster unblock).
		store.DeleteBlock(ctx, a.Key(attacker))
		if d := a.Check(attacker, Dispatch); !d.Allowed() {
			t.Fatalf("dispatcher after the operator's unblock: %+v", d)
		}
		if d := b.Check(attacker, Connect); !d.Allowed() {
			t.Fatalf("edge after the operator's unblock: %+v", d)
		}
		if evs := logA.of(EventUnblock); len(evs) != 1 || evs[0].Reason != "lifted" {
			t.Fatalf("dispatcher unblock events %+v", evs)
		}

		// Blocked again, then the block runs out everywhere.
		for range 20 {
			b.Bad(attacker, ReasonInvalidTicket)
		}
		synctest.Wait()
		if d := a.Check(attacker, Dispatch); d.Verdict != Blocked || d.Reason != ReasonInvalidTicket {
			t.Fatalf("dispatcher, edge's block: %+v", d)
		}
		time.Sleep(10 * time.Minute)
		for _, g := range []*Guard{a, b} {
			if d := g.Check(attacker, Connect); !d.Allowed() {
				t.Fatalf("%s after the block ran out: %+v", g.cfg.Node, d)
			}
		}
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestPublishRetry: while the store fails, a block is enforced locally and retried; a block lifted before it
// could be published never reaches the store.
func TestPublishRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &failingStore{}
		store.broken.Store(true)
		log := &eventLog{}
		g, err := New(Config{Store: store, BadThreshold: 1, Events: log.add})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- g.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()

		other := victim
		g.Bad(attacker, ReasonBadRequest)
		g.Bad(other, ReasonBadRequest)
		synctest.Wait()
		if evs := log.of(EventPublishFailed); len(evs) != 1 || evs[0].Reason != "error" || evs[0].Prefix != g.Key(attacker) {
			t.Fatalf("publish_failed events %+v", evs)
		}
		if d := g.Check(attacker, Dispatch); d.Verdict != Blocked {
			t.Fatalf("unpublished block not enforced: %+v", d)
		}
		// The second block waits behind the first; each second, one try.
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if n := store.puts.Load(); n != 1+3 {
			t.Fatalf("%d PutBlock calls, want 4 (1 + 1 retry a second)", n)
		}
		if len(log.of(EventPublishFailed)) != 1 {
			t.Fatal("retries produced more events")
		}
		// Lift one while the bus is down (the store error is returned; the local block is gone), then repair.
		if err := g.Unblock(ctx, other); err == nil {
			t.Fatal("Unblock with the store down: no error")
		}
		store.broken.Store(false)
		time.Sleep(time.Second)
		synctest.Wait()
		if _, ok := store.Blocked(g.Key(attacker)); !ok {
			t.Fatal("the block was not published after the store came back")
		}
		if _, ok := store.Blocked(g.Key(other)); ok {
			t.Fatal("a block lifted before publication reached the store")
		}
		if d := g.Check(attacker, Dispatch); d.Verdict != Blocked {
			t.Fatalf("published block: %+v", d)
		}
		if n := store.puts.Load(); n != 5 {
			t.Fatalf("%d PutBlock calls, want 5 (the lifted block is not put)", n)
		}
		time.Sleep(5 * time.Second)
		if n := store.puts.Load(); n != 5 {
			t.Fatal("published blocks are retried")
		}
	})
}

// TestRunSweepsAndSummarizes checks Run's timers.
func TestRunSweepsAndSummarizes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := &eventLog{}
		g, err := New(Config{Dispatch: Limit{Rate: 1, Burst: 1}, Events: log.add})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- g.Run(ctx) }()
		for range 5 {
			g.Check(attacker, Dispatch)
		}
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if len(log.of(EventRateLimited)) != 0 {
			t.Fatal("summary before SummaryInterval")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if s := log.of(EventRateLimited); len(s) != 1 || s[0].Count != 4 {
			t.Fatalf("summaries %+v", s)
		}
		if g.Tracked() != 1 {
			t.Fatal("swept early")
		}
		time.Sleep(50 * time.Second)
		synctest.Wait()
		if g.Tracked() != 0 {
			t.Fatalf("%d keys after a sweep, want 0", g.Tracked())
		}
		// The last summary is reported on shutdown.
		g.Check(attacker, Dispatch)
		g.Check(attacker, Dispatch)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if s := log.of(EventRateLimited); len(s) != 2 || s[1].Count != 1 {
			t.Fatalf("summaries %+v", s)
		}
	})
}
