package cluster

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stoa-rtc/stoa/internal/ticket"
)

// DispatcherKey is the public half of the key a dispatcher signs edge tickets with.
type DispatcherKey struct {
	// ID names the dispatcher and its key (a ticket's "kid").
	ID string `json:"id"`
	// Region is the dispatcher's region.
	Region string `json:"region"`
	// PublicKey verifies the dispatcher's tickets.
	PublicKey ed25519.PublicKey `json:"public_key"`
	// Updated is when the dispatcher last announced the key.
	Updated time.Time `json:"updated"`
}

func decodeDispatcherKey(id string, data []byte) (DispatcherKey, error) {
	var k DispatcherKey
	if err := json.Unmarshal(data, &k); err != nil {
		return k, err
	}
	if k.ID != id {
		return k, fmt.Errorf("id %q stored under %q", k.ID, id)
	}
	if len(k.PublicKey) != ed25519.PublicKeySize {
		return k, fmt.Errorf("public key of %d bytes", len(k.PublicKey))
	}
	return k, nil
}

// PutDispatcherKey announces a dispatcher's public key. The entry expires DispatcherKeyTTL after the last
// announcement, so a dispatcher re-announces its key periodically (every few minutes is plenty).
func (c *Cluster) PutDispatcherKey(ctx context.Context, k DispatcherKey) error {
	if k.ID == "" || len(k.ID) > 256 {
		return errors.New("cluster: dispatcher key: id must have 1-256 bytes")
	}
	if len(k.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("cluster: dispatcher key %q: public key of %d bytes", k.ID, len(k.PublicKey))
	}
	if k.Region == "" {
		k.Region = c.cfg.Region
	}
	k.Updated = time.Now().UTC()
	v, err := c.sealed(kindDispatcherKey, k)
	if err != nil {
		return err
	}
	return c.put(ctx, c.dispatchersBucket, encodeToken(k.ID), v, c.cfg.DispatcherKeyTTL)
}

// DeleteDispatcherKey withdraws a dispatcher's key: its tickets stop verifying.
func (c *Cluster) DeleteDispatcherKey(ctx context.Context, id string) error {
	return c.remove(ctx, c.dispatchersBucket, encodeToken(id), true)
}

// DispatcherKey returns the local copy of a dispatcher's key. While the bus is down, the last known keys stay.
func (c *Cluster) DispatcherKey(id string) (DispatcherKey, bool) { return c.dkeys.get(id) }

// DispatcherKeys returns the local copies of all live dispatcher keys, ordered by id.
func (c *Cluster) DispatcherKeys() []DispatcherKey {
	var out []DispatcherKey
	c.dkeys.each(func(_ string, k DispatcherKey) bool { out = append(out, k); return true })
	slices.SortFunc(out, func(a, b DispatcherKey) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// OnDispatcherKey calls fn with every dispatcher key the node holds, then on every change (removed: the key was
// withdrawn or expired), until stop is called; see OnProject for the rules fn follows.
func (c *Cluster) OnDispatcherKey(fn func(k DispatcherKey, removed bool)) (stop func()) {
	return c.dkeys.listen(func(_ string, k DispatcherKey, ok bool) { fn(k, !ok) })
}

// SyncTicketKeys keeps keys equal to the live dispatcher keys. It returns once keys holds the current ones.
func (c *Cluster) SyncTicketKeys(keys *ticket.Keys) (stop func()) {
	return c.OnDispatcherKey(func(k DispatcherKey, removed bool) {
		if removed {
			keys.Set(k.ID, nil)
			return
		}
		keys.Set(k.ID, k.PublicKey)
	})
}

// FetchDispatcherKey returns a dispatcher's key from the local copy or, when the copy does not hold it, from the
// bucket itself (one direct read). A dispatcher signs tickets as soon as its key is written, and a client reaches
// an edge faster than the key's announcement may: an edge that refused such a ticket would push the client to
// another edge than its channel's. The key read is not added to the local copy, which the watch alone keeps in
// order (a read may be overtaken by the key's withdrawal); it answers this one question.
func (c *Cluster) FetchDispatcherKey(ctx context.Context, id string) (DispatcherKey, error) {
	if k, ok := c.dkeys.get(id); ok {
		return k, nil
	}
	kv, err := c.js.KeyValue(ctx, c.dispatchersBucket)
	if err != nil {
		return DispatcherKey{}, fmt.Errorf("cluster: dispatcher key: %w", err)
	}
	e, err := kv.Get(ctx, encodeToken(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return DispatcherKey{}, ErrNoDispatcherKey
	}
	if err != nil {
		return DispatcherKey{}, fmt.Errorf("cluster: dispatcher key: %w", err)
	}
	k, err := c.dkeys.decode(id, e.Value())
	if err != nil {
		return DispatcherKey{}, fmt.Errorf("cluster: dispatcher key %q: %w", id, err)
	}
	if ttl := c.cfg.DispatcherKeyTTL; ttl > 0 && time.Since(e.Created()) >= ttl {
		return DispatcherKey{}, ErrNoDispatcherKey // expired, its removal not yet seen
	}
	return k, nil
}

// ErrNoDispatcherKey is returned by FetchDispatcherKey for a dispatcher whose key is not in the cluster.
var ErrNoDispatcherKey = errors.New("cluster: no such dispatcher key")
