package edge

import (
	"time"

	"github.com/stoa-rtc/stoa/internal/protocol"
	"github.com/stoa-rtc/stoa/token"
)

var privilegeNames = map[token.Privilege]string{
	token.PrivilegeJoinChannel:  "join channel",
	token.PrivilegePublishAudio: "publish audio",
	token.PrivilegePublishVideo: "publish video",
	token.PrivilegePublishData:  "publish data",
	token.PrivilegeJoinHidden:   "join hidden",
}

// privilegeStates lists the privileges that matter to the session: 1–4, and join hidden when it joined hidden.
func (s *session) privilegeStates() []protocol.PrivilegeState {
	var out []protocol.PrivilegeState
	privs := []token.Privilege{token.PrivilegeJoinChannel, token.PrivilegePublishAudio, token.PrivilegePublishVideo,
		token.PrivilegePublishData}
	if s.hidden {
		privs = append(privs, token.PrivilegeJoinHidden)
	}
	for _, p := range privs {
		if at, ok := s.grant.PrivilegeExpiresAt(p); ok {
			out = append(out, protocol.PrivilegeState{Privilege: uint16(p), Name: privilegeNames[p], ExpiresAt: at.Unix()})
		}
	}
	return nonNil(out)
}

// scheduleExpiry arms, for every privilege of the grant, a warning ExpiryWarning before it expires and the action
// when it does. A renewal re-arms them; timers of an older grant that fire late are ignored.
func (s *session) scheduleExpiry() {
	for _, stop := range s.stopTimers {
		stop()
	}
	s.stopTimers = s.stopTimers[:0]
	s.grantGen++
	gen := s.grantGen
	clock := s.srv.cfg.Clock
	now := clock.Now()
	for _, st := range s.privilegeStates() {
		priv, at := token.Privilege(st.Privilege), time.Unix(st.ExpiresAt, 0)
		state := st
		if warnAt := at.Add(-s.srv.cfg.ExpiryWarning); warnAt.After(now) {
			s.stopTimers = append(s.stopTimers, clock.AfterFunc(warnAt.Sub(now), func() {
				s.post(func() {
					if gen == s.grantGen {
						s.send(&protocol.Message{Type: protocol.TypePrivilegeWillExpire, PrivilegeWillExpire: &state})
					}
				})
			}))
		} else if at.After(now) {
			// Already inside the warning period (e.g. a short-lived token): warn at once.
			s.send(&protocol.Message{Type: protocol.TypePrivilegeWillExpire, PrivilegeWillExpire: &state})
		}
		s.stopTimers = append(s.stopTimers, clock.AfterFunc(max(at.Sub(now), 0), func() {
			s.post(func() {
				if gen == s.grantGen {
					s.privilegeExpired(priv, state)
				}
			})
		}))
	}
}

// privilegeExpired enforces an expiry: without the join privilege (or, joined hidden, the join-hidden privilege)
// the participant leaves — a hidden one is never made visible; without a publish privilege its publications of
// that kind stop.
func (s *session) privilegeExpired(priv token.Privilege, state protocol.PrivilegeState) {
	if priv == token.PrivilegeJoinChannel || priv == token.PrivilegeJoinHidden {
		s.send(&protocol.Message{Type: protocol.TypeRemoved, Removed: &protocol.Removed{
			Reason: protocol.CodePrivilegeExpired, Message: "the " + state.Name + " privilege has expired"}})
		s.end(protocol.CodePrivilegeExpired)
		return
	}
	s.send(&protocol.Message{Type: protocol.TypePrivilegeExpired, PrivilegeExpired: &state})
	for id, kind := range s.pending {
		if kindPrivilege[kind] == priv {
			delete(s.pending, id)
		}
	}
	for id, p := range s.published {
		if kindPrivilege[p.kind] == priv {
			delete(s.published, id)
			s.room.unpublish(p)
		}
	}
}
