package dispatch

import "testing"

// TestRendezvousGolden pins rendezvous: every dispatcher of a network, whatever its version, must rank a channel's
// edges alike, or the participants of a channel meet on different edges during a rolling upgrade. A change here is
// a protocol change. The values were checked against an independent implementation of the documented function
// (FNV-1a over the length-prefixed fields, then the splitmix64 finalizer). "a"/"bc" and "ab"/"c" differ only in
// where the field boundary lies: the length prefixes tell them apart.
func TestRendezvousGolden(t *testing.T) {
	for _, c := range []struct {
		app, channel, edge string
		want               uint64
	}{
		{"", "", "", 0xea84b5f3461f8f55},
		{"0123456789abcdef0123456789abcdef", "room", "eu-1", 0xf939da5d32860c53},
		{"0123456789abcdef0123456789abcdef", "room", "eu-2", 0xc20ab417b72be7a5},
		{"a", "bc", "d", 0x2951efe185a7514b},
		{"ab", "c", "d", 0xa6e7a5e576074e56},
		{"970ca35de60c44645bbae8a215061b33", "canal ü", "edge.us-east:3", 0xd6491fe5eb212987},
	} {
		if got := Rendezvous(c.app, c.channel, c.edge); got != c.want {
			t.Errorf("Rendezvous(%q, %q, %q) = %#x, want %#x", c.app, c.channel, c.edge, got, c.want)
		}
	}
}
