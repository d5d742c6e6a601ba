package token

import (
	"math"
	"time"
)

// Role is the set of RTC privileges that builders grant together.
type Role int

const (
	// RolePublisher may join and publish audio, video and data (privileges 1–4).
	RolePublisher Role = iota + 1
	// RoleSubscriber may only join (privilege 1).
	RoleSubscriber
	// RoleRecorder may join, and join hidden (privileges 1 and 100): for recorders, which receive but never publish.
	RoleRecorder
)

// Privileges returns the RTC privileges of the role.
func (r Role) Privileges() []Privilege {
	switch r {
	case RolePublisher:
		return []Privilege{PrivilegeJoinChannel, PrivilegePublishAudio, PrivilegePublishVideo, PrivilegePublishData}
	case RoleSubscriber:
		return []Privilege{PrivilegeJoinChannel}
	case RoleRecorder:
		return []Privilege{PrivilegeJoinChannel, PrivilegeJoinHidden}
	}
	return nil
}

// RTCOptions describe an RTC token. The zero values of IssuedAt and Salt mean "now" and "random".
type RTCOptions struct {
	AppID   string
	Channel string
	// UID is the uid string: use [UIDString] for a numeric uid (uid 0 becomes the wildcard "") or a user account.
	UID string
	// Role selects the privileges; ignored when Privileges is set.
	Role Role
	// Privileges, if set, grants exactly these privileges, each with its own lifetime.
	Privileges map[Privilege]time.Duration
	// Expire is the token's lifetime; PrivilegeExpire that of each privilege of Role (0: same as Expire).
	Expire          time.Duration
	PrivilegeExpire time.Duration
	IssuedAt        time.Time
	Salt            uint32
}

// BuildRTC builds and signs an RTC token, as the AccessToken2 RtcTokenBuilder of other languages does for the same
// inputs.
func BuildRTC(appCertificate string, o RTCOptions) (string, error) {
	t, err := NewRTCToken(o)
	if err != nil {
		return "", err
	}
	return t.Build(appCertificate)
}

// NewRTCToken returns the unsigned token that BuildRTC signs.
func NewRTCToken(o RTCOptions) (*Token, error) {
	issued := o.IssuedAt
	if issued.IsZero() {
		issued = time.Now()
	}
	if issued.Unix() < 0 || issued.Unix() > math.MaxUint32 {
		return nil, invalidInput("issue time out of range")
	}
	salt := o.Salt
	if salt == 0 {
		salt = RandomSalt()
	}
	expire, err := seconds("expire", o.Expire)
	if err != nil {
		return nil, err
	}
	s := NewRTC(o.Channel, o.UID)
	if o.Privileges != nil {
		for p, d := range o.Privileges {
			if s.Privileges[p], err = seconds("privilege expire", d); err != nil {
				return nil, err
			}
		}
	} else {
		role := o.Role
		if role == 0 {
			role = RolePublisher
		}
		privs := role.Privileges()
		if privs == nil {
			return nil, invalidInput("unknown role %d", role)
		}
		pe := expire
		if o.PrivilegeExpire != 0 {
			if pe, err = seconds("privilege expire", o.PrivilegeExpire); err != nil {
				return nil, err
			}
		}
		for _, p := range privs {
			s.Privileges[p] = pe
		}
	}
	return &Token{AppID: o.AppID, IssueTS: uint32(issued.Unix()), Expire: expire, Salt: salt, Services: []Service{s}}, nil
}

func seconds(what string, d time.Duration) (uint32, error) {
	if d < 0 || d/time.Second > math.MaxUint32 {
		return 0, invalidInput("%s out of range", what)
	}
	return uint32(d / time.Second), nil
}
