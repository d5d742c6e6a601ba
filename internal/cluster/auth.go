package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stoa-rtc/stoa/internal/busauth"
)

// administers reports whether this node may create and update the buckets and the stream: the console, or any
// node on a bus without Stoa credentials. Edges and dispatchers only create what is missing (busauth.Permissions
// allows them nothing more), so that no node but the console can change a bucket's limits.
func (c *Cluster) administers() bool {
	if c.creds == nil {
		return true
	}
	id, ok := c.creds.Identity()
	return !ok || id.Role == busauth.RoleConsole
}

// createMissingBucket creates the bucket kc if it does not exist, and otherwise leaves it as it is.
func (c *Cluster) createMissingBucket(ctx context.Context, kc jetstream.KeyValueConfig) error {
	_, err := c.js.KeyValue(ctx, kc.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		if _, err = c.js.CreateKeyValue(ctx, kc); errors.Is(err, jetstream.ErrBucketExists) {
			err = nil // created meanwhile by another node
		}
	}
	if err != nil {
		return fmt.Errorf("cluster: bucket %s: %w", kc.Bucket, err)
	}
	return nil
}

// createMissingStream creates the stream sc if it does not exist, and otherwise leaves it as it is.
func (c *Cluster) createMissingStream(ctx context.Context, sc jetstream.StreamConfig) error {
	_, err := c.js.Stream(ctx, sc.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err = c.js.CreateStream(ctx, sc); errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("cluster: stream %s: %w", sc.Name, err)
	}
	return nil
}
