package cluster

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Every decoder of what other nodes write to the bus is fuzzed: bad input gets an error, never a panic nor a
// value that breaks the decoder's promises, and what the writing side encodes decodes back to itself.

// FuzzKeys: any key either is refused by a parser or is exactly the key the matching encoder writes for what it
// parsed (no two keys for one entry).
func FuzzKeys(f *testing.F) {
	for _, s := range []string{"", "=", "QQ", "QR", "YQ.Yg.Yw", "drain.ZTE", "MS4yLjMuNA", "OjpmZmZmOjEuMi4zLjQ", "a..b", "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if s, ok := parseTokenKey(key); ok && encodeToken(s) != key {
			t.Fatalf("parseTokenKey(%q) = %q, which encodes to %q", key, s, encodeToken(s))
		}
		if p, ok := parsePlacementKey(key); ok && joinKey(p.app, p.channel, p.edge) != key {
			t.Fatalf("parsePlacementKey(%q) = %+v, which encodes to %q", key, p, joinKey(p.app, p.channel, p.edge))
		}
		if id, ok := parseDrainKey(key); ok && drainPrefix+encodeToken(id) != key {
			t.Fatalf("parseDrainKey(%q) = %q", key, id)
		}
		if ip, ok := parseIPKey(key); ok && (ipKey(ip) != key || ip != canonicalIP(ip)) {
			t.Fatalf("parseIPKey(%q) = %v, whose key is %q", key, ip, ipKey(ip))
		}
	})
}

// FuzzDecodeEdge: a decoded heartbeat is valid and stored under its id; a valid heartbeat round-trips.
func FuzzDecodeEdge(f *testing.F) {
	f.Add("e1", []byte(`{"id":"e1","region":"eu","url":"wss://e1/v1/signal","load":0.5,"sessions":3}`), "eu", "wss://x", 0.25, 7, true)
	f.Add("e1", []byte(`{"id":"e1","region":"eu","load":7,"sessions":-1}`), "e u", "", math.NaN(), -1, false)
	f.Add("", []byte(`{}`), "", "", 0.0, 0, false)
	f.Fuzz(func(t *testing.T, id string, data []byte, region, url string, load float64, sessions int, draining bool) {
		if e, err := decodeEdge(id, data); err == nil && (e.ID != id || e.validate() != nil) {
			t.Fatalf("decodeEdge(%q, %q) = %+v without an error", id, data, e)
		}
		e := EdgeInfo{ID: id, Region: region, URL: url, Load: load, Sessions: sessions, Draining: draining,
			Updated: time.Unix(1767225600, 123).UTC()}
		if e.validate() != nil {
			return
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := decodeEdge(id, b); err != nil || !reflect.DeepEqual(got, e) {
			t.Fatalf("round trip of %+v: %+v, %v", e, got, err)
		}
	})
}

// FuzzDecodeProject: a decoded project is valid and stored under its App ID, and with trusted keys it carries
// a signature by one of them; a signed project round-trips, and the same bytes under another key are refused.
func FuzzDecodeProject(f *testing.F) {
	f.Add("app", []byte(`{"app_id":"app","certificates":["c"],"enabled":true}`), "c1", "c2", true)
	f.Add("app", []byte(`{"app_id":"app","certificates":[],"signature":"AAAA"}`), "", "", false)
	f.Add("", []byte(`null`), "x", "", false)
	seed := make([]byte, ed25519.SeedSize)
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	seed[0] = 1
	other := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	trusting := decodeProject([]ed25519.PublicKey{pub}, nil)
	f.Fuzz(func(t *testing.T, appID string, data []byte, cert1, cert2 string, enabled bool) {
		for _, dec := range []func(string, []byte) (Project, error){decodeProject(nil, nil), trusting} {
			if p, err := dec(appID, data); err == nil && (p.AppID != appID || p.validate() != nil) {
				t.Fatalf("decoded %+v from %q without an error", p, data)
			}
		}
		if p, err := trusting(appID, data); err == nil && !p.signedBy([]ed25519.PublicKey{pub}) {
			t.Fatalf("an unsigned project accepted: %+v", p)
		}
		p := Project{AppID: appID, Version: 1, Certificates: []string{cert1}, Enabled: enabled, Updated: time.Unix(1767225600, 0).UTC()}
		if cert2 != "" {
			p.Certificates = append(p.Certificates, cert2)
		}
		if p.validate() != nil || !utf8.ValidString(appID) || !utf8.ValidString(cert1) || !utf8.ValidString(cert2) {
			return // JSON cannot carry invalid UTF-8: PutProject's record would not match its signature
		}
		p.Signature = ed25519.Sign(priv, p.signedBytes())
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := trusting(appID, b); err != nil || !reflect.DeepEqual(got, p) {
			t.Fatalf("round trip of %+v: %+v, %v", p, got, err)
		}
		if _, err := decodeProject([]ed25519.PublicKey{other}, nil)(appID, b); err == nil {
			t.Fatal("a project signed by another key accepted")
		}
	})
}

// FuzzDecodeBlock: a decoded block is of the address its key names; a block as PutBlock writes it round-trips.
func FuzzDecodeBlock(f *testing.F) {
	f.Add(ipKey(netip.MustParseAddr("1.2.3.4")), []byte(`{"ip":"1.2.3.4","region":"eu","until":"2026-01-01T00:00:00Z"}`), []byte{1, 2, 3, 4}, "20 bad tokens", "d1")
	f.Add(encodeToken("::ffff:1.2.3.4"), []byte(`{"ip":"::ffff:1.2.3.4"}`), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4}, "", "")
	f.Fuzz(func(t *testing.T, key string, data, addr []byte, reason, by string) {
		if ip, ok := parseIPKey(key); ok {
			if b, err := decodeBlock(ip, data); err == nil && b.IP != ip {
				t.Fatalf("block of %v under the key of %v", b.IP, ip)
			}
		}
		ip, ok := netip.AddrFromSlice(addr)
		if !ok {
			return
		}
		ip = canonicalIP(ip)
		b := Block{IP: ip, Region: "eu", Until: time.Unix(1767225600, 0).UTC(), Reason: reason, By: by}
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		back, ok := parseIPKey(ipKey(ip))
		if !ok || back != ip {
			t.Fatalf("key of %v parses to %v, %v", ip, back, ok)
		}
		got, err := decodeBlock(back, data)
		// JSON keeps strings valid UTF-8 (each invalid byte becomes U+FFFD): compare with what it could carry.
		want := b
		want.Reason, want.By = viaJSON(t, reason), viaJSON(t, by)
		if err != nil || got != want {
			t.Fatalf("round trip of %+v: %+v, %v", want, got, err)
		}
	})
}

