package token

import "time"

// Expect lists what a token must grant. Empty fields are not checked: a server that admits a participant to a
// channel must set all three.
type Expect struct {
	AppID   string
	Channel string
	// UID is the uid (decimal) or user account that wants to join. A token whose uid is "" (uid 0) is a wildcard
	// that matches any uid.
	UID string
}

// Verify checks, in this order, the App ID, the signature made with appCertificate, the token's expiry at now, and
// then the services: if want names a channel or uid, the first RTC service that matches both, which must grant
// joining; otherwise every service. Every privilege of the checked services must be unexpired at now.
// A token is valid while now is before IssueTS+Expire; at that second it has expired.
func (t *Token) Verify(appCertificate string, want Expect, now time.Time) error {
	if want.AppID != "" && t.AppID != want.AppID {
		return ErrAppIDMismatch
	}
	if !t.checkSignature(appCertificate) {
		return ErrSignature
	}
	if !now.Before(t.ExpiresAt()) {
		return ErrExpired
	}
	services := t.Services
	if want.Channel != "" || want.UID != "" {
		s, err := t.rtcService(want)
		if err != nil {
			return err
		}
		if _, ok := s.Privileges[PrivilegeJoinChannel]; !ok {
			return ErrNoPrivilege
		}
		services = []Service{*s}
	}
	for i := range services {
		for p, v := range services[i].Privileges {
			if at := t.PrivilegeExpiresAt(v); !now.Before(at) {
				return &PrivilegeExpiredError{Service: services[i].Type, Privilege: p, At: at}
			}
		}
	}
	return nil
}

// rtcService returns the first RTC service that grants want.Channel to want.UID (empty fields match anything).
func (t *Token) rtcService(want Expect) (*Service, error) {
	err := ErrNoService
	for i := range t.Services {
		s := &t.Services[i]
		if s.Type != ServiceRTC {
			continue
		}
		if want.Channel != "" && s.Channel != want.Channel {
			if err == ErrNoService {
				err = ErrChannelMismatch
			}
			continue
		}
		if want.UID != "" && !uidMatches(s.UID, want.UID) {
			err = ErrUIDMismatch
			continue
		}
		return s, nil
	}
	return nil, err
}

// uidMatches reports whether a token issued for tokenUID admits uid.
func uidMatches(tokenUID, uid string) bool {
	return tokenUID == "" || tokenUID == uid // "" is uid 0: any uid
}

// Grant is what a verified RTC token allows one participant in one channel. It is a small value: copying it is cheap
// and it shares nothing with the verifier.
type Grant struct {
	AppID   string
	Channel string
	// UID is the uid string of the token's RTC service; "" is the wildcard.
	UID       string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// privileges holds the expiry of RTC privileges 1..4 as Unix seconds; 0 = not granted.
	privileges [PrivilegePublishData + 1]int64
	// hidden is the expiry of PrivilegeJoinHidden, as privileges.
	hidden int64
}

// expiry returns where the expiry of RTC privilege p is kept, or nil for a privilege the grant does not track.
func (g *Grant) expiry(p Privilege) *int64 {
	switch {
	case p >= PrivilegeJoinChannel && p <= PrivilegePublishData:
		return &g.privileges[p]
	case p == PrivilegeJoinHidden:
		return &g.hidden
	}
	return nil
}

func newGrant(t *Token, s *Service) Grant {
	g := Grant{AppID: t.AppID, Channel: s.Channel, UID: s.UID, IssuedAt: t.IssuedAt(), ExpiresAt: t.ExpiresAt()}
	for p, v := range s.Privileges {
		if at := g.expiry(p); at != nil {
			// A privilege never outlives the token.
			*at = min(int64(t.IssueTS)+int64(v), g.ExpiresAt.Unix())
		}
	}
	return g
}

// PrivilegeExpiresAt returns when RTC privilege p expires, and false if the token does not grant it.
func (g Grant) PrivilegeExpiresAt(p Privilege) (time.Time, bool) {
	at := g.expiry(p)
	if at == nil || *at == 0 {
		return time.Time{}, false
	}
	return time.Unix(*at, 0), true
}

// Allows reports whether privilege p is granted and unexpired at now.
func (g Grant) Allows(p Privilege, now time.Time) bool {
	at, ok := g.PrivilegeExpiresAt(p)
	return ok && now.Before(at)
}

// check is what must hold at now for the participant to be in the channel: the token and its join privilege are
// unexpired.
func (g Grant) check(now time.Time) error {
	if !now.Before(g.ExpiresAt) {
		return ErrExpired
	}
	at, ok := g.PrivilegeExpiresAt(PrivilegeJoinChannel)
	if !ok {
		return ErrNoPrivilege
	}
	if !now.Before(at) {
		return &PrivilegeExpiredError{Service: ServiceRTC, Privilege: PrivilegeJoinChannel, At: at}
	}
	return nil
}
