package sframe

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Test-vector sections of RFC 9605 Appendix C, as named in its JSON file.
const (
	SectionHeader     = "header"       // C.1: header encoding and decoding
	SectionAESCTRHMAC = "aes_ctr_hmac" // C.2: the AES-CTR-HMAC AEAD on its own
	SectionSFrame     = "sframe"       // C.3: key schedule, encryption and decryption
)

// VectorReport is the outcome of CheckVectors.
type VectorReport struct {
	Passed   int
	Failures []VectorFailure
	// Ignored lists the top-level keys of the file that are not one of the three sections.
	Ignored []string
}

// Failed returns the number of failing cases.
func (r *VectorReport) Failed() int { return len(r.Failures) }

// VectorFailure describes one failing case. Its text names the values that differ but never prints keys.
type VectorFailure struct {
	Section string // SectionHeader, SectionAESCTRHMAC or SectionSFrame
	Index   int    // position of the case in its section, from 0
	Reason  string // what differed; several problems are joined by "; "
}

func (f VectorFailure) String() string {
	return fmt.Sprintf("%s[%d]: %s", f.Section, f.Index, f.Reason)
}

// CheckVectors checks every case of a test-vector file in the JSON layout of RFC 9605 Appendix C, whose sections
// "header", "aes_ctr_hmac" and "sframe" may each be absent:
//
//   - header: AppendHeader(kid, ctr) gives "encoded", and ParseHeader("encoded") gives kid, ctr and its length;
//   - aes_ctr_hmac: "key" splits into "enc_key" and "auth_key", sealing "pt" gives "ct" and opening "ct" gives "pt";
//   - sframe: the key schedule gives "sframe_key" and "sframe_salt" (and "sframe_secret", the labels, "nonce" and
//     "aad" when present), a Sender at counter "ctr" encrypts "pt" to exactly "ct", and a Receiver opens "ct" back
//     to "pt".
//
// kid and ctr are read as exact unsigned 64-bit integers. A case that cannot be decoded counts as a failure; a file
// that is not JSON, whose sections are not arrays, or that holds no case at all is an error.
func CheckVectors(r io.Reader) (*VectorReport, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	var file map[string]json.RawMessage
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("sframe: test vectors: malformed JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("sframe: test vectors: unexpected data after the JSON object")
	}
	checks := map[string]func(raw json.RawMessage) string{
		SectionHeader:     checkHeaderCase,
		SectionAESCTRHMAC: checkCTRHMACCase,
		SectionSFrame:     checkSFrameCase,
	}
	rep := &VectorReport{}
	for key := range file {
		if checks[key] == nil {
			rep.Ignored = append(rep.Ignored, key)
		}
	}
	slices.Sort(rep.Ignored)
	total := 0
	for _, section := range []string{SectionHeader, SectionAESCTRHMAC, SectionSFrame} {
		raw, ok := file[section]
		if !ok || string(raw) == "null" {
			continue
		}
		var cases []json.RawMessage
		if err := json.Unmarshal(raw, &cases); err != nil {
			return nil, fmt.Errorf("sframe: test vectors: section %q is not an array of cases", section)
		}
		for i, c := range cases {
			total++
			if reason := checks[section](c); reason != "" {
				rep.Failures = append(rep.Failures, VectorFailure{Section: section, Index: i, Reason: reason})
			} else {
				rep.Passed++
			}
		}
	}
	if total == 0 {
		return nil, errors.New(`sframe: test vectors: no cases (expected "header", "aes_ctr_hmac" or "sframe" arrays)`)
	}
	return rep, nil
}

// caseChecker reads the fields of one case and collects what is wrong with it.
type caseChecker struct {
	problems []string
}

func (c *caseChecker) fail(format string, a ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, a...))
}

func (c *caseChecker) result() string { return strings.Join(c.problems, "; ") }

// decode unmarshals the case into v; a case that does not decode is one problem.
func (c *caseChecker) decode(raw json.RawMessage, v any) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		c.fail("malformed case: %v", err)
		return false
	}
	return true
}

