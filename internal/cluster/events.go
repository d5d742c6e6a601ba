package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Events are JSON messages on subjects "<prefix>.events.<region>.<type>", stored in the stream "<prefix>_events"
// (bounded by EventMaxBytes and EventMaxAge, oldest discarded first) until the console ingests them. The header
// "Stoa-Node" names the publishing node.

// fetchWait is how long ConsumeEvents waits for events in one request.
const fetchWait = 500 * time.Millisecond

// nodeHeader names the node that published an event.
const nodeHeader = "Stoa-Node"

// Event is a stored event as a consumer receives it.
type Event struct {
	// Seq is the event's sequence number in the stream: increasing, unique, for de-duplication (delivery is at
	// least once).
	Seq uint64
	// Region and Type come from the subject.
	Region string
	// Type is the kind of event ("join", "leave", "block", ...).
	Type string
	// Node is the node that published it.
	Node string
	// Time is when the stream stored it.
	Time time.Time
	// Data is the JSON the publisher gave.
	Data json.RawMessage
}

// EventStats counts the events of this node.
type EventStats struct {
	// Published were stored by the stream.
	Published uint64
	// Dropped were refused by PublishEvent because its buffer was full (or the Cluster closed).
	Dropped uint64
	// Failed were sent but not stored (the bus was down, or the stream did not answer in time).
	Failed uint64
}

// EventStats returns the node's event counters.
func (c *Cluster) EventStats() EventStats {
	return EventStats{Published: c.evPublished.Load(), Dropped: c.evDropped.Load(), Failed: c.evFailed.Load()}
}

// PublishEvent queues v, encoded as JSON, as an event of type typ in region (empty: the node's), and returns
// without waiting for the bus: when the queue (EventBuffer) is full, the event is dropped and counted. It returns
// an error only for an invalid region or type, a value that does not encode, or a closed Cluster. ctx is not
// used beyond a check that it is not done.
func (c *Cluster) PublishEvent(ctx context.Context, region, typ string, v any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if region == "" {
		region = c.cfg.Region
	}
	if !validName(region, 32) || !validName(typ, 64) {
		return fmt.Errorf("cluster: event: bad region %q or type %q", region, typ)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cluster: event %s: %w", typ, err)
	}
	if err := c.writable(); err != nil {
		c.evDropped.Add(1)
		return err
	}
	m := nats.NewMsg(c.evSubjectPrefix + region + "." + typ)
	m.Header.Set(nodeHeader, c.cfg.Node)
	m.Data = data
	select {
	case c.events <- m:
	default:
		c.evDropped.Add(1)
	}
	return nil
}

// publishEvents sends queued events asynchronously (the client bounds the events awaiting an acknowledgement)
// until Close, then sends what is still queued and waits for the acknowledgements, for at most two seconds.
func (c *Cluster) publishEvents() {
	send := func(m *nats.Msg) {
		if _, err := c.js.PublishMsgAsync(m, jetstream.WithExpectStream(c.evStream)); err != nil {
			c.evFailed.Add(1)
		}
	}
	for {
		select {
		case m := <-c.events:
			send(m)
		case <-c.ctx.Done():
			deadline := time.NewTimer(2 * time.Second)
			defer deadline.Stop()
			for {
				select {
				case m := <-c.events:
					send(m)
					continue
				default:
				}
				break
			}
			if c.js.PublishAsyncPending() > 0 {
				select {
				case <-c.js.PublishAsyncComplete():
				case <-deadline.C:
				}
			}
			return
		}
	}
}

// ConsumeEvents delivers the stored events to fn one at a time, as ConsumeEventBatches does in batches of one.
func (c *Cluster) ConsumeEvents(ctx context.Context, durable string, fn func(Event) error) error {
	return c.ConsumeEventBatches(ctx, durable, 1, func(evs []Event) error { return fn(evs[0]) })
}

