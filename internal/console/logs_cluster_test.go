package console

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/clustertest"
	"github.com/stoa-rtc/stoa/internal/edge"
)

// TestLogsEndToEnd: an edge event published on a real (embedded) bus reaches the logs API through RunIngest.
func TestLogsEndToEnd(t *testing.T) {
	srv := clustertest.NewServer(t)
	cfg := cluster.Default()
	cfg.URLs = []string{srv.URL()}
	cfg.Region = "eu"
	cfg.Node = "console-1"
	cfg.Prefix = clustertest.Prefix(t)
	cfg.EventMaxBytes = 8 << 20
	sctx, scancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer scancel()
	c, err := cluster.Start(sctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer c.Close()

	e := newEnv(t, filepath.Join(t.TempDir(), "stoa.db"))
	alice := e.signup("alice@example.com")
	id, appID, _ := alice.createProject()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.cs.RunIngest(ctx, c) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunIngest: %v", err)
		}
	}()

	ev := edge.Event{Time: time.Now().UTC(), Type: edge.EventJoin, Edge: "edge-1", Region: "eu", AppID: appID,
		Channel: "live", UID: "99", IP: "2001:db8::1", UserAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)"}
	if err := c.PublishEvent(ctx, "eu", string(ev.Type), ev); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, func() error {
		got := items(alice.must(200, "GET", "/api/v1/projects/"+id+"/logs?channel=live", nil))
		if len(got) != 1 {
			return errorf(500, "wait", "%d entries", len(got))
		}
		if got[0]["uid"] != "99" || got[0]["os"] != "macOS" || got[0]["ip"] != "2001:db8::1" {
			t.Fatalf("entry %v", got[0])
		}
		return nil
	})
}
