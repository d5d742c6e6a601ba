package token

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"
)

// The reference vector of docs/tokens.md (from the AccessToken2 specification).
const (
	refAppID   = "970CA35de60c44645bbae8a215061b33"
	refCert    = "5CFd2fd1755d40ecb72977518be15d3b"
	refChannel = "7d72365eb983485397e3e3f9d460bdda"
	refUID     = "2882341273"
	refIssue   = 1111111
)

func refToken(uid string) *Token {
	s := NewRTC(refChannel, uid)
	s.Privileges[PrivilegeJoinChannel] = 600
	return &Token{AppID: refAppID, IssueTS: refIssue, Expire: 600, Salt: 1, Services: []Service{s}}
}

func TestReferenceSignature(t *testing.T) {
	info, err := refToken(refUID).appendSigningInfo(nil)
	if err != nil {
		t.Fatal(err)
	}
	got := hex.EncodeToString(sign(refCert, refIssue, 1, info))
	if want := "16a0b84c5a5e82cbf74fb813d09f59c54bdac9c06120580539ac97578e958b1a"; got != want {
		t.Fatalf("signature = %s, want %s", got, want)
	}
}

func TestReferenceTokens(t *testing.T) {
	at := time.Unix(refIssue+1, 0)
	tests := []struct {
		name, token string
		build       *Token // nil: verify only
		want        Expect
	}{
		{"go zlib", "007eJxSYBBbsMMnKq7p9Hf/HcIX5kce9b518kCiQgSr5Zrp4X1Tu6UUGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiVwMRhYWRsYmhkbmxoAAAAD//8JqJOM=",
			refToken(refUID), Expect{refAppID, refChannel, refUID}},
		{"other zlib", "007eJxTYBBbsMMnKq7p9Hf/HcIX5kce9b518kCiQgSr5Zrp4X1Tu6UUGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiVwMRhYWRsYmhkbmxgDCaiTj",
			nil, Expect{refAppID, refChannel, refUID}},
		{"uid 0", "007eJxSYLhzZP08Lxa1Pg57+TcXb/3cZ3wi4V6kbpbOog0G2dOYk20UGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk4yN3b8IMEQwMTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiQwMgAAAAP//Npwiag==",
			refToken(""), Expect{refAppID, refChannel, "12345"}},
		{"rtm", "007eJxSYOCdJftjyTM2zxW6Xhm/5T0j5LdcUt/xYVt48fb5Mp3PX9coMFiaGzg7GpumpJoZJJuYmJmYJiUlplokGhmaGpgZJhkbu38RYIhgYmBgZABhJgZGBkYwn5OhJLW4JL60OLUIEAAA//9ZVh6A",
			&Token{AppID: refAppID, IssueTS: refIssue, Expire: 600, Salt: 1, Services: []Service{
				{Type: ServiceRTM, UserID: "test_user", Privileges: map[Privilege]uint32{PrivilegeLogin: 600}}}},
			Expect{AppID: refAppID}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.build != nil {
				got, err := tc.build.Build(refCert)
				if err != nil {
					t.Fatal(err)
				}
				// The same content; the compressed bytes are the zlib writer's to choose (Go 1.27's differ from the
				// official builders', which end with an empty sync-flush block), and every zlib reader takes both.
				gotContent, err := decode(got)
				if err != nil {
					t.Fatal(err)
				}
				if want, _ := decode(tc.token); !bytes.Equal(gotContent, want) {
					t.Errorf("Build = %s\nwant    %s (decompressed content differs)", got, tc.token)
				}
			}
			tok, err := Parse(tc.token)
			if err != nil {
				t.Fatal(err)
			}
			if err := tok.Verify(refCert, tc.want, at); err != nil {
				t.Errorf("Verify: %v", err)
			}
			if err := tok.Verify(refCert, tc.want, time.Unix(refIssue+600, 0)); !errors.Is(err, ErrExpired) {
				t.Errorf("Verify at expiry: %v, want ErrExpired", err)
			}
		})
	}
}

// publishedCase is one entry of testdata/accesstoken2-published.json.
type publishedCase struct {
	Token     string
	AppID     string `json:"app_id"`
	AppCert   string `json:"app_cert"`
	IssueTS   uint32 `json:"issue_ts"`
	Expire    uint32
	Salt      uint32
	Services  []jsonService
	Valid     bool
	Malformed bool
	ExpiryChk bool `json:"expiry_check"`
	Why       string
	Source    string
}

type jsonService struct {
	Type        ServiceType
	Privileges  map[string]uint32
	Channel     string
	UID         string
	UserID      string `json:"user_id"`
	RoomUUID    string `json:"room_uuid"`
	UserUUID    string `json:"user_uuid"`
	Role        int16
	Permissions map[uint16]map[uint16][]string
}

