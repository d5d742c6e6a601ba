package token

import (
	"maps"
	"slices"
	"strconv"
)

// ServiceType identifies a service inside a token.
type ServiceType uint16

// The service types of AccessToken2. Stoa itself uses ServiceRTC; the others are parsed, built and verified so that
// tokens from any builder can be read.
const (
	ServiceRTC       ServiceType = 1 // real-time channel: join, publish audio/video/data
	ServiceRTM       ServiceType = 2 // signaling login
	ServiceStreaming ServiceType = 3 // streaming: publish mix stream, publish raw stream
	ServiceFPA       ServiceType = 4 // full-path acceleration login
	ServiceChat      ServiceType = 5 // chat user / app
	ServiceFCDN      ServiceType = 6 // fusion CDN: publish, play
	ServiceAPaaS     ServiceType = 7 // education / APaaS: room user, user, app
	ServiceRTM2      ServiceType = 8 // signaling login with resource permissions
)

var serviceNames = map[ServiceType]string{
	ServiceRTC: "rtc", ServiceRTM: "rtm", ServiceStreaming: "streaming", ServiceFPA: "fpa",
	ServiceChat: "chat", ServiceFCDN: "fcdn", ServiceAPaaS: "apaas", ServiceRTM2: "rtm2",
}

func (t ServiceType) String() string {
	if n, ok := serviceNames[t]; ok {
		return n
	}
	return "type " + strconv.Itoa(int(t))
}

// Known reports whether this package can parse and build services of type t.
func (t ServiceType) Known() bool { _, ok := serviceNames[t]; return ok }

// Privilege identifies a privilege within a service; the same number means different things in different services.
type Privilege uint16

// RTC privileges.
const (
	PrivilegeJoinChannel  Privilege = 1
	PrivilegePublishAudio Privilege = 2
	PrivilegePublishVideo Privilege = 3
	PrivilegePublishData  Privilege = 4
	// PrivilegeJoinHidden is Stoa's own RTC privilege (AccessToken2 defines 1–4): with it a client may join
	// hidden — never announced to the channel's other participants, and unable to publish — as a recorder does.
	// Edges honour it only when the join asks to be hidden; number 100 keeps clear of the format's own numbers,
	// and any builder that takes a privilege number can grant it (docs/recording.md).
	PrivilegeJoinHidden Privilege = 100
)

// PrivilegeLogin is the privilege of the RTM, FPA and RTM2 services.
const PrivilegeLogin Privilege = 1

func (p Privilege) name(t ServiceType) string {
	if t == ServiceRTC {
		switch p {
		case PrivilegeJoinChannel:
			return "join channel"
		case PrivilegePublishAudio:
			return "publish audio"
		case PrivilegePublishVideo:
			return "publish video"
		case PrivilegePublishData:
			return "publish data"
		case PrivilegeJoinHidden:
			return "join hidden"
		}
	}
	return "privilege " + strconv.Itoa(int(p))
}

// Service is one service of a token. Which fields are used depends on Type:
//
//	RTC, Streaming, FCDN: Channel, UID     RTM, Chat: UserID     FPA: none
//	APaaS: RoomUUID, UserUUID, Role         RTM2: UserID, Permissions
type Service struct {
	Type ServiceType
	// Privileges maps each granted privilege to its lifetime in seconds after the token's issue time.
	Privileges map[Privilege]uint32

	Channel string
	// UID is the decimal uid or the user account; "" (uid 0) is the wildcard that matches any uid.
	UID string

	UserID string

	RoomUUID string
	UserUUID string
	Role     int16

	// Permissions of an RTM2 service: resource type → permission type → resource names.
	Permissions map[uint16]map[uint16][]string
}

// NewRTC returns an RTC service for channel and uid (a decimal uid or a user account; see [UIDString]).
func NewRTC(channel, uid string) Service {
	return Service{Type: ServiceRTC, Channel: channel, UID: uid, Privileges: map[Privilege]uint32{}}
}

// UIDString returns the token form of a numeric uid: its decimal string, and "" for uid 0 (the wildcard).
func UIDString(uid uint32) string {
	if uid == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(uid), 10)
}

func (s *Service) appendTo(b []byte) ([]byte, error) {
	if !s.Type.Known() {
		return b, invalidInput("unknown service type %d", s.Type)
	}
	if len(s.Privileges) > 0xffff {
		return b, invalidInput("too many privileges")
	}
	b = appendU16(b, uint16(s.Type))
	b = appendU16(b, uint16(len(s.Privileges)))
	for _, p := range slices.Sorted(maps.Keys(s.Privileges)) {
		b = appendU32(appendU16(b, uint16(p)), s.Privileges[p])
	}
	var err error
	appendStrings := func(ss ...string) {
		for _, v := range ss {
			if err == nil {
				b, err = appendString(b, v)
			}
		}
	}
	switch s.Type {
	case ServiceRTC, ServiceStreaming, ServiceFCDN:
		appendStrings(s.Channel, s.UID)
	case ServiceRTM, ServiceChat:
		appendStrings(s.UserID)
	case ServiceAPaaS:
		appendStrings(s.RoomUUID, s.UserUUID)
		b = appendU16(b, uint16(s.Role))
	case ServiceRTM2:
		appendStrings(s.UserID)
		b = appendU16(b, uint16(len(s.Permissions)))
		for _, res := range slices.Sorted(maps.Keys(s.Permissions)) {
			perms := s.Permissions[res]
			b = appendU16(appendU16(b, res), uint16(len(perms)))
			for _, perm := range slices.Sorted(maps.Keys(perms)) {
				b = appendU16(appendU16(b, perm), uint16(len(perms[perm])))
				appendStrings(perms[perm]...)
			}
		}
	}
	return b, err
}

// readService reads one service; the type has been read already.
func readService(r *reader, t ServiceType) Service {
	if !t.Known() {
		r.fail("unknown service type %d", t)
		return Service{}
	}
	s := Service{Type: t}
	n := r.count("privilege", 6)
	s.Privileges = make(map[Privilege]uint32, n)
	for range n {
		p, v := Privilege(r.u16("privilege")), r.u32("privilege expiry")
		if _, dup := s.Privileges[p]; dup {
			// Builders write each privilege once; two values for one privilege would be read differently by
			// different parsers, so such a token is refused.
			r.fail("privilege %d appears twice in service %s", p, t)
		}
		s.Privileges[p] = v
	}
	switch t {
	case ServiceRTC, ServiceStreaming, ServiceFCDN:
		s.Channel = r.string("channel name")
		s.UID = r.string("uid")
	case ServiceRTM, ServiceChat:
		s.UserID = r.string("user id")
	case ServiceAPaaS:
		s.RoomUUID = r.string("room uuid")
		s.UserUUID = r.string("user uuid")
		s.Role = int16(r.u16("role"))
	case ServiceRTM2:
		s.UserID = r.string("user id")
		s.Permissions = readPermissions(r)
	}
	return s
}

func readPermissions(r *reader) map[uint16]map[uint16][]string {
	n := r.count("permission resource", 4)
	perms := make(map[uint16]map[uint16][]string, n)
	for range n {
		res := r.u16("resource type")
		m := r.count("permission", 4)
		inner := make(map[uint16][]string, m)
		for range m {
			perm := r.u16("permission type")
			k := r.count("resource name", 2)
			names := make([]string, 0, k)
			for range k {
				names = append(names, r.string("resource name"))
			}
			inner[perm] = names
		}
		if _, dup := perms[res]; dup {
			r.fail("resource type %d appears twice", res)
		}
		perms[res] = inner
	}
	return perms
}
