package ticket

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"
)

func keyPair(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func TestVerify(t *testing.T) {
	pub, priv := keyPair(t)
	_, other := keyPair(t)
	now := time.Unix(1_800_000_000, 0)
	tk := Ticket{KID: "d1", AppID: "app", Channel: "c", UID: "7", Region: "eu", Edges: []string{"e1", "e2", "e3"},
		IssuedAt: now.Unix(), Expires: now.Add(time.Hour).Unix()}
	good, err := Sign(tk, priv)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := Sign(tk, other)
	var keys Keys
	keys.Set("d1", pub)
	want := Want{Edge: "e2", AppID: "app", Channel: "c", UID: "7", Now: now}
	if got, err := keys.Verify(good, want); err != nil || got.Region != "eu" || len(got.Edges) != 3 {
		t.Fatalf("Verify = %+v %v", got, err)
	}
	mod := func(f func(*Want)) Want { w := want; f(&w); return w }
	tampered := good[:10] + string(good[10]^1) + good[11:]
	for name, tc := range map[string]struct {
		s   string
		w   Want
		err error
	}{
		"other edge":    {good, mod(func(w *Want) { w.Edge = "e9" }), ErrNotForUs},
		"other uid":     {good, mod(func(w *Want) { w.UID = "8" }), ErrMismatch},
		"other channel": {good, mod(func(w *Want) { w.Channel = "d" }), ErrMismatch},
		"expired":       {good, mod(func(w *Want) { w.Now = now.Add(time.Hour) }), ErrExpired},
		"forged":        {forged, want, ErrSignature},
		"tampered":      {tampered, want, nil}, // any error will do: malformed or bad signature
		"no signature":  {strings.Split(good, ".")[0], want, ErrMalformed},
		"too long":      {strings.Repeat("A", MaxLength+1), want, ErrMalformed},
		"empty":         {"", want, ErrMalformed},
	} {
		_, err := keys.Verify(tc.s, tc.w)
		if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) {
			t.Errorf("%s: Verify = %v, want %v", name, err, tc.err)
		}
	}
	keys.Set("d1", nil)
	if _, err := keys.Verify(good, want); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("removed key: %v", err)
	}
}

// A key the set does not hold is asked of Fetch (a dispatcher's key not yet delivered to the edge), used for that
// ticket only, and a forged ticket is refused with the fetched key as with a held one.
func TestVerifyFetch(t *testing.T) {
	pub, priv := keyPair(t)
	_, other := keyPair(t)
	now := time.Unix(1_800_000_000, 0)
	tk := Ticket{KID: "d2", AppID: "app", Channel: "c", UID: "7", Edges: []string{"e1"}, Expires: now.Add(time.Hour).Unix()}
	good, _ := Sign(tk, priv)
	forged, _ := Sign(tk, other)
	var asked []string
	keys := Keys{Fetch: func(kid string) ed25519.PublicKey {
		asked = append(asked, kid)
		if kid == "d2" {
			return pub
		}
		return nil
	}}
	want := Want{Edge: "e1", AppID: "app", Channel: "c", UID: "7", Now: now}
	if _, err := keys.Verify(good, want); err != nil {
		t.Fatalf("ticket of a fetched key: %v", err)
	}
	if _, err := keys.Verify(forged, want); !errors.Is(err, ErrSignature) {
		t.Errorf("forged ticket with a fetched key: %v", err)
	}
	tk.KID = "d3"
	unknown, _ := Sign(tk, priv)
	if _, err := keys.Verify(unknown, want); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("a key Fetch does not know: %v", err)
	}
	if keys.get("d2") != nil || strings.Join(asked, ",") != "d2,d2,d3" {
		t.Errorf("fetched keys kept, or asked %v", asked)
	}
	keys.Set("d2", pub)
	asked = nil
	if _, err := keys.Verify(good, want); err != nil || asked != nil {
		t.Errorf("a held key: %v, asked %v", err, asked)
	}
}

func FuzzParse(f *testing.F) {
	_, priv := keyPair(f)
	s, _ := Sign(Ticket{KID: "d", AppID: "a", Channel: "c", UID: "u", Edges: []string{"e"}, Expires: 1}, priv)
	f.Add(s)
	f.Add("a.b")
	f.Fuzz(func(t *testing.T, s string) {
		tk, payload, sig, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if len(sig) != ed25519.SignatureSize || len(payload) == 0 || tk.KID == "" {
			t.Fatalf("accepted %+v", tk)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	pub, priv := keyPair(b)
	now := time.Unix(1_800_000_000, 0)
	s, _ := Sign(Ticket{KID: "d1", AppID: "app", Channel: "c", UID: "7", Edges: []string{"e1", "e2", "e3"}, Expires: now.Unix() + 60}, priv)
	var keys Keys
	keys.Set("d1", pub)
	w := Want{Edge: "e3", AppID: "app", Channel: "c", UID: "7", Now: now}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := keys.Verify(s, w); err != nil {
			b.Fatal(err)
		}
	}
}