// integer parses a required JSON integer as an exact uint64 (never through float64).
func (c *caseChecker) integer(name string, n json.Number) uint64 {
	if n == "" {
		c.fail("missing %s", name)
		return 0
	}
	v, err := strconv.ParseUint(string(n), 10, 64)
	if err != nil {
		c.fail("%s: %s is not an unsigned 64-bit integer", name, n)
	}
	return v
}

// hex decodes a required hex field.
func (c *caseChecker) hex(name string, s *string) []byte {
	if s == nil {
		c.fail("missing %s", name)
		return nil
	}
	b, ok := c.optHex(name, s)
	if !ok {
		return nil
	}
	return b
}

// optHex decodes an optional hex field; ok is false when it is absent or invalid.
func (c *caseChecker) optHex(name string, s *string) (b []byte, ok bool) {
	if s == nil {
		return nil, false
	}
	b, err := hex.DecodeString(*s)
	if err != nil {
		c.fail("%s: invalid hex", name)
		return nil, false
	}
	return b, true
}

// same records a problem if got differs from want, naming the first differing byte but no value: the values may
// be key material.
func (c *caseChecker) same(what string, got, want []byte) {
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	c.fail("%s differs at byte %d (got %d bytes, want %d)", what, i, len(got), len(want))
}

func checkHeaderCase(raw json.RawMessage) string {
	var v struct {
		KID     json.Number `json:"kid"`
		CTR     json.Number `json:"ctr"`
		Encoded *string     `json:"encoded"`
	}
	var c caseChecker
	if !c.decode(raw, &v) {
		return c.result()
	}
	kid, ctr, encoded := c.integer("kid", v.KID), c.integer("ctr", v.CTR), c.hex("encoded", v.Encoded)
	if len(c.problems) > 0 {
		return c.result()
	}
	c.same("encoded header", AppendHeader(nil, kid, ctr), encoded)
	gotKID, gotCTR, n, err := ParseHeader(encoded)
	switch {
	case err != nil:
		c.fail("decode: %v", err)
	case gotKID != kid || gotCTR != ctr:
		c.fail("decode: got kid %d ctr %d, want kid %d ctr %d", gotKID, gotCTR, kid, ctr)
	case n != len(encoded):
		c.fail("decode: header length %d, want %d", n, len(encoded))
	}
	return c.result()
}

func checkCTRHMACCase(raw json.RawMessage) string {
	var v struct {
		Suite   json.Number `json:"cipher_suite"`
		Key     *string     `json:"key"`
		EncKey  *string     `json:"enc_key"`
		AuthKey *string     `json:"auth_key"`
		Nonce   *string     `json:"nonce"`
		AAD     *string     `json:"aad"`
		PT      *string     `json:"pt"`
		CT      *string     `json:"ct"`
	}
	var c caseChecker
	if !c.decode(raw, &v) {
		return c.result()
	}
	id := c.integer("cipher_suite", v.Suite)
	key, encKey, authKey := c.hex("key", v.Key), c.hex("enc_key", v.EncKey), c.hex("auth_key", v.AuthKey)
	nonce, aad, pt, ct := c.hex("nonce", v.Nonce), c.hex("aad", v.AAD), c.hex("pt", v.PT), c.hex("ct", v.CT)
	if len(c.problems) > 0 {
		return c.result()
	}
	suite := Suite(id)
	if id > 0xffff || !suite.Supported() || !suites[suite].ctrHMAC {
		c.fail("cipher_suite %d is not an AES-CTR-HMAC suite", id)
		return c.result()
	}
	if len(key) != suite.KeySize() {
		c.fail("key is %d bytes, want %d", len(key), suite.KeySize())
		return c.result()
	}
	if len(nonce) != nonceSize {
		c.fail("nonce is %d bytes, want %d", len(nonce), nonceSize)
		return c.result()
	}
	c.same("enc_key (key[:16])", key[:ctrHMACEncKeySize], encKey)
	c.same("auth_key (key[16:])", key[ctrHMACEncKeySize:], authKey)
	aead, err := suite.newAEAD(key)
	if err != nil {
		c.fail("%v", err)
		return c.result()
	}
	c.same("sealed ct", aead.Seal(nil, nonce, pt, aad), ct)
	if opened, err := aead.Open(nil, nonce, ct, aad); err != nil {
		c.fail("open: %v", err)
	} else {
		c.same("opened pt", opened, pt)
	}
	return c.result()
}

