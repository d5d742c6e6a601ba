package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash/crc32"
	"strconv"
	"strings"
	"time"
)

const version006 = "006"

// Token006 is a decoded token of the older "006" format, accepted so that app servers that still build it keep
// working during a migration:
//
//	"006" || app_id (32 chars) || base64( packString(sig) || u32 crc32(channel) || u32 crc32(uid) || packString(m) )
//	m   = u32 salt || u32 ts || u16 n || (u16 privilege || u32 expire_unix)*n
//	sig = HMAC-SHA256(key = app_certificate, msg = app_id || channel || uid || m)
//
// Unlike AccessToken2, times are absolute Unix seconds, a privilege time of 0 never expires, and the channel and
// uid appear only as CRC-32 values, so a verifier must be told them.
type Token006 struct {
	AppID string
	Salt  uint32
	// TS is when the token expires (builders set it to the issue time plus 24 hours).
	TS                 uint32
	ChannelCRC, UIDCRC uint32
	// Privileges maps each privilege to its absolute expiry in Unix seconds; 0 means it never expires.
	Privileges map[Privilege]uint32

	signature []byte
	message   []byte
}

// Parse006 decodes a "006" token without verifying it. Errors match ErrMalformed.
func Parse006(s string) (*Token006, error) {
	if len(s) > MaxTokenLength {
		return nil, malformed("token is %d bytes, longer than the limit of %d", len(s), MaxTokenLength)
	}
	if !strings.HasPrefix(s, version006) || len(s) < len(version006)+32 {
		return nil, malformed("not a version 006 token")
	}
	t := &Token006{AppID: s[3:35]}
	raw, err := base64.StdEncoding.DecodeString(s[35:])
	if err != nil {
		return nil, malformed("bad base64")
	}
	r := &reader{b: raw}
	t.signature = r.bytes("signature")
	t.ChannelCRC = r.u32("channel crc")
	t.UIDCRC = r.u32("uid crc")
	t.message = r.bytes("message")
	if r.err == nil && r.remaining() != 0 {
		r.fail("%d bytes left after the message", r.remaining())
	}
	if r.err != nil {
		return nil, r.err
	}
	m := &reader{b: t.message}
	t.Salt = m.u32("salt")
	t.TS = m.u32("ts")
	n := m.count("privilege", 6)
	t.Privileges = make(map[Privilege]uint32, n)
	for range n {
		p, v := Privilege(m.u16("privilege")), m.u32("privilege expiry")
		if _, dup := t.Privileges[p]; dup {
			m.fail("privilege %d appears twice", p)
		}
		t.Privileges[p] = v
	}
	if m.err == nil && m.remaining() != 0 {
		m.fail("%d bytes left after the privileges", m.remaining())
	}
	if m.err != nil {
		return nil, m.err
	}
	if len(t.signature) != sha256.Size {
		return nil, malformed("signature is %d bytes, not %d", len(t.signature), sha256.Size)
	}
	return t, nil
}

// ExpiresAt returns when the token expires.
func (t *Token006) ExpiresAt() time.Time { return time.Unix(int64(t.TS), 0) }

// The signature of a 006 token covers app_id || channel || uid with no separator, and the CRC-32 values of channel
// and uid are not signed: whoever holds a token can rewrite them. So a token made for channel "room1" and uid "23"
// carries exactly the signature of one for "room12" and "3", or "room" and "123", or "room123" and the wildcard uid
// "" (uid 0). No verifier can tell these apart; what it can do is accept at most one of them. Verify accepts a
// token only for a channel that does not end with a decimal digit and a uid that is a decimal number from 1 to
// 4294967295 without leading zeros: then the uid is exactly the run of digits that ends the signed bytes, so the
// split is unique. The boundary between uid and the message is just as unsigned; since the message has a fixed
// layout, a shifted one parses only by chance, and Verify also refuses a token whose ts lies more than max006Life
// ahead (builders set it 24 hours ahead), so that a shifted ts is almost never in range. An app server that mints
// 006 tokens for channels ending with a digit (which Verify refuses when presented honestly) must not be given the
// opt-in: its tokens would be accepted for the digit-free split.

// max006Life is how far ahead of now a 006 token's ts may lie.
const max006Life = 48 * time.Hour

// checkSplit refuses the channel and uid that would let one signed string stand for several of them.
func checkSplit(channel, uid string) error {
	if last := channel[len(channel)-1]; last >= '0' && last <= '9' {
		return &Ambiguous006Error{Reason: "the channel ends with a digit, so its signature also fits another channel and uid"}
	}
	if uid == "" {
		return &Ambiguous006Error{Reason: "uid 0 (any uid) is not accepted"}
	}
	if n, err := strconv.ParseUint(uid, 10, 32); err != nil || n == 0 || uid[0] == '0' {
		return &Ambiguous006Error{Reason: "the uid must be a decimal number from 1 to 4294967295"}
	}
	return nil
}

// Verify checks a "006" token for want.Channel and want.UID, which are required because the token holds only their
// CRC-32 values, against appCertificate at now. The join privilege must be granted and unexpired. Tokens for uid
// 0 (the wildcard), for a channel ending with a digit or for a uid that is not a decimal number are refused with
// an error matching [ErrAmbiguous006] (see the comment on checkSplit), before the signature is checked.
func (t *Token006) Verify(appCertificate string, want Expect, now time.Time) (Grant, error) {
	if want.AppID != "" && t.AppID != want.AppID {
		return Grant{}, ErrAppIDMismatch
	}
	if want.Channel == "" {
		return Grant{}, invalidInput("a 006 token can only be verified for a given channel")
	}
	if t.UIDCRC == crc32.ChecksumIEEE(nil) {
		return Grant{}, &Ambiguous006Error{Reason: "uid 0 (any uid) is not accepted"}
	}
	if err := checkSplit(want.Channel, want.UID); err != nil {
		return Grant{}, err
	}
	if t.ExpiresAt().After(now.Add(max006Life)) {
		return Grant{}, &Ambiguous006Error{Reason: "the token claims to be valid for more than 48 hours"}
	}
	if crc32.ChecksumIEEE([]byte(want.Channel)) != t.ChannelCRC {
		return Grant{}, ErrChannelMismatch
	}
	if crc32.ChecksumIEEE([]byte(want.UID)) != t.UIDCRC {
		return Grant{}, ErrUIDMismatch
	}
	h := hmac.New(sha256.New, []byte(appCertificate))
	h.Write([]byte(t.AppID))
	h.Write([]byte(want.Channel))
	h.Write([]byte(want.UID))
	h.Write(t.message)
	if !hmac.Equal(h.Sum(nil), t.signature) {
		return Grant{}, ErrSignature
	}
	g := Grant{AppID: t.AppID, Channel: want.Channel, UID: want.UID, ExpiresAt: t.ExpiresAt()}
	for p, v := range t.Privileges {
		if p >= PrivilegeJoinChannel && p <= PrivilegePublishData {
			g.privileges[p] = int64(t.TS)
			if v != 0 {
				g.privileges[p] = min(int64(v), int64(t.TS))
			}
		}
	}
	return g, g.check(now)
}
