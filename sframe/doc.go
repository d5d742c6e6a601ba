// Package sframe implements Secure Frame (SFrame), RFC 9605: lightweight end-to-end authenticated encryption of
// real-time media frames.
//
// The package covers the SFrame header (RFC 9605 §4.3), the key schedule (§4.4.2), frame encryption and decryption
// (§4.4.3) and the five cipher suites of §4.5, including AES-CTR with HMAC (§4.5.1). It does not manage keys: the
// application hands each [Sender] and [Receiver] its base keys, as §4.4.1 leaves key management to the application.
// Stoa's media profile (how keys are derived from a channel secret and which codec bytes stay in the clear) is in
// the sframe/media subpackage.
//
// # Use
//
// A [Sender] owns one (suite, KID, base key) and numbers its frames from counter 0; a [Receiver] holds a key ring
// (one base key per KID, several KIDs at once during key rotation) and an anti-replay [ReplayWindow] per KID.
// [Sender.Seal] and [Receiver.Open] append to a caller's buffer and, once that buffer has grown to the frame size,
// allocate nothing.
//
// # Security properties
//
//   - A Sender never encrypts twice under one (base key, KID, CTR): when its counter is spent it fails with
//     [ErrCounterExhausted] instead of wrapping (§4.4.3, §9.1).
//   - Every authentication failure of [Receiver.Open] is reported as [ErrAuth], so a receiver cannot be used as an
//     oracle on why a frame was rejected; only replays of authentic frames are told apart ([ErrReplay], which also
//     matches ErrAuth).
//   - The receiver acts on nothing, not even the replay window, before the tag has been checked (§4.4.3).
//   - Key material lives in [Key] values and in unexported per-key state; they print as "REDACTED", compare in
//     constant time and can be wiped. Errors never contain key material.
package sframe
