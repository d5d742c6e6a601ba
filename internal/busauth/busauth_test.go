package busauth

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

func mustAuthority(t *testing.T) *Authority {
	t.Helper()
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustCreds(t *testing.T, a *Authority, id Identity) *Credentials {
	t.Helper()
	b, err := a.Issue(id, "stoa")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCredentials(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIdentityRoundTrip(t *testing.T) {
	for _, id := range []Identity{
		{Role: RoleConsole},
		{Role: RoleEdge, Regions: []string{"eu"}, ID: "edge-1"},
		{Role: RoleEdge, Regions: []string{"eu", "us"}, AnyID: true},
		{Role: RoleDispatch, Regions: []string{"eu"}, ID: "a:b,c*d ."},
	} {
		got, err := ParseIdentity(id.String())
		if err != nil || got.String() != id.String() || got.ID != id.ID || got.AnyID != id.AnyID {
			t.Errorf("%+v → %q → %+v, %v", id, id.String(), got, err)
		}
	}
	for _, bad := range []Identity{
		{Role: "admin"},
		{Role: RoleEdge, ID: "x"},
		{Role: RoleEdge, Regions: []string{"e.u"}, ID: "x"},
		{Role: RoleEdge, Regions: []string{"eu"}},
		{Role: RoleConsole, Regions: []string{"eu"}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v validated", bad)
		}
	}
}

func FuzzParseIdentity(f *testing.F) {
	f.Add("stoa:edge:eu,us:ZWRnZS0x")
	f.Add("stoa:console::")
	f.Add("stoa:dispatch:eu:*")
	f.Add("stoa:edge:eu:=")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseIdentity(s)
		if err != nil {
			return
		}
		if id.String() != s || id.Validate() != nil {
			t.Fatalf("%q parsed as %+v, printed %q", s, id, id.String())
		}
	})
}

func FuzzParseCredentials(f *testing.F) {
	a, _ := New()
	b, _ := a.Issue(Identity{Role: RoleEdge, Regions: []string{"eu"}, ID: "e"}, "stoa")
	f.Add(b)
	f.Add([]byte("-----BEGIN NATS USER JWT-----\nx\n------END NATS USER JWT------\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCredentials(b)
		if err == nil && (c.JWT() == "" || c.Account() == "") {
			t.Fatal("credentials without a JWT or account")
		}
	})
}

// TestVerifier: a record verifies only when signed by the key of a JWT issued by a trusted account, unexpired,
// for the same kind and bytes.
func TestVerifier(t *testing.T) {
	a, other := mustAuthority(t), mustAuthority(t)
	id := Identity{Role: RoleEdge, Regions: []string{"eu"}, ID: "edge-1"}
	c := mustCreds(t, a, id)
	v := NewVerifier(a.Account())
	now := time.Now().Unix()
	msg := []byte(`{"id":"edge-1"}`)
	sig := c.Sign("edge", msg)
	if got, err := v.Verify(c.JWT(), "edge", msg, sig, now); err != nil || !got.Allows(RoleEdge, "eu", "edge-1") {
		t.Fatalf("genuine record: %+v %v", got, err)
	}
	foreign := mustCreds(t, other, id)
	expired := expiredCreds(t, a, id)
	for name, tc := range map[string]struct {
		tok, kind string
		msg, sig  []byte
	}{
		"other kind":      {c.JWT(), "block", msg, sig},
		"other bytes":     {c.JWT(), "edge", []byte(`{"id":"edge-2"}`), sig},
		"other account":   {foreign.JWT(), "edge", msg, foreign.Sign("edge", msg)},
		"copied JWT":      {c.JWT(), "edge", msg, foreign.Sign("edge", msg)},
		"expired":         {expired.JWT(), "edge", msg, expired.Sign("edge", msg)},
		"no JWT":          {"", "edge", msg, sig},
		"garbage JWT":     {"e30.e30.e30", "edge", msg, sig},
		"short signature": {c.JWT(), "edge", msg, sig[:10]},
	} {
		if _, err := v.Verify(tc.tok, tc.kind, tc.msg, tc.sig, now); !errors.Is(err, ErrUntrusted) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// expiredCreds issues credentials that expired a minute ago.
func expiredCreds(t *testing.T, a *Authority, id Identity) *Credentials {
	t.Helper()
	user, _ := nkeys.CreateUser()
	pub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.Name = id.String()
	uc.Expires = time.Now().Add(-time.Minute).Unix()
	tok, err := uc.Encode(a.account)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	b, _ := jwt.FormatUserConfig(tok, seed)
	c, err := ParseCredentials(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSaveLoad(t *testing.T) {
	a := mustAuthority(t)
	path := filepath.Join(t.TempDir(), "authority.json")
	if err := a.Save(path); err != nil {
		t.Fatal(err)
	}
	if err := a.Save(path); err == nil {
		t.Error("Save replaced an authority")
	}
	b, err := LoadOrCreate(path)
	if err != nil || b.Account() != a.Account() {
		t.Fatalf("loaded %v, %v", b, err)
	}
}