func (j jsonService) service(t *testing.T) Service {
	s := Service{Type: j.Type, Channel: j.Channel, UID: j.UID, UserID: j.UserID, RoomUUID: j.RoomUUID,
		UserUUID: j.UserUUID, Role: j.Role, Permissions: j.Permissions, Privileges: map[Privilege]uint32{}}
	for k, v := range j.Privileges {
		p, err := strconv.ParseUint(k, 10, 16)
		if err != nil {
			t.Fatalf("privilege key %q: %v", k, err)
		}
		s.Privileges[Privilege(p)] = v
	}
	return s
}

func loadPublished(t testing.TB) []publishedCase {
	t.Helper()
	b, err := os.ReadFile("testdata/accesstoken2-published.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []publishedCase
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	return cases
}

func TestPublishedTokens(t *testing.T) {
	for _, c := range loadPublished(t) {
		t.Run(c.Source, func(t *testing.T) {
			tok, err := Parse(c.Token)
			if c.Malformed {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("Parse: %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := &Token{AppID: c.AppID, IssueTS: c.IssueTS, Expire: c.Expire, Salt: c.Salt}
			for _, s := range c.Services {
				want.Services = append(want.Services, s.service(t))
			}
			assertSameFields(t, tok, want)

			// Rebuilding from the decoded fields gives exactly the content that the other builder signed.
			info, err := want.appendSigningInfo(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(info, tok.signingInfo) {
				t.Errorf("re-encoded signing info differs:\n got %x\nwant %x", info, tok.signingInfo)
			}

			now := tok.IssuedAt().Add(time.Second)
			err = tok.Verify(c.AppCert, Expect{AppID: c.AppID}, now)
			switch {
			case c.Valid && err != nil:
				t.Errorf("Verify: %v (%s)", err, c.Why)
			case !c.Valid && !errors.Is(err, ErrSignature):
				t.Errorf("Verify: %v, want ErrSignature (%s)", err, c.Why)
			}
			if c.Valid && c.ExpiryChk {
				last := tok.ExpiresAt().Add(-time.Second)
				if err := tok.Verify(c.AppCert, Expect{}, last); err != nil {
					t.Errorf("Verify in the last second: %v", err)
				}
				if err := tok.Verify(c.AppCert, Expect{}, tok.ExpiresAt()); !errors.Is(err, ErrExpired) {
					t.Errorf("Verify at expiry: %v, want ErrExpired", err)
				}
			}
		})
	}
}

func assertSameFields(t *testing.T, got, want *Token) {
	t.Helper()
	if got.AppID != want.AppID || got.IssueTS != want.IssueTS || got.Expire != want.Expire || got.Salt != want.Salt {
		t.Errorf("header = %s %d %d %d, want %s %d %d %d", got.AppID, got.IssueTS, got.Expire, got.Salt,
			want.AppID, want.IssueTS, want.Expire, want.Salt)
	}
	if len(got.Services) != len(want.Services) {
		t.Fatalf("%d services, want %d", len(got.Services), len(want.Services))
	}
	for i := range got.Services {
		g, w := got.Services[i], want.Services[i]
		if g.Type != w.Type || g.Channel != w.Channel || g.UID != w.UID || g.UserID != w.UserID ||
			g.RoomUUID != w.RoomUUID || g.UserUUID != w.UserUUID || g.Role != w.Role {
			t.Errorf("service %d = %+v, want %+v", i, g, w)
		}
		if len(g.Privileges) != len(w.Privileges) {
			t.Errorf("service %d privileges = %v, want %v", i, g.Privileges, w.Privileges)
		}
		for p, v := range w.Privileges {
			if g.Privileges[p] != v {
				t.Errorf("service %d privilege %d = %d, want %d", i, p, g.Privileges[p], v)
			}
		}
	}
}

// The raw published tokens include service types 3, 6 and 8 (streaming, fusion CDN, RTM2 with permissions), which
// newer builders emit: all must parse, re-encode to the same bytes and verify.
func TestOfficialTokens(t *testing.T) {
	b, err := os.ReadFile("testdata/accesstoken2-official-tokens.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		AppCertificate string `json:"app_certificate"`
		Tokens         []struct{ Label, Source, Token string }
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	seen := map[ServiceType]bool{}
	for _, c := range f.Tokens {
		t.Run(c.Label, func(t *testing.T) {
			tok, err := Parse(c.Token)
			if err != nil {
				t.Fatal(err)
			}
			info, err := tok.appendSigningInfo(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(info, tok.signingInfo) {
				t.Errorf("re-encoded signing info differs")
			}
			err = tok.Verify(f.AppCertificate, Expect{}, tok.IssuedAt())
			if c.Label == "V27" { // signed with another certificate (see accesstoken2-published.json)
				if !errors.Is(err, ErrSignature) {
					t.Errorf("Verify: %v, want ErrSignature", err)
				}
			} else if err != nil {
				t.Errorf("Verify: %v", err)
			}
			for _, s := range tok.Services {
				seen[s.Type] = true
			}
		})
	}
	for st := ServiceRTC; st <= ServiceRTM2; st++ {
		if !seen[st] {
			t.Errorf("no official token exercises service type %d", st)
		}
	}
}
