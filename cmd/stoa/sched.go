package main

import (
	"flag"
	"os"
	"strings"

	"github.com/stoa-rtc/stoa/internal/cluster"
	"github.com/stoa-rtc/stoa/internal/dispatch"
)

// registerMaxSessions declares --max-sessions: the joined sessions at which an edge is full.
func registerMaxSessions(fs *flag.FlagSet, n *int) {
	fs.IntVar(n, "max-sessions", 2000, "joined sessions at which an edge is full (load 1): dispatchers send it no new client from 90% on")
}

func checkMaxSessions(n int) error {
	if n < 1 {
		return usagef("--max-sessions must be at least 1, not %d", n)
	}
	return nil
}

// loadRegionMap reads the --region-map file; "" is no map.
func loadRegionMap(path string) (*dispatch.RegionMap, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("--region-map: %v", err)
	}
	m, err := dispatch.ParseRegionMap(b)
	if err != nil {
		return nil, usagef("--region-map %s: %v", path, err)
	}
	return m, nil
}

// parseRegionList reads a comma-separated list of region names ("eu,us"); "" is none.
func parseRegionList(flagName, s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	for _, r := range strings.Split(s, ",") {
		if err := checkRegion(flagName, strings.TrimSpace(r)); err != nil {
			return nil, err
		}
		out = append(out, strings.TrimSpace(r))
	}
	return out, nil
}

// checkRegion refuses a region name that no cluster accepts.
func checkRegion(flagName, r string) error {
	if !cluster.ValidRegion(r) {
		return usagef("%s: %q is not a region name (1-32 letters, digits, '-' or '_')", flagName, r)
	}
	return nil
}
