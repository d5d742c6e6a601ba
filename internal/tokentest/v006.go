// Package tokentest builds legacy "006" tokens for tests, and rewrites them the way an attacker can. Stoa itself
// never builds 006 tokens; this package must not be imported outside tests.
package tokentest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
)

// Build006 returns a 006 token for appID (32 characters), channel and uid, signed with cert, expiring at ts (Unix
// seconds) and granting joinChannel (privilege 1) until then, as the reference builders make it.
func Build006(cert, appID, channel, uid string, salt, ts uint32) string {
	m := binary.LittleEndian.AppendUint32(nil, salt)
	m = binary.LittleEndian.AppendUint32(m, ts)
	m = binary.LittleEndian.AppendUint16(m, 1)
	m = binary.LittleEndian.AppendUint16(m, 1) // joinChannel
	m = binary.LittleEndian.AppendUint32(m, ts)
	h := hmac.New(sha256.New, []byte(cert))
	h.Write([]byte(appID + channel + uid))
	h.Write(m)
	var b []byte
	b = packString(b, h.Sum(nil))
	b = binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE([]byte(channel)))
	b = binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE([]byte(uid)))
	b = packString(b, m)
	return "006" + appID + base64.StdEncoding.EncodeToString(b)
}

// Retarget006 rewrites the unsigned CRC-32 fields of a 006 token so that they name channel and uid: what anyone
// holding a token can do. It panics on a token that Build006 did not make.
func Retarget006(tok, channel, uid string) string {
	b, err := base64.StdEncoding.DecodeString(tok[35:])
	if err != nil {
		panic(err)
	}
	at := 2 + int(binary.LittleEndian.Uint16(b))
	binary.LittleEndian.PutUint32(b[at:], crc32.ChecksumIEEE([]byte(channel)))
	binary.LittleEndian.PutUint32(b[at+4:], crc32.ChecksumIEEE([]byte(uid)))
	return tok[:35] + base64.StdEncoding.EncodeToString(b)
}

func packString(b, s []byte) []byte {
	return append(binary.LittleEndian.AppendUint16(b, uint16(len(s))), s...)
}
