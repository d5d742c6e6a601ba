package cluster

import (
	"encoding/base64"
	"errors"
	"net/netip"
	"strings"
)

// NATS KV keys are NATS subjects restricted to [-/_=.a-zA-Z0-9], with '.' separating tokens. Names that come from
// outside (App IDs, channel names, edge and dispatcher ids, IP addresses) may hold any byte, so every such token is
// written as base64url without padding, whose alphabet [-_a-zA-Z0-9] is a subset of the key alphabet and never
// contains '.'. The empty string, which base64 would turn into an empty (invalid) token, is written as "=", a
// character that unpadded base64url never produces. Region names are validated instead (see validName) and appear
// as they are, in bucket names and subjects.

var b64 = base64.RawURLEncoding

// emptyToken stands for the empty string.
const emptyToken = "="

// encodeToken returns s as one KV key token.
func encodeToken(s string) string {
	if s == "" {
		return emptyToken
	}
	return b64.EncodeToString([]byte(s))
}

// decodeToken reverses encodeToken. It accepts only what encodeToken writes: base64 lets several texts decode to
// one value (the unused low bits of the last character), and two keys of one value would be two entries of a
// bucket that the local copies confuse (removing one would leave the other).
func decodeToken(t string) (string, error) {
	if t == emptyToken {
		return "", nil
	}
	if t == "" {
		return "", errors.New("cluster: empty key token")
	}
	b, err := b64.DecodeString(t)
	if err != nil {
		return "", err
	}
	if s := string(b); encodeToken(s) == t {
		return s, nil
	}
	return "", errors.New("cluster: key token not in canonical form")
}

// joinKey encodes each part and joins them into a key.
func joinKey(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(encodeToken(p))
	}
	return b.String()
}

// splitKey decodes a key made by joinKey from exactly n parts.
func splitKey(key string, n int) ([]string, bool) {
	toks := strings.Split(key, ".")
	if len(toks) != n {
		return nil, false
	}
	out := make([]string, n)
	for i, t := range toks {
		s, err := decodeToken(t)
		if err != nil {
			return nil, false
		}
		out[i] = s
	}
	return out, true
}

// ipKey is the key of an IP address: its canonical text (IPv4-mapped IPv6 addresses unmapped, zones dropped).
func ipKey(ip netip.Addr) string { return encodeToken(canonicalIP(ip).String()) }

func canonicalIP(ip netip.Addr) netip.Addr { return ip.Unmap().WithZone("") }

// parseIPKey reads a key written by ipKey, and only such a key: an address in another form (IPv4-mapped, with a
// zone, upper case) is not the key of any block.
func parseIPKey(key string) (netip.Addr, bool) {
	s, err := decodeToken(key)
	if err != nil {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ipKey(ip) != key {
		return netip.Addr{}, false
	}
	return ip, true
}

// ValidRegion reports whether s may name a region: 1 to 32 letters, digits, '-' or '_'.
func ValidRegion(s string) bool { return validName(s, 32) }

// validName reports whether s may be used as a region, a prefix or an event type: it appears verbatim in bucket
// and stream names ([A-Za-z0-9_-]) and in subjects.
func validName(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}
