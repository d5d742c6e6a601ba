package cluster

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

// validKey is the key syntax of NATS KV (nats.go's keyValid): tokens of [-/_=a-zA-Z0-9] separated by single dots.
var validKey = regexp.MustCompile(`^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$`)

var hostileNames = []string{"", " ", ".", "..", "a.b", "a b", "*", ">", "a.*.>", "$KV.x.y", "=", "==", "_", "-",
	"ümlaut ✓", "\x00\xff", "tab\tnl\n", strings.Repeat("x", 1000), "::1", "fe80::1%eth0", "a/b\\c", "\"'`"}

func TestKeyTokens(t *testing.T) {
	for _, s := range hostileNames {
		tok := encodeToken(s)
		if !validKey.MatchString(tok) || strings.Contains(tok, ".") {
			t.Errorf("encodeToken(%q) = %q: not a single valid key token", s, tok)
		}
		back, err := decodeToken(tok)
		if err != nil || back != s {
			t.Errorf("decodeToken(encodeToken(%q)) = %q, %v", s, back, err)
		}
	}
	for _, parts := range [][]string{{"", "", ""}, {"a.b", "c d", "e"}, {"*", ">", "."}} {
		key := joinKey(parts...)
		if !validKey.MatchString(key) {
			t.Errorf("joinKey(%q) = %q: invalid key", parts, key)
		}
		got, ok := splitKey(key, 3)
		if !ok || strings.Join(got, "|") != strings.Join(parts, "|") {
			t.Errorf("splitKey(joinKey(%q)) = %q, %v", parts, got, ok)
		}
		if _, ok := splitKey(key, 2); ok {
			t.Errorf("splitKey(%q, 2) accepted 3 parts", key)
		}
	}
	for _, bad := range []string{"", "a", "!!", "a b"} {
		if _, err := decodeToken(bad); err == nil {
			t.Errorf("decodeToken(%q) accepted", bad)
		}
	}
}

func TestIPKeys(t *testing.T) {
	for _, tc := range []struct{ in, canonical string }{
		{"127.0.0.2", "127.0.0.2"}, {"2001:db8::1", "2001:db8::1"}, {"::ffff:10.0.0.1", "10.0.0.1"},
		{"fe80::1%eth0", "fe80::1"}, {"::", "::"}, {"0.0.0.0", "0.0.0.0"},
	} {
		ip := netip.MustParseAddr(tc.in)
		key := ipKey(ip)
		if !validKey.MatchString(key) {
			t.Errorf("ipKey(%s) = %q: invalid key", tc.in, key)
		}
		back, ok := parseIPKey(key)
		if !ok || back.String() != tc.canonical {
			t.Errorf("parseIPKey(ipKey(%s)) = %s, %v; want %s", tc.in, back, ok, tc.canonical)
		}
	}
}

func TestValidName(t *testing.T) {
	for s, want := range map[string]bool{"eu": true, "us-east_1": true, "": false, "a.b": false, "a b": false,
		"*": false, ">": false, "ü": false, strings.Repeat("a", 32): true, strings.Repeat("a", 33): false} {
		if got := validName(s, 32); got != want {
			t.Errorf("validName(%q) = %v", s, got)
		}
	}
}

// FuzzKeyToken checks that any string becomes one valid key token that decodes back to it.
func FuzzKeyToken(f *testing.F) {
	for _, s := range hostileNames {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := encodeToken(s)
		if !validKey.MatchString(tok) || strings.Contains(tok, ".") {
			t.Fatalf("encodeToken(%q) = %q", s, tok)
		}
		back, err := decodeToken(tok)
		if err != nil || back != s {
			t.Fatalf("round trip of %q: %q, %v", s, back, err)
		}
		if k, ok := parseTokenKey(tok); !ok || k != s {
			t.Fatalf("parseTokenKey(%q) = %q, %v", tok, k, ok)
		}
	})
}
