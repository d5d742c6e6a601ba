// Package token builds, parses and verifies AccessToken2 ("007") tokens, the wire format that existing AccessToken2
// builders produce in any language, so an app server can move to Stoa without touching its token code.
//
// A token is "007" followed by the standard base64 encoding of the zlib-compressed content:
//
//	content      = packString(signature) || signing_info
//	signing_info = packString(app_id) || u32 issue_ts || u32 expire || u32 salt || u16 service_count || service*
//	service      = u16 type || u16 n || (u16 privilege || u32 expire)*n || type-specific fields
//	packString   = u16 length || bytes            (all integers little-endian)
//
// The signature is HMAC-SHA256(k2, signing_info) with k1 = HMAC-SHA256(LE32(issue_ts), app_certificate) and
// k2 = HMAC-SHA256(LE32(salt), k1); the certificate is used as its ASCII text. expire and every privilege value are
// seconds relative to issue_ts. See docs/tokens.md for the full format and the service types.
//
// Verification is offline: [Token.Verify] checks one parsed token against one certificate, and a [Verifier] holds the
// certificates of many apps (a primary and a secondary each, for rotation without downtime) and caches tokens that
// verified, so that a repeated token costs about a map look-up. Errors wrap the sentinel errors of this package
// ([ErrMalformed], [ErrSignature], [ErrExpired], ...) so callers can act on them with [errors.Is]; no error ever contains
// a token or a certificate.
//
// The older "006" format is read by [Parse006]; a [Verifier] accepts it only for apps that opt in ([App.Accept006]),
// and even then refuses the channels and uids whose signature would also fit another split of the same bytes
// ([Token006.Verify], [ErrAmbiguous006]); see docs/tokens.md.
package token