func checkSFrameCase(raw json.RawMessage) string {
	var v struct {
		Suite     json.Number `json:"cipher_suite"`
		KID       json.Number `json:"kid"`
		CTR       json.Number `json:"ctr"`
		BaseKey   *string     `json:"base_key"`
		KeyLabel  *string     `json:"sframe_key_label"`
		SaltLabel *string     `json:"sframe_salt_label"`
		Secret    *string     `json:"sframe_secret"`
		Key       *string     `json:"sframe_key"`
		Salt      *string     `json:"sframe_salt"`
		Metadata  *string     `json:"metadata"`
		Nonce     *string     `json:"nonce"`
		AAD       *string     `json:"aad"`
		PT        *string     `json:"pt"`
		CT        *string     `json:"ct"`
	}
	var c caseChecker
	if !c.decode(raw, &v) {
		return c.result()
	}
	id, kid, ctr := c.integer("cipher_suite", v.Suite), c.integer("kid", v.KID), c.integer("ctr", v.CTR)
	baseKeyBytes, metadata := c.hex("base_key", v.BaseKey), c.hex("metadata", v.Metadata)
	pt, ct := c.hex("pt", v.PT), c.hex("ct", v.CT)
	if len(c.problems) > 0 {
		return c.result()
	}
	suite := Suite(id)
	if id > 0xffff || !suite.Supported() {
		c.fail("unsupported cipher_suite %d", id)
		return c.result()
	}
	baseKey := NewKey(baseKeyBytes)
	defer baseKey.Wipe()

	// The key schedule, value by value.
	if want, ok := c.optHex("sframe_key_label", v.KeyLabel); ok {
		c.same("sframe_key_label", scheduleLabel(keyLabelPrefix, kid, suite), want)
	}
	if want, ok := c.optHex("sframe_salt_label", v.SaltLabel); ok {
		c.same("sframe_salt_label", scheduleLabel(saltLabelPrefix, kid, suite), want)
	}
	ks, err := deriveSchedule(suite, kid, baseKey)
	if err != nil {
		c.fail("key schedule: %v", err)
		return c.result()
	}
	defer ks.wipe()
	if want, ok := c.optHex("sframe_secret", v.Secret); ok {
		c.same("sframe_secret", ks.secret, want)
	}
	if want, ok := c.optHex("sframe_key", v.Key); ok {
		c.same("sframe_key", ks.key, want)
	}
	if want, ok := c.optHex("sframe_salt", v.Salt); ok {
		c.same("sframe_salt", ks.salt, want)
	}

	// Encryption through a Sender positioned at ctr, which also checks nonce and aad.
	s, err := NewSender(suite, kid, baseKey)
	if err != nil {
		c.fail("sender: %v", err)
		return c.result()
	}
	defer s.Wipe()
	if want, ok := c.optHex("nonce", v.Nonce); ok {
		c.same("nonce", s.state.setNonce(ctr), want)
	}
	if want, ok := c.optHex("aad", v.AAD); ok {
		c.same("aad", append(AppendHeader(nil, kid, ctr), metadata...), want)
	}
	s.next = ctr
	sealed, err := s.Seal(nil, metadata, pt)
	if err != nil {
		c.fail("seal: %v", err)
	} else {
		c.same("sealed ct", sealed, ct)
	}

	// Decryption through a Receiver holding the key.
	r, err := NewReceiver(suite)
	if err != nil {
		c.fail("receiver: %v", err)
		return c.result()
	}
	defer r.Wipe()
	if err := r.AddKey(kid, baseKey); err != nil {
		c.fail("receiver: %v", err)
		return c.result()
	}
	if opened, err := r.Open(nil, metadata, ct); err != nil {
		c.fail("open: %v", err)
	} else {
		c.same("opened pt", opened, pt)
	}
	return c.result()
}
