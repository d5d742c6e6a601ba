package dispatch

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

const sampleMap = `# offices and clouds
10.0.0.0/8       eu
10.20.0.0/16     us   # a longer prefix wins
10.20.30.0/24	 ap
0.0.0.0/0        eu-west

2001:db8::/32    us
2001:db8:1::/48  ap
`

func TestRegionMapLookup(t *testing.T) {
	m, err := ParseRegionMap([]byte(sampleMap))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ ip, want string }{
		{"10.1.2.3", "eu"},
		{"10.20.1.2", "us"},
		{"10.20.30.4", "ap"},
		{"10.20.31.4", "us"},
		{"192.0.2.1", "eu-west"},
		{"::ffff:10.20.30.4", "ap"}, // an IPv4 client seen on an IPv6 socket
		{"2001:db8::1", "us"},
		{"2001:db8:1::1", "ap"},
		{"2001:db8:1::1%eth0", "ap"},
		{"2001:db9::1", ""},
	} {
		if got := m.Lookup(netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("Lookup(%s) = %q, want %q", c.ip, got, c.want)
		}
	}
	if got := m.Lookup(netip.Addr{}); got != "" {
		t.Errorf("Lookup(zero) = %q", got)
	}
	if got := m.Regions(); !slices.Equal(got, []string{"ap", "eu", "eu-west", "us"}) {
		t.Errorf("Regions = %q", got)
	}
	empty, err := ParseRegionMap([]byte("# nothing yet\n\n"))
	if err != nil || empty.Lookup(netip.MustParseAddr("10.0.0.1")) != "" || len(empty.Regions()) != 0 {
		t.Errorf("empty map: %v %v", empty, err)
	}
}

// Every bad line is reported, with its number.
func TestRegionMapErrors(t *testing.T) {
	in := strings.Join([]string{
		"10.0.0.0/8 eu",          // 1: fine
		"10.0.0.0/8",             // 2: no region
		"10.0.0.0/8 eu us",       // 3: three fields
		"10.0.0.300/8 eu",        // 4: not a CIDR
		"10.0.0.1 eu",            // 5: a bare address
		"10.0.0.1/8 eu",          // 6: host bits
		"::ffff:10.0.0.0/104 eu", // 7: IPv4-mapped
		"192.0.2.0/24 eu.west",   // 8: bad region
		"10.0.0.0/8 us",          // 9: duplicate
		"  # fine",               // 10
		"2001:db8::/32 ap",       // 11: fine
	}, "\n")
	_, err := ParseRegionMap([]byte(in))
	var me *MapError
	if !errors.As(err, &me) {
		t.Fatalf("err = %v", err)
	}
	var lines []int
	for _, l := range me.Lines {
		lines = append(lines, l.Line)
	}
	if want := []int{2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(lines, want) {
		t.Errorf("bad lines %v, want %v:\n%v", lines, want, err)
	}
	for _, want := range []string{"line 6: 10.0.0.1/8 has bits set past /8 (did you mean 10.0.0.0/8?)",
		"line 9: 10.0.0.0/8 is already mapped on line 1", `line 8: "eu.west" is not a region name`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func FuzzParseRegionMap(f *testing.F) {
	f.Add([]byte(sampleMap))
	f.Add([]byte("10.0.0.0/8 eu\n10.0.0.0/8 us\n"))
	f.Add([]byte("::/0 a\n0.0.0.0/0 b\n255.255.255.255/32 c\n"))
	f.Add([]byte("1.2.3.4/33 x\n::ffff:0:0/96 y\r\n#\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseRegionMap(data)
		if err != nil {
			var me *MapError
			if !errors.As(err, &me) || len(me.Lines) == 0 {
				t.Fatalf("error %v is not a *MapError with lines", err)
			}
			n := strings.Count(string(data), "\n") + 1
			for _, l := range me.Lines {
				if l.Line < 1 || l.Line > n {
					t.Fatalf("line %d of %d", l.Line, n)
				}
			}
			return
		}
		// Lookup agrees with a plain scan for the longest rule, at both ends of every rule and beyond them.
		var rules []netip.Prefix
		for _, tab := range []prefixTable{m.v4, m.v6} {
			for p, r := range tab.rules {
				rules = append(rules, p)
				if !slices.Contains(m.regions, r) {
					t.Fatalf("region %q of %s not in Regions %q", r, p, m.regions)
				}
			}
		}
		for _, p := range rules {
			for _, ip := range []netip.Addr{p.Addr(), lastAddr(p), lastAddr(p).Next(), p.Addr().Prev()} {
				if !ip.IsValid() {
					continue
				}
				want, bits := "", -1
				for _, q := range rules {
					if q.Contains(ip) && q.Bits() > bits {
						want, bits = ruleRegion(m, q), q.Bits()
					}
				}
				if got := m.Lookup(ip); got != want {
					t.Fatalf("Lookup(%s) = %q, want %q", ip, got, want)
				}
			}
		}
	})
}

func ruleRegion(m *RegionMap, p netip.Prefix) string {
	if p.Addr().Is4() {
		return m.v4.rules[p]
	}
	return m.v6.rules[p]
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
