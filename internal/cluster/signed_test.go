package cluster

import (
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stoa-rtc/stoa/internal/busauth"
)

// FuzzOpenedEdge: the reader of signed heartbeats never panics, and accepts a value only when it is a genuine
// edge-a heartbeat of region eu: the one signed seed, byte for byte in its record.
func FuzzOpenedEdge(f *testing.F) {
	auth, err := busauth.New()
	if err != nil {
		f.Fatal(err)
	}
	creds, err := auth.Issue(busauth.Identity{Role: busauth.RoleEdge, Regions: []string{"eu"}, ID: "edge-a"}, "stoa")
	if err != nil {
		f.Fatal(err)
	}
	c := &Cluster{cfg: Config{Credentials: creds}, log: slog.New(slog.DiscardHandler)}
	if err := c.loadCredentials(); err != nil {
		f.Fatal(err)
	}
	genuine, err := c.sealed(kindEdge, EdgeInfo{ID: "edge-a", Region: "eu", URL: "wss://a"})
	if err != nil {
		f.Fatal(err)
	}
	var want envelope
	if err := json.Unmarshal(genuine, &want); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(genuine))
	f.Add([]byte(`{"record":{"id":"edge-a","region":"eu"}}`))
	f.Add([]byte(`{"id":"edge-a"}`))
	decode := opened(c, kindEdge, "eu", decodeEdge)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decode("edge-a", data)
		if err != nil {
			return
		}
		var got envelope
		if json.Unmarshal(data, &got) != nil || string(got.Record) != string(want.Record) || e.ID != "edge-a" {
			t.Fatalf("accepted %q", data)
		}
	})
}