// FuzzDecodePlacement: a decoded placement matches its key and region; an announcement round-trips.
func FuzzDecodePlacement(f *testing.F) {
	f.Add("YQ.Yg.Yw", []byte(`{"region":"eu","app_id":"a","channel":"b","edge":"c"}`), "app", "ch.an nel", "e1")
	f.Add("=.=.=", []byte(`{"region":"eu"}`), "", "", "")
	dec := decodePlacement("eu")
	f.Fuzz(func(t *testing.T, key string, data []byte, app, channel, edge string) {
		if k, ok := parsePlacementKey(key); ok {
			if p, err := dec(k, data); err == nil && (p.AppID != k.app || p.Channel != k.channel || p.EdgeID != k.edge || p.Region != "eu") {
				t.Fatalf("placement %+v under key %+v", p, k)
			}
		}
		p := Placement{Region: "eu", AppID: app, Channel: channel, EdgeID: edge, Announced: time.Unix(1767225600, 0).UTC()}
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		k, ok := parsePlacementKey(p.key())
		if !ok {
			t.Fatalf("key %q of %+v does not parse", p.key(), p)
		}
		got, err := dec(k, data)
		if !utf8.ValidString(app) || !utf8.ValidString(channel) || !utf8.ValidString(edge) { // each: two halves of a rune make one
			return // JSON cannot carry invalid UTF-8: the record no longer matches its key, and is refused
		}
		if err != nil || got != p {
			t.Fatalf("round trip of %+v: %+v, %v", p, got, err)
		}
	})
}

// fakeMsg is a stored event as a consumer receives it.
type fakeMsg struct {
	jetstream.Msg
	subject string
	data    []byte
	header  nats.Header
	md      *jetstream.MsgMetadata
}

func (m *fakeMsg) Subject() string      { return m.subject }
func (m *fakeMsg) Data() []byte         { return m.data }
func (m *fakeMsg) Headers() nats.Header { return m.header }
func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	if m.md == nil {
		return nil, errors.New("no metadata")
	}
	return m.md, nil
}

// FuzzDecodeEvent: a decoded event has a region and a type from its subject and JSON data; an event as
// PublishEvent sends it round-trips.
func FuzzDecodeEvent(f *testing.F) {
	f.Add("stoa.events.eu.join", []byte(`{"a":1}`), "eu", "join", "edge-1", []byte(`{"uid":"1"}`))
	f.Add("stoa.events.eu", []byte(`{`), "e.u", "", "", []byte(`x`))
	f.Add("other.eu.join", []byte(`1`), "eu", "leave", "\x00", []byte(`null`))
	const prefix = "stoa.events."
	md := &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: 7}, Timestamp: time.Unix(1767225600, 0).UTC()}
	f.Fuzz(func(t *testing.T, subject string, data []byte, region, typ, node string, payload []byte) {
		ev, err := decodeEvent(&fakeMsg{subject: subject, data: data, header: nats.Header{}, md: md}, prefix)
		if err == nil && (!strings.HasPrefix(subject, prefix) || ev.Region == "" && ev.Type == "" || !json.Valid(ev.Data) || ev.Seq != 7) {
			t.Fatalf("decoded %+v from %q %q", ev, subject, data)
		}
		if !validName(region, 32) || !validName(typ, 64) || !json.Valid(payload) {
			return
		}
		h := nats.Header{}
		h.Set(nodeHeader, node)
		ev, err = decodeEvent(&fakeMsg{subject: prefix + region + "." + typ, data: payload, header: h, md: md}, prefix)
		if err != nil || ev.Region != region || ev.Type != typ || ev.Node != h.Get(nodeHeader) || string(ev.Data) != string(payload) ||
			!ev.Time.Equal(md.Timestamp) {
			t.Fatalf("round trip of %s.%s %q: %+v, %v", region, typ, payload, ev, err)
		}
	})
}

// viaJSON returns s as it comes back from encoding/json, which writes each invalid UTF-8 byte as U+FFFD.
func viaJSON(t *testing.T, s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back string
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	return back
}
