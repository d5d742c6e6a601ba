package dispatch

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/stoa-rtc/stoa/internal/cluster"
)

// RegionMap places a client that names no region by its address: the region of the longest prefix holding the
// address, or none. It is read from a text file (stoa dispatch --region-map), one rule a line:
//
//	# comment
//	10.0.0.0/8      eu
//	10.20.0.0/16    us      # longest prefix wins: 10.20.1.2 is in us
//	2001:db8::/32   ap
//
// A line holds a CIDR range and a region name separated by spaces or tabs; '#' starts a comment; blank lines are
// ignored. IPv4 ranges are written as IPv4 and match IPv4 clients (and IPv4-mapped IPv6 ones); a range must not
// have bits set past its length, and each range appears once.
//
// A RegionMap is immutable once parsed and safe for concurrent use.
type RegionMap struct {
	v4, v6  prefixTable
	regions []string
}

// prefixTable finds the longest of a set of prefixes of one address family that holds an address.
type prefixTable struct {
	lengths []int // the prefix lengths in use, longest first
	rules   map[netip.Prefix]string
}

func (t *prefixTable) add(p netip.Prefix, region string) {
	if t.rules == nil {
		t.rules = map[netip.Prefix]string{}
	}
	t.rules[p] = region
	if !slices.Contains(t.lengths, p.Bits()) {
		t.lengths = append(t.lengths, p.Bits())
		slices.SortFunc(t.lengths, func(a, b int) int { return b - a })
	}
}

func (t *prefixTable) lookup(ip netip.Addr) string {
	for _, bits := range t.lengths {
		p, err := ip.Prefix(bits)
		if err != nil {
			continue
		}
		if r, ok := t.rules[p]; ok {
			return r
		}
	}
	return ""
}

// Lookup returns the region of ip, or "" when no range holds it.
func (m *RegionMap) Lookup(ip netip.Addr) string {
	ip = ip.Unmap().WithZone("")
	switch {
	case ip.Is4():
		return m.v4.lookup(ip)
	case ip.Is6():
		return m.v6.lookup(ip)
	}
	return ""
}

// Regions returns the regions the map names, sorted.
func (m *RegionMap) Regions() []string { return slices.Clone(m.regions) }

// MapError lists every bad line of a region map.
type MapError struct {
	Lines []LineError
}

// LineError is one bad line of a region map, numbered from 1.
type LineError struct {
	Line int
	Msg  string
}

func (e LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

func (e *MapError) Error() string {
	var b strings.Builder
	b.WriteString("dispatch: region map:")
	for _, l := range e.Lines {
		b.WriteString("\n  ")
		b.WriteString(l.Error())
	}
	return b.String()
}

// ParseRegionMap reads a region map (see RegionMap). It reports every bad line, each with its number, in a
// *MapError.
func ParseRegionMap(data []byte) (*RegionMap, error) {
	m := &RegionMap{}
	var bad MapError
	fail := func(line int, format string, a ...any) {
		bad.Lines = append(bad.Lines, LineError{line, fmt.Sprintf(format, a...)})
	}
	firstLine := map[netip.Prefix]int{}
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line, _, _ = strings.Cut(line, "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			fail(n, "want a CIDR range and a region, not %d fields", len(fields))
			continue
		}
		p, err := netip.ParsePrefix(fields[0])
		switch {
		case err != nil:
			fail(n, "%q is not a CIDR range (10.0.0.0/8, 2001:db8::/32)", shorten(fields[0]))
			continue
		case p.Addr().Is4In6():
			fail(n, "%s: write IPv4 ranges as IPv4", p)
			continue
		case p != p.Masked():
			fail(n, "%s has bits set past /%d (did you mean %s?)", p, p.Bits(), p.Masked())
			continue
		}
		region := fields[1]
		if !cluster.ValidRegion(region) {
			fail(n, "%q is not a region name (1-32 letters, digits, '-' or '_')", shorten(region))
			continue
		}
		if first, dup := firstLine[p]; dup {
			fail(n, "%s is already mapped on line %d", p, first)
			continue
		}
		firstLine[p] = n
		if p.Addr().Is4() {
			m.v4.add(p, region)
		} else {
			m.v6.add(p, region)
		}
		if !slices.Contains(m.regions, region) {
			m.regions = append(m.regions, region)
		}
	}
	if len(bad.Lines) > 0 {
		return nil, &bad
	}
	slices.Sort(m.regions)
	return m, nil
}

// shorten bounds a piece of a bad line quoted in an error.
func shorten(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}