// ConsumeEventBatches delivers the stored events to fn, in order, in batches of at most max (whatever is waiting,
// so that a backlog is stored a batch per transaction while a lone event is not held back), through the durable
// consumer named durable, created if needed, from the oldest event the consumer has not had acknowledged: a
// consumer that stops and starts again under the same name resumes where it stopped. A batch is acknowledged
// when fn returns nil and offered again a second later when fn returns an error (delivery is at least once;
// Event.Seq tells duplicates). Calls of fn are serial. It returns nil when ctx is done or the Cluster closes; it
// rides out bus outages.
func (c *Cluster) ConsumeEventBatches(ctx context.Context, durable string, max int, fn func([]Event) error) error {
	if !validName(durable, 64) {
		return fmt.Errorf("cluster: consumer name %q: want 1-64 characters of [A-Za-z0-9_-]", durable)
	}
	if max < 1 || max > 1000 {
		return fmt.Errorf("cluster: batch size %d: want 1..1000", max)
	}
	return c.goTracked(func(cctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(cctx, cancel)
		defer stop()

		backoff := 100 * time.Millisecond
		retry := func(what string, err error) {
			if ctx.Err() == nil {
				c.log.Debug(what, "durable", durable, "err", err)
				sleepCtx(ctx, backoff)
				backoff = min(2*backoff, 5*time.Second)
			}
		}
		var cons jetstream.Consumer
		for ctx.Err() == nil {
			if cons == nil {
				var err error
				cons, err = c.js.CreateOrUpdateConsumer(ctx, c.evStream, jetstream.ConsumerConfig{
					Durable:       durable,
					Description:   "Stoa event ingestion",
					DeliverPolicy: jetstream.DeliverAllPolicy,
					AckPolicy:     jetstream.AckExplicitPolicy,
					AckWait:       30 * time.Second,
					MaxAckPending: 1000,
				})
				if err != nil {
					cons = nil
					retry("event consumer", err)
					continue
				}
			}
			// What is waiting, at once; when nothing is, wait for the next event. Neither fetch is cut short when
			// ctx ends: every message delivered is then handled or handed back (Nak), none is left waiting for
			// AckWait. So stopping takes up to fetchWait.
			msgs, err := fetchEvents(cons, max, 0)
			if err == nil && len(msgs) == 0 {
				msgs, err = fetchEvents(cons, 1, fetchWait)
			}
			if err != nil {
				for _, m := range msgs {
					_ = m.Nak()
				}
				if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
					cons = nil
				}
				retry("event fetch", err)
				continue
			}
			backoff = 100 * time.Millisecond
			if ctx.Err() != nil {
				for _, m := range msgs {
					_ = m.Nak() // offered again at once, to the next consumer of this name
				}
				continue
			}
			evs := make([]Event, 0, len(msgs))
			kept := msgs[:0]
			for _, m := range msgs {
				ev, err := decodeEvent(m, c.evSubjectPrefix)
				if err != nil {
					c.log.Warn("malformed event dropped", "subject", m.Subject(), "err", err)
					_ = m.Term()
					continue
				}
				evs, kept = append(evs, ev), append(kept, m)
			}
			if len(evs) == 0 {
				continue
			}
			if err := fn(evs); err != nil {
				for _, m := range kept {
					_ = m.NakWithDelay(time.Second)
				}
				continue
			}
			for _, m := range kept {
				_ = m.Ack()
			}
		}
		return nil
	})
}

// fetchEvents fetches up to n messages: those waiting when wait is 0, else the first n to arrive within wait.
// Running out of time is not an error.
func fetchEvents(cons jetstream.Consumer, n int, wait time.Duration) ([]jetstream.Msg, error) {
	var (
		batch jetstream.MessageBatch
		err   error
	)
	if wait == 0 {
		batch, err = cons.FetchNoWait(n)
	} else {
		fctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		batch, err = cons.Fetch(n, jetstream.FetchContext(fctx))
	}
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) &&
		!errors.Is(err, jetstream.ErrNoMessages) {
		return msgs, err
	}
	return msgs, nil
}

func decodeEvent(m jetstream.Msg, prefix string) (Event, error) {
	md, err := m.Metadata()
	if err != nil {
		return Event{}, err
	}
	rest, ok := strings.CutPrefix(m.Subject(), prefix)
	region, typ, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return Event{}, fmt.Errorf("subject %q", m.Subject())
	}
	data := m.Data()
	if !json.Valid(data) {
		return Event{}, errors.New("not JSON")
	}
	return Event{
		Seq:    md.Sequence.Stream,
		Region: region,
		Type:   typ,
		Node:   m.Headers().Get(nodeHeader),
		Time:   md.Timestamp,
		Data:   json.RawMessage(append([]byte(nil), data...)),
	}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
